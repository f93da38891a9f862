package fib

import (
	"encoding/binary"
	"syscall"

	pnl "github.com/switchd/switchd/platform/netlink"
	"golang.org/x/sys/unix"
)

// fib talks rtnetlink through platform/netlink: a Conn per socket, whose
// Exec sends a whole Batch in one sendmsg and maps each error answer back
// to its message (only the last message asks for an ack), whose Dump
// repeats a dump the kernel marks interrupted, and whose sockets live in
// the Kernel's namespace. fib keeps its own encoders (kroute.go,
// nhwire.go), which append straight into a reusable Batch, and its own
// decoders, which read the attributes in place (forAttrs) without
// allocating.

// Bounds of one sendmsg. The kernel refuses a message larger than the
// socket's send buffer; both are raised in dialWriteConn.
const (
	maxBatchBytes = 1 << 20
	sendBuffer    = 4 << 20
	recvBuffer    = 32 << 20
)

// dialConn opens a NETLINK_ROUTE socket in ns (nil: the calling thread's
// namespace) with the buffers of a writer.
func dialConn(ns *pnl.NS, opts ...pnl.Option) (*pnl.Conn, error) {
	return pnl.Dial(ns, unix.NETLINK_ROUTE, append([]pnl.Option{pnl.WithSocketBuffers(sendBuffer, recvBuffer)}, opts...)...)
}

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
