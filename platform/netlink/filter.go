package netlink

import (
	"encoding/binary"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// MaxFilterPorts bounds the ports DropPortsFilter names: a BPF jump
// offset is a byte.
const MaxFilterPorts = 250

// DropPortsFilter is a socket filter (Conn.SetFilter) for a notification
// socket that drops, in the kernel, every message stamped with one of the
// port ids ports: the kernel stamps a notification with the port id of the
// socket whose request caused it, so a monitor filters out the echoes of
// its own writers (a bulk install echoes every route). Each notification
// is a datagram of its own, so the program sees one message. Ports beyond
// MaxFilterPorts are ignored (the caller checks the rest in user space).
func DropPortsFilter(ports []uint32) []bpf.RawInstruction {
	ports = ports[:min(len(ports), MaxFilterPorts)]
	n := len(ports)
	prog := make([]bpf.RawInstruction, 0, n+3)
	// nlmsg_pid is at offset 12 in host byte order; BPF loads words big
	// endian, so the constants are the host bytes read big endian.
	prog = append(prog, bpf.RawInstruction{Op: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: 12})
	for i, p := range ports {
		var b [4]byte
		binary.NativeEndian.PutUint32(b[:], p)
		// Equal: jump to the drop at the end; else on to the next test.
		prog = append(prog, bpf.RawInstruction{Op: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K,
			K: binary.BigEndian.Uint32(b[:]), Jt: uint8(n - i), Jf: 0})
	}
	return append(prog,
		bpf.RawInstruction{Op: unix.BPF_RET | unix.BPF_K, K: 0xffffffff}, // keep all of it
		bpf.RawInstruction{Op: unix.BPF_RET | unix.BPF_K, K: 0})          // drop
}
