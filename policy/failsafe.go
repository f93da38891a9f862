package policy

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// Failsafe rules (SlotFailsafeIn, SlotFailsafeOut): what the host keeps
// whatever the ACLs and workload policy say. The base chains jump to them
// before any user slot, so their accepts end the hook's evaluation and no
// user rule sees these packets; config can add ports (Failsafe) but not
// take any away.
//
// Kept, in both directions (the host serving and the host as a client):
//   - loopback;
//   - BGP, tcp/179 either port, with the configured neighbors only
//     (SetBGPPeers4/6). Stateless, so a session survives whatever
//     conntrack thinks of it (a session picked up mid-stream after a
//     restart has its directions guessed); the price is that a neighbor,
//     trusted that far, reaches any host port from its source port 179;
//   - SSH tcp/22, the gNMI port and the extra TCP ports (SetFailsafeTCP),
//     BFD udp/3784 (single hop), 3785 (echo), 4784 (multihop) and the
//     extra UDP ports (SetFailsafeUDP), from and to any address. BFD is
//     not limited to the BGP neighbors: echo packets come back with the
//     host's own source address, a BFD session may watch a static
//     route's next hop that is no BGP neighbor, and single-hop BFD checks
//     TTL 255 itself (RFC 5881), so an off-link sender gets nowhere;
//   - ICMP echo, destination unreachable (PMTU's fragmentation needed is
//     one), time exceeded, parameter problem; ICMPv6 the same plus packet
//     too big and NDP (router and neighbor solicitation and advertisement,
//     redirect: types 133-137).
//
// The host serving a failsafe port is matched statelessly (input: the
// destination port; output: the source port). Replies to the host's own
// connections to such a port come back from it as a source port: those
// are accepted on input only once conntrack has seen the flow established,
// because a bare source-port match would let anyone reach any port from
// source port 22. There is deliberately no general `ct state
// established,related accept` here: it would keep flows an ACL or policy
// later denies.
//
// Membership is data here too: a neighbor or port change is element
// changes (failsafeElements); the chains never change.
const (
	SetBGPPeers4     = "bgp-peers4"      // ipv4_addr: BGP neighbors
	SetBGPPeers6     = "bgp-peers6"      // ipv6_addr
	SetFailsafeTCP   = "failsafe-tcp"    // inet_service: SSH, gNMI, extras
	SetFailsafeUDP   = "failsafe-udp"    // inet_service: BFD, extras
	SetFailsafeICMP  = "failsafe-icmp"   // icmp_type
	SetFailsafeICMP6 = "failsafe-icmpv6" // icmpv6_type
)

// Well-known failsafe ports.
const (
	PortBGP         = 179
	PortSSH         = 22
	DefaultGNMIPort = 9339 // IANA's gNMI port
	PortBFD         = 3784 // single-hop control (RFC 5881)
	PortBFDEcho     = 3785
	PortBFDMultihop = 4784 // RFC 5883
)

// ICMP types kept: echo reply, destination unreachable, echo request, time
// exceeded, parameter problem.
var failsafeICMPTypes = []byte{0, 3, 8, 11, 12}

// ICMPv6 types kept: destination unreachable, packet too big, time
// exceeded, parameter problem, echo request and reply, NDP (133-137).
var failsafeICMP6Types = []byte{1, 2, 3, 4, 128, 129, 133, 134, 135, 136, 137}

// FailsafeConfig is what the failsafe rules keep beside the fixed list.
type FailsafeConfig struct {
	// Neighbors are the configured BGP neighbors' addresses (the daemon
	// gives them; policy knows nothing else of BGP).
	Neighbors []netip.Addr
	// GNMIPort is the gNMI server's TCP port; 0 means DefaultGNMIPort.
	GNMIPort uint16
	// Extra are the configured additional ports (Intent.FailsafeExtra).
	Extra Failsafe
}

func (c FailsafeConfig) gnmiPort() uint16 {
	if c.GNMIPort == 0 {
		return DefaultGNMIPort
	}
	return c.GNMIPort
}

// FailsafeService is one service the failsafe rules keep.
type FailsafeService struct {
	Name  string // bgp, ssh, gnmi, bfd, bfd-echo, bfd-multihop, extra, icmp, icmpv6
	Proto uint8  // ProtoTCP, ProtoUDP, ProtoICMP or ProtoICMPv6
	Port  uint16 // 0 for ICMP
}

func (s FailsafeService) String() string {
	switch s.Proto {
	case ProtoTCP:
		return fmt.Sprintf("tcp/%d (%s)", s.Port, s.Name)
	case ProtoUDP:
		return fmt.Sprintf("udp/%d (%s)", s.Port, s.Name)
	}
	return s.Name
}

