package netlink

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Error is the kernel's answer to a failed request: the errno and, with
// extended acks, the kernel's message and the offset of the attribute it
// refers to. errors.Is(err, unix.EEXIST) and the like match it.
type Error struct {
	Errno   unix.Errno
	Message string
	Offset  int
}

func (e *Error) Error() string {
	if e.Message != "" {
		return e.Errno.Error() + " (" + e.Message + ")"
	}
	return e.Errno.Error()
}

func (e *Error) Unwrap() error { return e.Errno }

// ErrDumpInterrupted is the error of a dump the kernel marked interrupted
// (NLM_F_DUMP_INTR: the dumped table changed meanwhile) on every attempt.
var ErrDumpInterrupted = errors.New("dump interrupted by concurrent changes")

// Exec sends the messages of b in one sendmsg, numbered with consecutive
// sequence numbers, and reads their answers, each mapped back to the index
// of its message in b: f gets err (an *Error) for a message that failed,
// and reply for any other answer (the copy NLM_F_ECHO asks for, the reply
// to a GET); reply.Data is valid only during the call. A successful
// message is not reported.
//
// Only the last message asks for an ack (NLM_F_ACK is set here): the
// kernel handles the messages of one sendmsg in order, in the sender's
// context, answers each failure whatever its flags and goes on with the
// next message, so the last ack marks the end and nothing else is read
// for the messages that succeeded. That is what lets fib write 160k
// routes a second.
//
// Exec returns an error only when the batch as a whole failed (not sent,
// answers unreadable, no answer within the receive timeout); then no
// message's outcome is known. Answers that come late for such a batch are
// recognised by their sequence numbers and skipped by later calls. Keep a
// batch under the socket's send buffer (WithSocketBuffers); b is left as
// sent and may be Reset and reused. A dump request belongs in Dump, not in
// a batch.
func (c *Conn) Exec(b *Batch, f func(i int, reply netlink.Message, err error)) error {
	n := uint32(b.n)
	if n == 0 {
		return nil
	}
	first := c.seq + 1
	c.seq += n
	b.number(first, true)
	if err := c.send(b.b); err != nil {
		return fmt.Errorf("send %d netlink requests: %w", n, err)
	}
	for done := false; !done; {
		k, err := c.recv(c.rx)
		if err != nil {
			return fmt.Errorf("read answers to %d netlink requests: %w", n, err)
		}
		err = eachMessage(c.rx[:k], func(m netlink.Message) bool {
			i := m.Header.Sequence - first // wraps for older answers
			if i >= n {
				return true // an answer to an abandoned batch
			}
			if m.Header.Type != netlink.Error {
				if f != nil {
					f(int(i), m, nil)
				}
				return true
			}
			if err := parseError(m, true); err != nil && f != nil {
				f(int(i), netlink.Message{}, err)
			}
			done = i == n-1
			return !done
		})
		if err != nil {
			return fmt.Errorf("read answers to %d netlink requests: %w", n, err)
		}
	}
	return nil
}

// Dump sends the one request in req as a dump (NLM_F_DUMP is added) and
// calls f for every answer; msg.Data is valid only during the call. If the
// kernel marks the dump interrupted (NLM_F_DUMP_INTR), the dump starts
// again: reset (if not nil) is called before every attempt, the first
// included, so f's caller can drop what an interrupted attempt gave. After
// WithDumpAttempts attempts it gives up with ErrDumpInterrupted. The first
// error of f ends the dump (its answers are still read) and is returned.
// ctx is checked between attempts.
func (c *Conn) Dump(ctx context.Context, req *Batch, reset func(), f func(msg netlink.Message) error) error {
	if req.n != 1 {
		return fmt.Errorf("dump: %d requests, want 1", req.n)
	}
	what := "dump " + typeName(binary.NativeEndian.Uint16(req.b[4:]))
	fl := binary.NativeEndian.Uint16(req.b[6:])
	binary.NativeEndian.PutUint16(req.b[6:], fl|unix.NLM_F_DUMP)
	for attempt := 1; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		if reset != nil {
			reset()
		}
		intr, err := c.dumpOnce(req, f)
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		if !intr {
			return nil
		}
		if attempt >= c.dumps {
			return fmt.Errorf("%s: %w (%d attempts)", what, ErrDumpInterrupted, attempt)
		}
	}
}

// dumpOnce runs one attempt of a dump and reports whether the kernel
// marked it interrupted.
func (c *Conn) dumpOnce(req *Batch, f func(netlink.Message) error) (intr bool, err error) {
	c.seq++
	seq := c.seq
	req.number(seq, false)
	if err := c.send(req.b); err != nil {
		return false, fmt.Errorf("send request: %w", err)
	}
	var ferr error
	for done := false; !done; {
		k, err := c.recv(c.rx)
		if err != nil {
			return false, fmt.Errorf("read: %w", err)
		}
		err = eachMessage(c.rx[:k], func(m netlink.Message) bool {
			if m.Header.Sequence != seq {
				return true
			}
			if m.Header.Flags&netlink.DumpInterrupted != 0 {
				intr = true
			}
			switch m.Header.Type {
			case netlink.Done:
				done = true
				ferr = errors.Join(ferr, parseError(m, false))
				return false
			case netlink.Error:
				done = true
				ferr = errors.Join(ferr, parseError(m, true))
				return false
			}
			if ferr == nil {
				ferr = f(m)
			}
			return true
		})
		if err != nil {
			return false, fmt.Errorf("read: %w", err)
		}
	}
	return intr, ferr
}

// parseError decodes the errno (nil for an ack) and the extended-ack TLVs
// of an NLMSG_ERROR (hasHeader: the request's header, or all of it, comes
// between them) or of an NLMSG_DONE.
func parseError(m netlink.Message, hasHeader bool) error {
	d := m.Data
	if len(d) < 4 {
		if m.Header.Type == netlink.Done {
			return nil
		}
		return errors.New("short netlink error message")
	}
	code := int32(binary.NativeEndian.Uint32(d))
	if code == 0 {
		return nil
	}
	e := &Error{Errno: unix.Errno(-code)}
	if m.Header.Flags&netlink.AcknowledgeTLVs == 0 {
		return e
	}
	off := 4
	if hasHeader {
		if len(d) < 4+unix.NLMSG_HDRLEN {
			return e
		}
		off += unix.NLMSG_HDRLEN
		if m.Header.Flags&netlink.Capped == 0 {
			off = 4 + align(int(binary.NativeEndian.Uint32(d[4:])))
		}
	}
	if off > len(d) {
		return e
	}
	ad, err := netlink.NewAttributeDecoder(d[off:])
	if err != nil {
		return e
	}
	for ad.Next() {
		switch ad.Type() {
		case unix.NLMSGERR_ATTR_MSG:
			e.Message = ad.String()
		case unix.NLMSGERR_ATTR_OFFS:
			e.Offset = int(ad.Uint32())
		}
	}
	return e
}

func typeName(t uint16) string {
	switch t {
	case unix.RTM_GETLINK:
		return "links"
	case unix.RTM_GETADDR:
		return "addresses"
	case unix.RTM_GETROUTE:
		return "routes"
	case unix.RTM_GETNEIGH:
		return "neighbours"
	case unix.RTM_GETRULE:
		return "rules"
	case unix.RTM_GETNEXTHOP:
		return "nexthops"
	}
	return fmt.Sprintf("of message type %d", t)
}
