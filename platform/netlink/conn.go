package netlink

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// DefaultReceiveTimeout bounds a wait for the kernel's answer to a
// request (Exec, Dump): the kernel answers rtnetlink requests while it
// handles the sendmsg, so a longer wait means the socket is broken.
const DefaultReceiveTimeout = 30 * time.Second

// DefaultDumpAttempts bounds how often Dump starts a dump again after the
// kernel marked it interrupted.
const DefaultDumpAttempts = 10

// Conn is a netlink socket in a namespace: strict checking and extended
// acks on, answers to batches mapped back to their messages by sequence
// number, EINTR retried, waits for answers bounded by a receive timeout.
//
// The socket is a github.com/mdlayher/netlink Conn (Raw). Requests and
// answers of Exec, Dump and Receive take a raw path over its SyscallConn,
// because its Receive cannot report per-message errors of a batch: it
// stops at the first error message of a datagram (the answers after it
// are lost) and drops NLMSG_DONE, which carries a dump's
// NLM_F_DUMP_INTR. The raw path also reads every datagram into one
// reusable buffer instead of allocating one per datagram.
//
// A Conn is not safe for concurrent use (one request at a time), except
// Close, which unblocks a waiting Receive.
type Conn struct {
	nl      *netlink.Conn
	rc      syscall.RawConn
	nsid    NSID
	seq     uint32
	rx      []byte
	timeout time.Duration
	dumps   int

	// send and recv are the socket I/O; tests of pure logic replace them.
	send func(b []byte) error
	recv func(b []byte) (n int, err error)
}

// Option configures Dial.
type Option func(*config)

type config struct {
	timeout        time.Duration
	sndbuf, rcvbuf int
	rxbuf          int
	groups         []uint32
	dumps          int
}

// WithReceiveTimeout bounds each wait for the kernel's answers (0: wait
// forever; the default is DefaultReceiveTimeout). A Conn that only
// receives notifications wants 0 and Close to stop it.
func WithReceiveTimeout(d time.Duration) Option { return func(c *config) { c.timeout = d } }

// WithSocketBuffers sets the kernel's send and receive buffers of the
// socket (0 keeps the default). They are forced past rmem_max/wmem_max
// when the caller may (CAP_NET_ADMIN), else set as far as allowed. A batch
// must fit the send buffer; a burst of notifications the receive buffer.
func WithSocketBuffers(send, recv int) Option {
	return func(c *config) { c.sndbuf, c.rcvbuf = send, recv }
}

// WithReadBuffer sets the size of the user-space buffer one datagram is
// read into (default 64 KiB; the kernel's dump and notification datagrams
// stay below 32 KiB, an answer larger than the buffer is an error).
func WithReadBuffer(n int) Option { return func(c *config) { c.rxbuf = n } }

// WithGroups joins multicast groups (RTNLGRP_*) at dial time.
func WithGroups(groups ...uint32) Option {
	return func(c *config) { c.groups = append(c.groups, groups...) }
}

// WithDumpAttempts sets how often Dump tries a dump the kernel marks
// interrupted before it gives up (default DefaultDumpAttempts).
func WithDumpAttempts(n int) Option { return func(c *config) { c.dumps = n } }

// Dial opens a socket of the netlink family (unix.NETLINK_ROUTE, ...) in
// ns (nil: the calling thread's namespace). The socket keeps its
// namespace for its life.
func Dial(ns *NS, family int, opts ...Option) (*Conn, error) {
	cfg := config{timeout: DefaultReceiveTimeout, rxbuf: 64 << 10, dumps: DefaultDumpAttempts}
	for _, o := range opts {
		o(&cfg)
	}
	nsid, err := ns.ID()
	if err != nil {
		return nil, fmt.Errorf("dial netlink: %w", err)
	}
	var nl *netlink.Conn
	// mdlayher/netlink enters ns itself (Config.NetNS) to create the socket.
	if fd := ns.Fd(); fd >= 0 {
		nl, err = netlink.Dial(family, &netlink.Config{NetNS: fd, Strict: true})
	} else {
		nl, err = netlink.Dial(family, &netlink.Config{Strict: true})
	}
	if err != nil {
		return nil, fmt.Errorf("dial netlink family %d: %w", family, err)
	}
	c := &Conn{nl: nl, nsid: nsid, rx: make([]byte, cfg.rxbuf), timeout: cfg.timeout, dumps: max(cfg.dumps, 1)}
	fail := func(what string, err error) (*Conn, error) {
		nl.Close()
		return nil, fmt.Errorf("dial netlink family %d: %s: %w", family, what, err)
	}
	if c.rc, err = nl.SyscallConn(); err != nil {
		return fail("raw conn", err)
	}
	// Acks carry only the request's header, not the request (a batch of
	// failing routes would echo megabytes).
	if err := nl.SetOption(netlink.CapAcknowledge, true); err != nil {
		return fail("cap acks", err)
	}
	if err := c.setBuffers(cfg.sndbuf, cfg.rcvbuf); err != nil {
		return fail("socket buffers", err)
	}
	if err := c.JoinGroups(cfg.groups...); err != nil {
		return fail("join groups", err)
	}
	c.send, c.recv = c.sendRaw, c.recvRaw
	return c, nil
}

