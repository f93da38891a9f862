package main

import (
	"io"
	"net/netip"
	"testing"

	"github.com/switchd/switchd/fib"
	"github.com/switchd/switchd/gnmi"
	"github.com/switchd/switchd/switchd/daemon/state"
)

// BenchmarkShowRoute100k: switchd show route (and --json, and one
// address's longest match) of 100,000 routes over 4 ECMP groups, from
// the AFT source over the local socket: server and client in one
// process (the server's walk and batching, the client's protobuf
// decoding, decoding by path and the table).
func BenchmarkShowRoute100k(b *testing.B) {
	const n = 100_000
	rs := make(aftRoutes, n)
	for i := range rs {
		a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		rs[i] = fib.AFTRoute{Prefix: netip.PrefixFrom(a, 32), Metric: 20, Group: uint32(1 + i%4)}
	}
	var g aftGroups
	for id := uint64(1); id <= 4; id++ {
		g.gs = append(g.gs, fib.AFTGroup{ID: id, Members: []fib.AFTMember{{NextHop: id, Weight: 1}, {NextHop: id + 4, Weight: 1}}})
	}
	for id := uint64(1); id <= 8; id++ {
		g.nhs = append(g.nhs, fib.AFTNextHop{ID: id, Gateway: netip.AddrFrom4([4]byte{192, 0, 2, byte(id)}), Ifindex: int(id)})
	}
	sock, s := startServer(b, gnmi.Options{})
	a := state.NewAFT(rs, g, s, state.AFTOptions{Origin: func(fib.AFTRoute) string { return "BGP" }, Ifname: func(i int) string { return "swp" + string(rune('0'+i)) }})
	if err := s.AddSource(state.AFTPrefix(), a); err != nil {
		b.Fatal(err)
	}
	for _, args := range [][]string{{"route"}, {"route", "--json"}, {"route", "10.1.2.3"}} {
		b.Run(args[len(args)-1], func(b *testing.B) {
			for b.Loop() {
				if code := run(append([]string{"show", "--gnmi-socket", sock}, args...), io.Discard, stderrT{b}); code != 0 {
					b.Fatalf("exit %d", code)
				}
			}
		})
	}
}

// stderrT logs what a run printed on stderr, to say why it failed.
type stderrT struct{ b *testing.B }

func (w stderrT) Write(p []byte) (int, error) { w.b.Log(string(p)); return len(p), nil }
