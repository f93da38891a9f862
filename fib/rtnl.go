package fib

import (
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"syscall"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// rtnl is a raw rtnetlink socket that pipelines requests: a whole batch of
// messages goes out in one sendmsg, only failures are answered (no
// NLM_F_ACK) except the last message of the batch, whose ack marks the end.
// The kernel handles the messages of one sendmsg in order, in the sender's
// context, so when sendmsg returns every answer is queued and one or two
// recvmsg collect them; errors are mapped back to their request by sequence
// number.
//
// Why not github.com/mdlayher/netlink: its Conn.Receive stops at the first
// error message of a datagram (later answers are lost) and its OpError does
// not carry the sequence number, so errors could not be mapped back to the
// route they belong to. The encoding is a few dozen lines of x/sys/unix.
//
// An rtnl is not safe for concurrent use.
type rtnl struct {
	fd  int
	seq uint32
	rx  []byte
	// port is set for a socket in its Kernel's writer set: its port id,
	// by which a Monitor tells the echoes of switchd's own writes.
	port uint32
}

// Bounds of one sendmsg. The kernel refuses a message larger than the
// socket's send buffer; both are raised in dialRTNL.
const (
	maxBatchBytes = 1 << 20
	sendBuffer    = 4 << 20
	recvBuffer    = 32 << 20
)

// dialRTNL opens a NETLINK_ROUTE socket in the namespace nsfd (-1: the
// calling thread's). A socket keeps the namespace it was created in.
func dialRTNL(nsfd int) (*rtnl, error) {
	fd, err := socketAt(nsfd)
	if err != nil {
		return nil, fmt.Errorf("open rtnetlink socket: %w", err)
	}
	c := &rtnl{fd: fd, rx: make([]byte, 1<<20)}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		c.close()
		return nil, fmt.Errorf("bind rtnetlink socket: %w", err)
	}
	// FORCE variants exceed rmem_max/wmem_max (root); the plain ones are the
	// fallback without CAP_NET_ADMIN.
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, sendBuffer) != nil {
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, sendBuffer)
	}
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, recvBuffer) != nil {
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, recvBuffer)
	}
	// Error strings from the kernel (extended ack), acks without the echoed
	// request, and dump filters honoured by the kernel (strict checking).
	for _, o := range []int{unix.NETLINK_EXT_ACK, unix.NETLINK_CAP_ACK, unix.NETLINK_GET_STRICT_CHK} {
		unix.SetsockoptInt(fd, unix.SOL_NETLINK, o, 1)
	}
	return c, nil
}

func (c *rtnl) close() {
	if c.fd >= 0 {
		unix.Close(c.fd)
		c.fd = -1
	}
}

// ownWritesFilter is a classic BPF program for a notification socket that
// drops, in the kernel, every message stamped with one of the port ids
// pids (nlmsg_pid, at offset 12, in host byte order; BPF loads words big
// endian, so the constants are the host bytes read big endian). Each
// notification is its own datagram, so the program sees one message.
func ownWritesFilter(pids []uint32) []unix.SockFilter {
	n := len(pids)
	prog := make([]unix.SockFilter, 0, n+3)
	prog = append(prog, unix.SockFilter{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: 12})
	for i, pid := range pids {
		var b [4]byte
		binary.NativeEndian.PutUint32(b[:], pid)
		// Equal: jump to the drop at the end; else on to the next test.
		prog = append(prog, unix.SockFilter{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K,
			K: binary.BigEndian.Uint32(b[:]), Jt: uint8(n - i), Jf: 0})
	}
	prog = append(prog,
		unix.SockFilter{Code: unix.BPF_RET | unix.BPF_K, K: 0xffffffff}, // keep all of it
		unix.SockFilter{Code: unix.BPF_RET | unix.BPF_K, K: 0})          // drop
	return prog
}

// socketAt creates the socket on a locked thread moved into nsfd and back.
func socketAt(nsfd int) (int, error) {
	if nsfd < 0 {
		return unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		return -1, err
	}
	defer orig.Close()
	if err := netns.Set(netns.NsHandle(nsfd)); err != nil {
		return -1, fmt.Errorf("enter netns: %w", err)
	}
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if serr := netns.Set(orig); serr != nil {
		// This thread is stuck in the other namespace: keep it locked so it
		// dies with the goroutine instead of being reused.
		runtime.LockOSThread()
		if fd >= 0 {
			unix.Close(fd)
		}
		return -1, fmt.Errorf("return to original netns: %w", serr)
	}
	return fd, err
}

