package bench

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/switchd/switchd/sim/ns"
)

// fibCounter follows one namespace's main IPv4 table and tells when every
// prefix of a range is there with a given route protocol. It listens to
// rtnetlink notifications (one cheap read per route, no dumps while the
// receiver works) and keeps a bit per prefix, so replaces and duplicate
// notifications count once. If the kernel drops notifications (ENOBUFS)
// it falls back to dumping the table every pollEvery.
type fibCounter struct {
	fd    int
	n     *ns.NS
	proto uint8
	rng   prefixRange

	mu     sync.Mutex // guards the fields below
	seen   []uint64
	count  int
	marks  []time.Time // marks[i]: when count first reached (i+1)/10 of the range
	fullAt time.Time
	lost   bool
	err    error

	full chan struct{} // closed once count reaches rng.count
	stop chan struct{}
	done chan struct{}
}

// prefixRange is count prefixes of length bits from first, back to back.
type prefixRange struct {
	base  uint32
	bits  int
	count int
}

func newPrefixRange(first netip.Prefix, count int) prefixRange {
	return prefixRange{base: binary.BigEndian.Uint32(first.Addr().AsSlice()), bits: first.Bits(), count: count}
}

// index returns the position of dst/dstLen in the range, or -1.
func (r prefixRange) index(dst uint32, dstLen int) int {
	if dstLen != r.bits || dst < r.base {
		return -1
	}
	i := (dst - r.base) >> (32 - r.bits)
	if int(i) >= r.count || (dst-r.base)&(1<<(32-r.bits)-1) != 0 {
		return -1
	}
	return int(i)
}

const pollEvery = 50 * time.Millisecond

func newFIBCounter(n *ns.NS, proto int, first netip.Prefix, count int, poll bool) (*fibCounter, error) {
	var fd int
	err := n.Do(func() error {
		var err error
		fd, err = unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("route monitor socket in %s: %w", n.Name, err)
	}
	// Large enough that a million notifications fit even if this process
	// is descheduled for a while (root may exceed rmem_max).
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 512<<20); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("route monitor receive buffer: %w", err)
	}
	// The read loop wakes up now and then to see whether to stop.
	tv := unix.NsecToTimeval((200 * time.Millisecond).Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("route monitor timeout: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: unix.RTMGRP_IPV4_ROUTE}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("route monitor subscribe in %s: %w", n.Name, err)
	}
	c := &fibCounter{
		fd: fd, n: n, proto: uint8(proto), rng: newPrefixRange(first, count),
		seen: make([]uint64, (count+63)/64),
		lost: poll,
		full: make(chan struct{}),
		stop: make(chan struct{}),
		done: make(chan struct{}),
	}
	if count == 0 {
		close(c.full)
	}
	go c.loop()
	return c, nil
}

// Full is closed when every prefix is in the FIB; FullAt says when.
func (c *fibCounter) Full() <-chan struct{} { return c.full }

func (c *fibCounter) FullAt() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.fullAt
}

// Count is the number of prefixes of the range seen in the FIB.
func (c *fibCounter) Count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.count
}

// Lost reports whether notifications were dropped (and dumps took over).
func (c *fibCounter) Lost() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lost
}

func (c *fibCounter) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

func (c *fibCounter) Close() {
	close(c.stop)
	<-c.done
	unix.Close(c.fd)
}

func (c *fibCounter) loop() {
	defer close(c.done)
	buf := make([]byte, 1<<20)
	for {
		select {
		case <-c.stop:
			return
		default:
		}
		if c.isLost() {
			c.poll()
			continue
		}
		nr, _, err := unix.Recvfrom(c.fd, buf, 0)
		switch {
		case errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.ENOBUFS):
			c.mu.Lock()
			c.lost = true
			c.mu.Unlock()
			continue
		case err != nil:
			c.fail(fmt.Errorf("read route notifications in %s: %w", c.n.Name, err))
			return
		}
		c.mu.Lock()
		walkRoutes(buf[:nr], func(typ uint16, table int, proto uint8, dst uint32, dstLen int) {
			if table != unix.RT_TABLE_MAIN || proto != c.proto {
				return
			}
			i := c.rng.index(dst, dstLen)
			if i < 0 {
				return
			}
			w, bit := i/64, uint64(1)<<(i%64)
			switch {
			case typ == unix.RTM_NEWROUTE && c.seen[w]&bit == 0:
				c.seen[w] |= bit
				c.count++
			case typ == unix.RTM_DELROUTE && c.seen[w]&bit != 0:
				c.seen[w] &^= bit
				c.count--
			}
		})
		c.checkFullLocked()
		c.mu.Unlock()
	}
}

func (c *fibCounter) isLost() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lost && c.fullAt.IsZero()
}

func (c *fibCounter) fail(err error) {
	c.mu.Lock()
	c.err = err
	c.mu.Unlock()
}

// poll replaces the bitmap with a dump: the fallback after lost
// notifications.
func (c *fibCounter) poll() {
	seen := make([]uint64, len(c.seen))
	count := 0
	err := dumpRoutes(c.n, func(table int, proto uint8, dst uint32, dstLen int) {
		if table != unix.RT_TABLE_MAIN || proto != c.proto {
			return
		}
		if i := c.rng.index(dst, dstLen); i >= 0 && seen[i/64]&(1<<(i%64)) == 0 {
			seen[i/64] |= 1 << (i % 64)
			count++
		}
	})
	if err != nil {
		c.fail(err)
	}
	c.mu.Lock()
	c.seen, c.count = seen, count
	c.checkFullLocked()
	c.mu.Unlock()
	select {
	case <-c.stop:
	case <-time.After(pollEvery):
	}
}