func (c *Conn) setBuffers(snd, rcv int) error {
	for _, b := range []struct{ force, plain, v int }{
		{unix.SO_SNDBUFFORCE, unix.SO_SNDBUF, snd},
		{unix.SO_RCVBUFFORCE, unix.SO_RCVBUF, rcv},
	} {
		if b.v <= 0 {
			continue
		}
		var err error
		cerr := c.rc.Control(func(fd uintptr) {
			if err = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, b.force, b.v); err != nil {
				err = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, b.plain, b.v)
			}
		})
		if err = errors.Join(cerr, err); err != nil {
			return err
		}
	}
	return nil
}

// Close closes the socket; a Receive waiting on it returns an error that
// matches net.ErrClosed.
func (c *Conn) Close() error { return c.nl.Close() }

// Raw is the underlying mdlayher/netlink Conn, for what this type does
// not wrap. Do not read from it while Exec, Dump or Receive may run.
func (c *Conn) Raw() *netlink.Conn { return c.nl }

// PortID is the socket's netlink port id. The kernel stamps notifications
// caused by this socket's requests with it; it is unique within the
// socket's namespace (NSID) only.
func (c *Conn) PortID() uint32 { return c.nl.PID() }

// NSID identifies the namespace the socket lives in.
func (c *Conn) NSID() NSID { return c.nsid }

// JoinGroups joins multicast groups (RTNLGRP_*).
func (c *Conn) JoinGroups(groups ...uint32) error {
	for _, g := range groups {
		if err := c.nl.JoinGroup(g); err != nil {
			return fmt.Errorf("join netlink group %d: %w", g, err)
		}
	}
	return nil
}

// SetFilter attaches a classic BPF program that the kernel runs on every
// datagram before queueing it (a notification is a datagram of its own);
// an empty program removes the filter.
func (c *Conn) SetFilter(prog []bpf.RawInstruction) error {
	var err error
	if len(prog) == 0 {
		err = c.nl.RemoveBPF()
	} else {
		err = c.nl.SetBPF(prog)
	}
	if err != nil {
		return fmt.Errorf("netlink socket filter: %w", err)
	}
	return nil
}

// SetReceiveTimeout changes the bound of waits for answers (0: none).
func (c *Conn) SetReceiveTimeout(d time.Duration) { c.timeout = d }

func (c *Conn) sendRaw(b []byte) error {
	var err error
	werr := c.rc.Write(func(fd uintptr) bool {
		err = unix.Sendto(int(fd), b, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK})
		return err != unix.EAGAIN && err != unix.EINTR
	})
	return errors.Join(werr, err)
}

// recvRaw reads one datagram into b, waiting at most the receive timeout.
func (c *Conn) recvRaw(b []byte) (int, error) {
	if c.timeout > 0 {
		c.nl.SetReadDeadline(time.Now().Add(c.timeout))
	} else {
		c.nl.SetReadDeadline(time.Time{})
	}
	var n, flags int
	var err error
	rerr := c.rc.Read(func(fd uintptr) bool {
		n, _, flags, _, err = unix.Recvmsg(int(fd), b, nil, 0)
		return err != unix.EAGAIN && err != unix.EINTR
	})
	if errors.Is(rerr, os.ErrDeadlineExceeded) {
		return 0, fmt.Errorf("no answer within %v: %w", c.timeout, rerr)
	}
	if err = errors.Join(rerr, err); err != nil {
		return 0, err
	}
	if flags&unix.MSG_TRUNC != 0 {
		return 0, fmt.Errorf("datagram larger than the %d-byte read buffer", len(b))
	}
	return n, nil
}

// Receive reads one datagram and calls f for each message in it until f
// returns false. msg.Data points into a buffer reused by the next read.
// For a notification socket: errors that match unix.ENOBUFS mean the
// kernel dropped notifications (socket overrun), net.ErrClosed that the
// Conn was closed, os.ErrDeadlineExceeded that the receive timeout passed.
func (c *Conn) Receive(f func(msg netlink.Message) bool) error {
	n, err := c.recv(c.rx)
	if err != nil {
		return fmt.Errorf("netlink receive: %w", err)
	}
	return eachMessage(c.rx[:n], f)
}

// eachMessage calls f for each message in the datagram b.
func eachMessage(b []byte, f func(netlink.Message) bool) error {
	for len(b) >= unix.NLMSG_HDRLEN {
		l := int(binary.NativeEndian.Uint32(b))
		if l < unix.NLMSG_HDRLEN || l > len(b) {
			return fmt.Errorf("malformed netlink message (length %d of %d)", l, len(b))
		}
		m := netlink.Message{
			Header: netlink.Header{
				Length:   uint32(l),
				Type:     netlink.HeaderType(binary.NativeEndian.Uint16(b[4:])),
				Flags:    netlink.HeaderFlags(binary.NativeEndian.Uint16(b[6:])),
				Sequence: binary.NativeEndian.Uint32(b[8:]),
				PID:      binary.NativeEndian.Uint32(b[12:]),
			},
			Data: b[unix.NLMSG_HDRLEN:l:l],
		}
		if !f(m) {
			return nil
		}
		b = b[min(len(b), align(l)):]
	}
	return nil
}