// kernelError is a netlink error answer: the errno and the kernel's
// extended-ack message, if any.
type kernelError struct {
	errno unix.Errno
	msg   string
}

func (e *kernelError) Error() string {
	if e.msg != "" {
		return e.errno.Error() + ": " + e.msg
	}
	return e.errno.Error()
}

func (e *kernelError) Unwrap() error { return e.errno }

// msgBuf builds netlink messages back to back.
type msgBuf struct {
	b     []byte
	start int
	n     int // messages in b
}

func (m *msgBuf) reset() { m.b, m.n = m.b[:0], 0 }

// begin starts a message; end finishes it.
func (m *msgBuf) begin(typ, flags uint16, seq uint32) {
	m.start = len(m.b)
	m.b = binary.NativeEndian.AppendUint32(m.b, 0)
	m.b = binary.NativeEndian.AppendUint16(m.b, typ)
	m.b = binary.NativeEndian.AppendUint16(m.b, flags|unix.NLM_F_REQUEST)
	m.b = binary.NativeEndian.AppendUint32(m.b, seq)
	m.b = binary.NativeEndian.AppendUint32(m.b, 0)
}

func (m *msgBuf) end() {
	binary.NativeEndian.PutUint32(m.b[m.start:], uint32(len(m.b)-m.start))
	m.n++
}

func (m *msgBuf) raw(p ...byte) { m.b = append(m.b, p...) }

func (m *msgBuf) u32(v uint32) { m.b = binary.NativeEndian.AppendUint32(m.b, v) }

func (m *msgBuf) attr(typ uint16, data []byte) {
	m.b = binary.NativeEndian.AppendUint16(m.b, uint16(4+len(data)))
	m.b = binary.NativeEndian.AppendUint16(m.b, typ)
	m.b = append(m.b, data...)
	m.pad()
}

func (m *msgBuf) attrU32(typ uint16, v uint32) {
	m.b = binary.NativeEndian.AppendUint16(m.b, 8)
	m.b = binary.NativeEndian.AppendUint16(m.b, typ)
	m.b = binary.NativeEndian.AppendUint32(m.b, v)
}

func (m *msgBuf) attrU16(typ uint16, v uint16) {
	m.b = binary.NativeEndian.AppendUint16(m.b, 6)
	m.b = binary.NativeEndian.AppendUint16(m.b, typ)
	m.b = binary.NativeEndian.AppendUint16(m.b, v)
	m.pad()
}

// nest starts a nested attribute (or an rtnexthop, whose length is a u16 at
// the same place); close it with endNest.
func (m *msgBuf) nest(typ uint16) int {
	off := len(m.b)
	m.b = binary.NativeEndian.AppendUint16(m.b, 0)
	m.b = binary.NativeEndian.AppendUint16(m.b, typ)
	return off
}

func (m *msgBuf) endNest(off int) {
	binary.NativeEndian.PutUint16(m.b[off:], uint16(len(m.b)-off))
	m.pad()
}

func (m *msgBuf) pad() {
	for len(m.b)%4 != 0 {
		m.b = append(m.b, 0)
	}
}

// nextSeq reserves n sequence numbers and returns the first.
func (c *rtnl) nextSeq(n int) uint32 {
	first := c.seq + 1
	c.seq += uint32(n)
	return first
}

// exec sends the messages in m, numbered first, first+1, ... (the last one
// carries NLM_F_ACK), and reports each error answer to fail with the index
// of its message. It returns an error only if the batch as a whole could not
// be sent or its answers not read; then no message's outcome is known.
func (c *rtnl) exec(m *msgBuf, first uint32, fail func(i int, err error)) error {
	if m.n == 0 {
		return nil
	}
	last := first + uint32(m.n) - 1
	// Only the last message asks for an ack: the kernel answers the others
	// only if they fail, and its ack tells that all have been handled.
	fl := binary.NativeEndian.Uint16(m.b[m.start+6:])
	binary.NativeEndian.PutUint16(m.b[m.start+6:], fl|unix.NLM_F_ACK)
	for {
		err := unix.Sendto(c.fd, m.b, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK})
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("send %d netlink requests: %w", m.n, err)
		}
		break
	}
	for {
		done := false
		err := c.recv(func(h unix.NlMsghdr, data []byte) bool {
			if h.Seq < first || h.Seq > last || h.Type != unix.NLMSG_ERROR {
				return true // stale answer of an earlier, abandoned batch
			}
			if err := parseError(h, data); err != nil {
				fail(int(h.Seq-first), err)
			}
			if h.Seq == last {
				done = true
				return false
			}
			return true
		})
		if err != nil {
			return fmt.Errorf("read netlink answers: %w", err)
		}
		if done {
			return nil
		}
	}
}

