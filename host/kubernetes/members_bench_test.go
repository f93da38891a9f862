package kubernetes

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"testing"

	"github.com/switchd/switchd/policy"
)

// BenchmarkPodMemberChange is the daemon's cost of one remote pod
// relabelled in and out of a peer selector, with 1,000 policies (a peer
// selector each) and pods=N remote pods, on a policy.Engine's desired
// state (no kernel: the nft transaction is the same one element either
// way). impl=index is the MemberIndex with AddMembers/RemoveMembers;
// impl=full is what the daemon did before: Members over every pod and
// selector, then SetMembers of each selector whose list changed (it also
// rebuilt every pod's labels from the cache, not counted here).
func BenchmarkPodMemberChange(b *testing.B) {
	for _, n := range []int{500, 5000} {
		for _, impl := range []string{"full", "index"} {
			b.Run(fmt.Sprintf("pods=%d/impl=%s", n, impl), func(b *testing.B) {
				e, sels, pods := benchCluster(b, 1000, n)
				i0 := n / 2
				orig := pods[i0].Labels
				relabel := func(i int) Pod {
					p := pods[i0]
					p.Labels = maps.Clone(orig)
					if i%2 == 0 {
						p.Labels["app"] = "moved"
					}
					pods[i0] = p
					return p
				}
				remote := func(Pod) bool { return false }
				switch impl {
				case "index":
					x := NewMemberIndex()
					x.SetSelectors(sels)
					for _, p := range pods {
						benchGive(b, e, x.SetPod(p.Key, p, true))
					}
					b.ResetTimer()
					for i := 0; i < b.N; i++ {
						p := relabel(i)
						benchGive(b, e, x.SetPod(p.Key, p, true))
					}
				case "full":
					given := map[string][]netip.Addr{}
					refresh := func() {
						want := membersFull(sels, pods, remote)
						for name := range given {
							if _, ok := want[name]; !ok {
								want[name] = nil
							}
						}
						for name, addrs := range want {
							if slices.Equal(addrs, given[name]) {
								continue
							}
							if err := e.SetMembers("k8s", sels[name], addrs); err != nil {
								b.Fatal(err)
							}
							given[name] = addrs
						}
					}
					refresh()
					b.ResetTimer()
					for i := 0; i < b.N; i++ {
						relabel(i)
						refresh()
					}
				}
			})
		}
	}
}

// benchCluster is an Engine with policies policies, policy i allowing
// from app == "app<i>" in namespace ns<i%20>, and n pods spread over
// those labels.
func benchCluster(b *testing.B, policies, n int) (*policy.Engine, map[string]policy.Selector, []Pod) {
	var in policy.Intent
	for i := range policies {
		peer := policy.MustParseSelector(fmt.Sprintf(`app == "app%d" && k8s.switchd.io/namespace == "ns%d"`, i, i%20))
		in.Policies = append(in.Policies, policy.Policy{Name: fmt.Sprintf("k8s:ns%d/p%d", i%20, i), SelectsIngress: true,
			Selector: policy.MustParseSelector(fmt.Sprintf(`k8s.switchd.io/namespace == "ns%d"`, i%20)),
			Ingress:  []policy.Rule{{Seq: 1, Action: policy.Allow, Peer: policy.Peer{Selector: &peer}}}})
	}
	e := policy.NewEngine(nil)
	b.Cleanup(func() { e.Close() })
	if err := e.SetIntent(in); err != nil {
		b.Fatal(err)
	}
	pods := make([]Pod, n)
	for i := range pods {
		pods[i] = Pod{Key: fmt.Sprintf("ns%d/pod%d", i%20, i), Node: "other",
			Labels: map[string]string{"app": fmt.Sprintf("app%d", i%policies), "k8s.switchd.io/namespace": fmt.Sprintf("ns%d", i%20)},
			Addrs:  []netip.Addr{netip.AddrFrom4([4]byte{10, 100, byte(i >> 8), byte(i)})}}
	}
	return e, PeerSelectors(in.Policies), pods
}

// benchGive gives the engine a MemberIndex's changes, as the daemon does.
func benchGive(b *testing.B, e *policy.Engine, cs []MemberChange) {
	for _, c := range cs {
		if err := e.RemoveMembers("k8s", c.Selector, c.Remove...); err != nil {
			b.Fatal(err)
		}
		if err := e.AddMembers("k8s", c.Selector, c.Add...); err != nil {
			b.Fatal(err)
		}
	}
}

// membersFull is the daemon's member computation before MemberIndex
// (the baseline): for each selector, the addresses of every remote pod
// it matches, sorted.
func membersFull(sels map[string]policy.Selector, pods []Pod, local func(Pod) bool) map[string][]netip.Addr {
	out := map[string][]netip.Addr{}
	for _, p := range pods {
		if len(p.Addrs) == 0 || local(p) {
			continue
		}
		for name, s := range sels {
			if s.Matches(p.Labels) {
				out[name] = append(out[name], p.Addrs...)
			}
		}
	}
	for name, as := range out {
		slices.SortFunc(as, netip.Addr.Compare)
		out[name] = slices.Compact(as)
	}
	return out
}