// Services lists what c keeps, the built-in services first; a port given
// twice is listed once, under its first name. BGP (tcp/179) is kept with
// the neighbors only, unless the extra ports add tcp/179 for everyone.
func (c FailsafeConfig) Services() []FailsafeService {
	out := []FailsafeService{{"bgp", ProtoTCP, PortBGP}}
	type key struct {
		proto uint8
		port  uint16
	}
	seen := map[key]bool{}
	add := func(s FailsafeService) {
		k := key{s.Proto, s.Port}
		if seen[k] || (HasPorts(s.Proto) && s.Port == 0) {
			return
		}
		seen[k] = true
		out = append(out, s)
	}
	add(FailsafeService{"ssh", ProtoTCP, PortSSH})
	add(FailsafeService{"gnmi", ProtoTCP, c.gnmiPort()})
	add(FailsafeService{"bfd", ProtoUDP, PortBFD})
	add(FailsafeService{"bfd-echo", ProtoUDP, PortBFDEcho})
	add(FailsafeService{"bfd-multihop", ProtoUDP, PortBFDMultihop})
	for _, p := range c.Extra.TCP {
		add(FailsafeService{"extra", ProtoTCP, p})
	}
	for _, p := range c.Extra.UDP {
		add(FailsafeService{"extra", ProtoUDP, p})
	}
	add(FailsafeService{"icmp", ProtoICMP, 0})
	add(FailsafeService{"icmpv6", ProtoICMPv6, 0})
	return out
}

// Covers reports whether traffic of protocol proto to destination port
// port of the host is (partly) a failsafe service, which no policy can
// cut: for ICMP and ICMPv6 the port is ignored (the types NDP, PMTU and
// ping need are kept); tcp/179 is kept for the configured neighbors.
func (c FailsafeConfig) Covers(proto uint8, port uint16) bool {
	for _, s := range c.Services() {
		if s.Proto == proto && (s.Port == port || !HasPorts(proto)) {
			return true
		}
	}
	return false
}

// Cut lists the failsafe services a rule that drops traffic to the host
// of protocol proto (0: any) to destination ports ports (empty: any)
// would have cut. The engine puts them in the status: the policy is
// accepted, but these services stay reachable.
func (c FailsafeConfig) Cut(proto uint8, ports []PortRange) []FailsafeService {
	var out []FailsafeService
	for _, s := range c.Services() {
		if proto != 0 && s.Proto != proto {
			continue
		}
		if len(ports) > 0 && HasPorts(s.Proto) && !slices.ContainsFunc(ports, func(r PortRange) bool {
			return r.First <= s.Port && s.Port <= r.Last
		}) {
			continue
		}
		out = append(out, s)
	}
	return out
}

// failsafeSlots are the SlotFailsafeIn and SlotFailsafeOut chains, the
// sets they look up and c's elements of those sets. The chains and sets
// are the same for any c; a change of c is a change of elements.
func failsafeSlots(c FailsafeConfig) ([]Chain, []Set, map[string][]Element) {
	sets := []Set{
		{Name: SetBGPPeers4, KeyType: nftables.TypeIPAddr},
		{Name: SetBGPPeers6, KeyType: nftables.TypeIP6Addr},
		{Name: SetFailsafeTCP, KeyType: nftables.TypeInetService},
		{Name: SetFailsafeUDP, KeyType: nftables.TypeInetService},
		{Name: SetFailsafeICMP, KeyType: nftables.TypeICMPType},
		{Name: SetFailsafeICMP6, KeyType: nftables.TypeICMP6Type},
	}
	chains := []Chain{failsafeChain(SlotFailsafeIn, true), failsafeChain(SlotFailsafeOut, false)}
	return chains, sets, failsafeElements(c)
}