// recv reads one datagram and hands each message to f until f returns false.
func (c *rtnl) recv(f func(h unix.NlMsghdr, data []byte) bool) error {
	var n int
	var err error
	for {
		n, _, err = unix.Recvfrom(c.fd, c.rx, 0)
		if err == unix.EINTR {
			continue
		}
		break
	}
	if err != nil {
		return err
	}
	b := c.rx[:n]
	for len(b) >= unix.NLMSG_HDRLEN {
		h := unix.NlMsghdr{
			Len:   binary.NativeEndian.Uint32(b[0:]),
			Type:  binary.NativeEndian.Uint16(b[4:]),
			Flags: binary.NativeEndian.Uint16(b[6:]),
			Seq:   binary.NativeEndian.Uint32(b[8:]),
			Pid:   binary.NativeEndian.Uint32(b[12:]),
		}
		if h.Len < unix.NLMSG_HDRLEN || int(h.Len) > len(b) {
			return fmt.Errorf("malformed netlink message (length %d of %d)", h.Len, len(b))
		}
		if !f(h, b[unix.NLMSG_HDRLEN:h.Len]) {
			return nil
		}
		b = b[min(len(b), nlAlign(int(h.Len))):]
	}
	return nil
}

// parseError decodes an NLMSG_ERROR payload: nil for an ack.
func parseError(h unix.NlMsghdr, data []byte) error {
	if len(data) < 4 {
		return errors.New("short netlink error message")
	}
	code := int32(binary.NativeEndian.Uint32(data))
	if code == 0 {
		return nil
	}
	e := &kernelError{errno: unix.Errno(-code)}
	if h.Flags&unix.NLM_F_ACK_TLVS == 0 || len(data) < 4+unix.NLMSG_HDRLEN {
		return e
	}
	off := 4 + unix.NLMSG_HDRLEN
	if h.Flags&unix.NLM_F_CAPPED == 0 {
		off = 4 + nlAlign(int(binary.NativeEndian.Uint32(data[4:])))
	}
	if off > len(data) {
		return e
	}
	forAttrs(data[off:], func(typ uint16, v []byte) {
		if typ == unix.NLMSGERR_ATTR_MSG {
			e.msg = cString(v)
		}
	})
	return e
}

// dump sends one dump request built by req and hands every answer message
// to f. A dump the kernel marks interrupted (a concurrent change) returns
// errDumpInterrupted after reading it to the end.
func (c *rtnl) dump(req func(m *msgBuf, seq uint32), f func(typ uint16, flags uint16, data []byte) error) error {
	var m msgBuf
	seq := c.nextSeq(1)
	req(&m, seq)
	if err := unix.Sendto(c.fd, m.b, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("send dump request: %w", err)
	}
	var ferr error
	intr := false
	for {
		done := false
		err := c.recv(func(h unix.NlMsghdr, data []byte) bool {
			if h.Seq != seq {
				return true
			}
			if h.Flags&unix.NLM_F_DUMP_INTR != 0 {
				intr = true
			}
			switch h.Type {
			case unix.NLMSG_DONE:
				done = true
				if len(data) >= 4 {
					if code := int32(binary.NativeEndian.Uint32(data)); code != 0 {
						ferr = errors.Join(ferr, unix.Errno(-code))
					}
				}
				return false
			case unix.NLMSG_ERROR:
				done = true
				if err := parseError(h, data); err != nil {
					ferr = errors.Join(ferr, err)
				}
				return false
			}
			if ferr == nil {
				ferr = f(h.Type, h.Flags, data)
			}
			return true
		})
		if err != nil {
			return fmt.Errorf("read dump: %w", err)
		}
		if done {
			break
		}
	}
	if ferr != nil {
		return ferr
	}
	if intr {
		return errDumpInterrupted
	}
	return nil
}

var errDumpInterrupted = errors.New("dump interrupted by a concurrent change")

func nlAlign(n int) int { return (n + 3) &^ 3 }

// forAttrs calls f for each rtattr in b.
func forAttrs(b []byte, f func(typ uint16, v []byte)) {
	for len(b) >= 4 {
		l := int(binary.NativeEndian.Uint16(b))
		typ := binary.NativeEndian.Uint16(b[2:])
		if l < 4 || l > len(b) {
			return
		}
		f(typ&^(syscall.NLA_F_NESTED|syscall.NLA_F_NET_BYTEORDER), b[4:l])
		b = b[min(len(b), nlAlign(l)):]
	}
}

func cString(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}
