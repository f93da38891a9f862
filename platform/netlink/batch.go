package netlink

import (
	"encoding/binary"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Batch is a buffer of netlink requests encoded back to back, as one
// sendmsg carries them. Build a message with Begin, the family header
// (Raw, U32), attributes (Attr...), and End; or Add a netlink.Message
// encoded elsewhere. Conn.Exec numbers the messages and sends them.
//
// A Batch is reused with Reset: a bulk writer (fib installs a million
// routes) encodes straight into its buffer, with no allocation or copy per
// message, which a []netlink.Message (one Data slice each, marshalled
// again on send) would cost.
type Batch struct {
	b     []byte
	start int // offset of the message being built
	n     int // finished messages
}

// Reset empties b and keeps its buffer.
func (b *Batch) Reset() { b.b, b.n = b.b[:0], 0 }

// Len is the number of finished messages.
func (b *Batch) Len() int { return b.n }

// Size is the encoded size in bytes (keep a batch under the socket's
// send buffer: the kernel refuses a larger sendmsg).
func (b *Batch) Size() int { return len(b.b) }

// Bytes is the encoded batch (for tests and for callers that inspect what
// they built); it is valid until the next change.
func (b *Batch) Bytes() []byte { return b.b }

// Begin starts a request of type typ; NLM_F_REQUEST is added to flags.
// Length, sequence number and port id are filled in by End and Exec.
func (b *Batch) Begin(typ uint16, flags netlink.HeaderFlags) {
	b.start = len(b.b)
	b.b = binary.NativeEndian.AppendUint32(b.b, 0)
	b.b = binary.NativeEndian.AppendUint16(b.b, typ)
	b.b = binary.NativeEndian.AppendUint16(b.b, uint16(flags)|unix.NLM_F_REQUEST)
	b.b = binary.NativeEndian.AppendUint32(b.b, 0)
	b.b = binary.NativeEndian.AppendUint32(b.b, 0)
}

// End finishes the message Begin started and returns its index.
func (b *Batch) End() int {
	b.pad()
	binary.NativeEndian.PutUint32(b.b[b.start:], uint32(len(b.b)-b.start))
	b.n++
	return b.n - 1
}

// Add appends a whole message (header type and flags, Data); its length,
// sequence number and port id are set here and by Exec. It returns its
// index.
func (b *Batch) Add(m netlink.Message) int {
	b.Begin(uint16(m.Header.Type), m.Header.Flags)
	b.b = append(b.b, m.Data...)
	return b.End()
}

// Raw appends bytes as they are (a family header such as rtmsg).
func (b *Batch) Raw(p ...byte) { b.b = append(b.b, p...) }

// U32 appends a native-endian u32 outside an attribute.
func (b *Batch) U32(v uint32) { b.b = binary.NativeEndian.AppendUint32(b.b, v) }

// Attr appends an attribute with payload data.
func (b *Batch) Attr(typ uint16, data []byte) {
	b.b = binary.NativeEndian.AppendUint16(b.b, uint16(unix.SizeofRtAttr+len(data)))
	b.b = binary.NativeEndian.AppendUint16(b.b, typ)
	b.b = append(b.b, data...)
	b.pad()
}

// AttrString appends a NUL-terminated string attribute.
func (b *Batch) AttrString(typ uint16, s string) {
	b.b = binary.NativeEndian.AppendUint16(b.b, uint16(unix.SizeofRtAttr+len(s)+1))
	b.b = binary.NativeEndian.AppendUint16(b.b, typ)
	b.b = append(b.b, s...)
	b.b = append(b.b, 0)
	b.pad()
}

// AttrU8 appends a u8 attribute.
func (b *Batch) AttrU8(typ uint16, v uint8) { b.Attr(typ, []byte{v}) }

// AttrU16 appends a native-endian u16 attribute.
func (b *Batch) AttrU16(typ uint16, v uint16) {
	b.b = binary.NativeEndian.AppendUint16(b.b, 6)
	b.b = binary.NativeEndian.AppendUint16(b.b, typ)
	b.b = binary.NativeEndian.AppendUint16(b.b, v)
	b.pad()
}

// AttrU32 appends a native-endian u32 attribute.
func (b *Batch) AttrU32(typ uint16, v uint32) {
	b.b = binary.NativeEndian.AppendUint16(b.b, 8)
	b.b = binary.NativeEndian.AppendUint16(b.b, typ)
	b.b = binary.NativeEndian.AppendUint32(b.b, v)
}

// AttrU64 appends a native-endian u64 attribute.
func (b *Batch) AttrU64(typ uint16, v uint64) {
	b.b = binary.NativeEndian.AppendUint16(b.b, 12)
	b.b = binary.NativeEndian.AppendUint16(b.b, typ)
	b.b = binary.NativeEndian.AppendUint64(b.b, v)
}

// Nest starts a nested attribute (NLA_F_NESTED is not set: rtnetlink does
// not want it) and returns its offset for EndNest. It also serves any
// length-prefixed block whose u16 length sits at the same place, as
// struct rtnexthop.
func (b *Batch) Nest(typ uint16) int {
	off := len(b.b)
	b.b = binary.NativeEndian.AppendUint16(b.b, 0)
	b.b = binary.NativeEndian.AppendUint16(b.b, typ)
	return off
}

// EndNest finishes the nested attribute started at off.
func (b *Batch) EndNest(off int) {
	binary.NativeEndian.PutUint16(b.b[off:], uint16(len(b.b)-off))
	b.pad()
}

func (b *Batch) pad() {
	for len(b.b)%4 != 0 {
		b.b = append(b.b, 0)
	}
}

// number gives the messages consecutive sequence numbers from first and,
// with ack, sets NLM_F_ACK on the last one (see Conn.Exec).
func (b *Batch) number(first uint32, ack bool) {
	last := 0
	for off, i := 0, uint32(0); off+unix.NLMSG_HDRLEN <= len(b.b); i++ {
		binary.NativeEndian.PutUint32(b.b[off+8:], first+i)
		last = off
		off += align(int(binary.NativeEndian.Uint32(b.b[off:])))
	}
	if ack && len(b.b) >= unix.NLMSG_HDRLEN {
		fl := binary.NativeEndian.Uint16(b.b[last+6:])
		binary.NativeEndian.PutUint16(b.b[last+6:], fl|unix.NLM_F_ACK)
	}
}

func align(n int) int { return (n + unix.NLMSG_ALIGNTO - 1) &^ (unix.NLMSG_ALIGNTO - 1) }