// failsafeChain is one direction's chain: in (input) matches the peer as
// the source and the host's service as the destination port, out (output)
// the other way round.
func failsafeChain(name string, in bool) Chain {
	lo, peer4, peer6 := expr.MetaKeyOIFNAME, uint32(16), uint32(24) // daddr
	local, remote := uint32(0), uint32(2)                           // tcp sport, dport
	if in {
		lo, peer4, peer6 = expr.MetaKeyIIFNAME, 12, 8 // saddr
		local, remote = 2, 0
	}
	acc := []expr.Any{&expr.Counter{}, &expr.Verdict{Kind: expr.VerdictAccept}}
	rule := func(id string, parts ...[]expr.Any) ChainRule {
		return ChainRule{ID: id, Exprs: joinExprs(append(parts, acc)...)}
	}
	bgp := func(id string, nfproto byte, off, n uint32, set string, port uint32) ChainRule {
		return rule(id, guardNFProto(nfproto), guardL4Proto(unix.IPPROTO_TCP), []expr.Any{
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: n},
			&expr.Lookup{SourceRegister: 1, SetName: set},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: port, Len: 2},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binary.BigEndian.AppendUint16(nil, PortBGP)},
		})
	}
	port := func(l4 byte, off uint32, set string) []expr.Any {
		return joinExprs(guardL4Proto(l4), []expr.Any{
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: off, Len: 2},
			&expr.Lookup{SourceRegister: 1, SetName: set},
		})
	}
	icmp := func(nfproto, l4 byte, set string) []expr.Any {
		return joinExprs(guardNFProto(nfproto), guardL4Proto(l4), []expr.Any{
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 1},
			&expr.Lookup{SourceRegister: 1, SetName: set},
		})
	}
	rules := []ChainRule{
		rule("loopback", []expr.Any{
			&expr.Meta{Key: lo, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: IfName("lo")},
		}),
		// The neighbor connecting to us and our connection to it.
		bgp("bgp4-local", unix.NFPROTO_IPV4, peer4, 4, SetBGPPeers4, local),
		bgp("bgp4-remote", unix.NFPROTO_IPV4, peer4, 4, SetBGPPeers4, remote),
		bgp("bgp6-local", unix.NFPROTO_IPV6, peer6, 16, SetBGPPeers6, local),
		bgp("bgp6-remote", unix.NFPROTO_IPV6, peer6, 16, SetBGPPeers6, remote),
		// The host's services.
		rule("tcp-local", port(unix.IPPROTO_TCP, local, SetFailsafeTCP)),
		rule("udp-local", port(unix.IPPROTO_UDP, local, SetFailsafeUDP)),
	}
	if in {
		// Replies to the host's own connections to a failsafe port.
		rules = append(rules,
			rule("tcp-remote-established", port(unix.IPPROTO_TCP, remote, SetFailsafeTCP), ctStateEstablished()),
			rule("udp-remote-established", port(unix.IPPROTO_UDP, remote, SetFailsafeUDP), ctStateEstablished()))
	} else {
		// The host connecting to a failsafe port (BFD sends to 3784 too).
		rules = append(rules,
			rule("tcp-remote", port(unix.IPPROTO_TCP, remote, SetFailsafeTCP)),
			rule("udp-remote", port(unix.IPPROTO_UDP, remote, SetFailsafeUDP)))
	}
	rules = append(rules,
		rule("icmp", icmp(unix.NFPROTO_IPV4, unix.IPPROTO_ICMP, SetFailsafeICMP)),
		rule("icmpv6", icmp(unix.NFPROTO_IPV6, unix.IPPROTO_ICMPV6, SetFailsafeICMP6)))
	return Chain{Name: name, Rules: rules}
}

// ctStateEstablished is `ct state established`.
func ctStateEstablished() []expr.Any {
	return []expr.Any{
		&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(expr.CtStateBitESTABLISHED), Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: make([]byte, 4)},
	}
}

// failsafeElements are c's elements of the failsafe sets, by set name (an
// empty set has an empty list, so the engine can replace each set's
// elements with these).
func failsafeElements(c FailsafeConfig) map[string][]Element {
	out := map[string][]Element{SetBGPPeers4: {}, SetBGPPeers6: {}, SetFailsafeTCP: {}, SetFailsafeUDP: {}}
	for _, a := range keyAddrs(c.Neighbors) {
		set := SetBGPPeers6
		if a.Is4() {
			set = SetBGPPeers4
		}
		out[set] = append(out[set], Element{Key: a.AsSlice()})
	}
	for _, s := range c.Services() {
		switch {
		case s.Name == "bgp":
			// With the neighbors only, by its own rules.
		case s.Proto == ProtoTCP:
			out[SetFailsafeTCP] = append(out[SetFailsafeTCP], Element{Key: binary.BigEndian.AppendUint16(nil, s.Port)})
		case s.Proto == ProtoUDP:
			out[SetFailsafeUDP] = append(out[SetFailsafeUDP], Element{Key: binary.BigEndian.AppendUint16(nil, s.Port)})
		}
	}
	for _, t := range failsafeICMPTypes {
		out[SetFailsafeICMP] = append(out[SetFailsafeICMP], Element{Key: []byte{t}})
	}
	for _, t := range failsafeICMP6Types {
		out[SetFailsafeICMP6] = append(out[SetFailsafeICMP6], Element{Key: []byte{t}})
	}
	return out
}