// Marks returns when the count first reached 10%, 20%, ... 100%.
func (c *fibCounter) Marks() []time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Time(nil), c.marks...)
}

func (c *fibCounter) checkFullLocked() {
	for len(c.marks) < 10 && c.count*10 >= (len(c.marks)+1)*c.rng.count {
		c.marks = append(c.marks, time.Now())
	}
	if c.count == c.rng.count && c.fullAt.IsZero() {
		c.fullAt = time.Now()
		close(c.full)
	}
}

// walkRoutes calls f for each RTM_NEWROUTE/RTM_DELROUTE IPv4 message in b.
func walkRoutes(b []byte, f func(typ uint16, table int, proto uint8, dst uint32, dstLen int)) {
	for len(b) >= unix.NLMSG_HDRLEN {
		l := int(binary.NativeEndian.Uint32(b[0:4]))
		if l < unix.NLMSG_HDRLEN || l > len(b) {
			return
		}
		typ := binary.NativeEndian.Uint16(b[4:6])
		msg := b[unix.NLMSG_HDRLEN:l]
		if (typ == unix.RTM_NEWROUTE || typ == unix.RTM_DELROUTE) && len(msg) >= unix.SizeofRtMsg && msg[0] == unix.AF_INET {
			dstLen, table, proto := int(msg[1]), int(msg[4]), msg[5]
			var dst uint32
			attrs := msg[unix.SizeofRtMsg:]
			for len(attrs) >= unix.SizeofRtAttr {
				al := int(binary.NativeEndian.Uint16(attrs[0:2]))
				at := binary.NativeEndian.Uint16(attrs[2:4])
				if al < unix.SizeofRtAttr || al > len(attrs) {
					break
				}
				switch {
				case at == unix.RTA_DST && al >= 8:
					dst = binary.BigEndian.Uint32(attrs[4:8])
				case at == unix.RTA_TABLE && al >= 8:
					table = int(binary.NativeEndian.Uint32(attrs[4:8]))
				}
				attrs = attrs[min(len(attrs), (al+3)&^3):]
			}
			f(typ, table, proto, dst, dstLen)
		}
		b = b[min(len(b), (l+3)&^3):]
	}
}

// dumpRoutes dumps the IPv4 routes of namespace n.
func dumpRoutes(n *ns.NS, f func(table int, proto uint8, dst uint32, dstLen int)) error {
	var fd int
	err := n.Do(func() error {
		var err error
		fd, err = unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
		return err
	})
	if err != nil {
		return fmt.Errorf("dump routes in %s: %w", n.Name, err)
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("dump routes in %s: %w", n.Name, err)
	}
	req := make([]byte, unix.NLMSG_HDRLEN+unix.SizeofRtMsg)
	binary.NativeEndian.PutUint32(req[0:4], uint32(len(req)))
	binary.NativeEndian.PutUint16(req[4:6], unix.RTM_GETROUTE)
	binary.NativeEndian.PutUint16(req[6:8], unix.NLM_F_REQUEST|unix.NLM_F_DUMP)
	binary.NativeEndian.PutUint32(req[8:12], 1)
	req[unix.NLMSG_HDRLEN] = unix.AF_INET
	if err := unix.Sendto(fd, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("dump routes in %s: %w", n.Name, err)
	}
	buf := make([]byte, 1<<20)
	for {
		nr, _, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			return fmt.Errorf("dump routes in %s: %w", n.Name, err)
		}
		walkRoutes(buf[:nr], func(_ uint16, table int, proto uint8, dst uint32, dstLen int) {
			f(table, proto, dst, dstLen)
		})
		b := buf[:nr]
		for len(b) >= unix.NLMSG_HDRLEN {
			l := int(binary.NativeEndian.Uint32(b[0:4]))
			typ := binary.NativeEndian.Uint16(b[4:6])
			flags := binary.NativeEndian.Uint16(b[6:8])
			if l < unix.NLMSG_HDRLEN || l > len(b) {
				return fmt.Errorf("dump routes in %s: bad netlink message length %d", n.Name, l)
			}
			switch typ {
			case unix.NLMSG_DONE:
				if flags&unix.NLM_F_DUMP_INTR != 0 {
					return fmt.Errorf("dump routes in %s: interrupted", n.Name)
				}
				return nil
			case unix.NLMSG_ERROR:
				if l >= unix.NLMSG_HDRLEN+4 {
					if e := int32(binary.NativeEndian.Uint32(b[unix.NLMSG_HDRLEN:])); e != 0 {
						return fmt.Errorf("dump routes in %s: %w", n.Name, unix.Errno(-e))
					}
				}
				return nil
			}
			b = b[min(len(b), (l+3)&^3):]
		}
	}
}

// countFIB counts the prefixes of rng in n's main table with protocol
// proto, by a dump.
func countFIB(n *ns.NS, proto int, rng prefixRange) (int, error) {
	seen := make([]uint64, (rng.count+63)/64)
	count := 0
	err := dumpRoutes(n, func(table int, p uint8, dst uint32, dstLen int) {
		if table != unix.RT_TABLE_MAIN || int(p) != proto {
			return
		}
		if i := rng.index(dst, dstLen); i >= 0 && seen[i/64]&(1<<(i%64)) == 0 {
			seen[i/64] |= 1 << (i % 64)
			count++
		}
	})
	return count, err
}
