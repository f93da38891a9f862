package netlink

import (
	"context"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// fakeConn is a Conn whose socket is a script: each send is recorded, each
// receive returns the next datagram built by answer from what was sent.
func fakeConn(answer func(sent []byte, call int) [][]byte) (*Conn, *[][]byte) {
	c := &Conn{rx: make([]byte, 1<<16), dumps: 3}
	var sent [][]byte
	var queue [][]byte
	calls := 0
	c.send = func(b []byte) error {
		sent = append(sent, append([]byte(nil), b...))
		queue = append(queue, answer(b, calls)...)
		calls++
		return nil
	}
	c.recv = func(b []byte) (int, error) {
		if len(queue) == 0 {
			return 0, errors.New("no answer")
		}
		n := copy(b, queue[0])
		queue = queue[1:]
		return n, nil
	}
	return c, &sent
}

func msg(typ uint16, flags uint16, seq uint32, data []byte) []byte {
	b := make([]byte, 16, 16+len(data))
	binary.NativeEndian.PutUint32(b, uint32(16+len(data)))
	binary.NativeEndian.PutUint16(b[4:], typ)
	binary.NativeEndian.PutUint16(b[6:], flags)
	binary.NativeEndian.PutUint32(b[8:], seq)
	b = append(b, data...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

func errMsg(seq uint32, errno unix.Errno) []byte {
	d := binary.NativeEndian.AppendUint32(nil, errnoCode(errno))
	d = append(d, make([]byte, 16)...) // the request's header (capped)
	return msg(unix.NLMSG_ERROR, unix.NLM_F_CAPPED, seq, d)
}

func seqOf(b []byte, i int) uint32 {
	off := 0
	for ; i > 0; i-- {
		off += align(int(binary.NativeEndian.Uint32(b[off:])))
	}
	return binary.NativeEndian.Uint32(b[off+8:])
}

// TestExecMapsAnswersBySequence: two failures in one datagram both reach
// their messages, a stale answer of an earlier batch is skipped, an echo
// goes to its message, and only the last message asks for an ack.
func TestExecMapsAnswersBySequence(t *testing.T) {
	c, sent := fakeConn(func(b []byte, _ int) [][]byte {
		s0 := seqOf(b, 0)
		return [][]byte{
			append(errMsg(s0-5, unix.EBUSY), errMsg(s0+1, unix.ENODEV)...), // stale, then message 1
			msg(unix.RTM_NEWLINK, 0, s0+2, make([]byte, 16)),               // echo of message 2
			append(errMsg(s0+3, unix.EEXIST), errMsg(s0+4, 0)...),          // 3 fails; 4 acks
		}
	})
	var b Batch
	for range 5 {
		b.Begin(unix.RTM_NEWLINK, 0)
		b.Raw(make([]byte, 16)...)
		b.End()
	}
	got := map[int]error{}
	echoes := 0
	err := c.Exec(&b, func(i int, reply netlink.Message, err error) {
		if err != nil {
			got[i] = err
		} else if i == 2 && reply.Header.Type == unix.RTM_NEWLINK {
			echoes++
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || !errors.Is(got[1], unix.ENODEV) || !errors.Is(got[3], unix.EEXIST) || echoes != 1 {
		t.Fatalf("errors %v, %d echoes; want ENODEV on 1, EEXIST on 3, one echo on 2", got, echoes)
	}
	for i := range 5 {
		off := 0
		for k := 0; k < i; k++ {
			off += align(int(binary.NativeEndian.Uint32((*sent)[0][off:])))
		}
		ack := binary.NativeEndian.Uint16((*sent)[0][off+6:])&unix.NLM_F_ACK != 0
		if ack != (i == 4) {
			t.Errorf("message %d: NLM_F_ACK %v", i, ack)
		}
	}
	// A batch without its final ack is a failure of the whole batch.
	c2, _ := fakeConn(func(b []byte, _ int) [][]byte { return [][]byte{errMsg(seqOf(b, 0), unix.EPERM)} })
	if err := c2.Exec(&b, nil); err == nil {
		t.Error("Exec without the last ack succeeded")
	}
}

// TestDumpRetriesOnInterruptFlag: NLM_F_DUMP_INTR on the NLMSG_DONE alone
// restarts the dump; the retry is bounded; the request carries NLM_F_DUMP
// and a new sequence number each time; an error in NLMSG_DONE is returned.
func TestDumpRetriesOnInterruptFlag(t *testing.T) {
	intrUntil := 1
	c, sent := fakeConn(func(b []byte, call int) [][]byte {
		s := seqOf(b, 0)
		var done uint16 = unix.NLM_F_MULTI
		if call < intrUntil {
			done |= unix.NLM_F_DUMP_INTR
		}
		return [][]byte{
			append(msg(unix.RTM_NEWLINK, unix.NLM_F_MULTI, s, nil), msg(unix.RTM_NEWLINK, unix.NLM_F_MULTI, s-1, nil)...),
			msg(unix.NLMSG_DONE, done, s, make([]byte, 4)),
		}
	})
	var req Batch
	req.Begin(unix.RTM_GETLINK, 0)
	req.Raw(make([]byte, 16)...)
	req.End()
	resets, n := 0, 0
	err := c.Dump(context.Background(), &req, func() { resets, n = resets+1, 0 }, func(netlink.Message) error { n++; return nil })
	if err != nil || resets != 2 || n != 1 {
		t.Fatalf("Dump: %v, %d attempts, %d messages in the last; want nil, 2, 1", err, resets, n)
	}
	if s0, s1 := seqOf((*sent)[0], 0), seqOf((*sent)[1], 0); s1 == s0 {
		t.Error("the retry reused the sequence number")
	}
	if fl := binary.NativeEndian.Uint16((*sent)[0][6:]); fl&unix.NLM_F_DUMP != unix.NLM_F_DUMP || fl&unix.NLM_F_ACK != 0 {
		t.Errorf("dump request flags %#x", fl)
	}
	intrUntil = 100
	resets = 0
	if err := c.Dump(context.Background(), &req, func() { resets++ }, func(netlink.Message) error { return nil }); !errors.Is(err, ErrDumpInterrupted) || resets != 3 {
		t.Errorf("always interrupted: %v after %d attempts, want ErrDumpInterrupted after 3", err, resets)
	}
	c3, _ := fakeConn(func(b []byte, _ int) [][]byte {
		return [][]byte{msg(unix.NLMSG_DONE, unix.NLM_F_MULTI, seqOf(b, 0), binary.NativeEndian.AppendUint32(nil, errnoCode(unix.EMSGSIZE)))}
	})
	if err := c3.Dump(context.Background(), &req, nil, func(netlink.Message) error { return nil }); !errors.Is(err, unix.EMSGSIZE) {
		t.Errorf("error in NLMSG_DONE: %v, want EMSGSIZE", err)
	}
}

// errnoCode is the wire form of an error: the negative errno.
func errnoCode(e unix.Errno) uint32 { return uint32(-int32(e)) }
