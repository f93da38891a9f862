package gnmi

import (
	"context"
	"slices"
	"testing"

	"github.com/openconfig/gnmi/ctree"
	gpb "github.com/openconfig/gnmi/proto/gnmi"
)

// TestUpdateLeavesSharePrefix: a notification of several updates is
// cached a leaf at a time with the prefix it came with, not a copy per
// leaf (the memory of a host's workload interfaces), and what a client
// reads is unchanged: every leaf with its full path and value, a deletion
// of one leaf removing only that leaf.
func TestUpdateLeavesSharePrefix(t *testing.T) {
	s, c := newTestServer(t, Options{})
	pre := &gpb.Path{Elem: mustPath(t, "/interfaces/interface[name=eth0]").GetElem()}
	leaf := func(p string, v *gpb.TypedValue) *gpb.Update { return &gpb.Update{Path: mustPath(t, p), Val: v} }
	if err := s.Update(&gpb.Notification{Timestamp: 1, Prefix: pre, Update: []*gpb.Update{
		leaf("state/oper-status", str("UP")), leaf("config/mtu", uint(1500)), leaf("state/counters/in-pkts", uint(7)),
	}}); err != nil {
		t.Fatal(err)
	}
	var prefixes []*gpb.Path
	err := s.cache.Query(s.Target(), []string{"interfaces"}, func(_ []string, _ *ctree.Leaf, v any) error {
		prefixes = append(prefixes, v.(*gpb.Notification).GetPrefix())
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(prefixes) != 3 || slices.ContainsFunc(prefixes, func(p *gpb.Path) bool { return p != pre }) {
		t.Errorf("the cache's leaves have prefixes %p, want all %p", prefixes, pre)
	}

	if err := s.Update(&gpb.Notification{Timestamp: 2, Prefix: pre, Delete: []*gpb.Path{mustPath(t, "config/mtu")}}); err != nil {
		t.Fatal(err)
	}
	resp, err := c.Get(context.Background(), &gpb.GetRequest{Path: []*gpb.Path{mustPath(t, "/interfaces")}, Encoding: gpb.Encoding_PROTO})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, n := range resp.GetNotification() {
		for _, u := range n.GetUpdate() {
			got = append(got, pathString(t, n, u.GetPath())+"="+valString(u.GetVal()))
		}
	}
	slices.Sort(got)
	if want := []string{eth0InPkt + "=7", eth0Oper + "=UP"}; !slices.Equal(got, want) {
		t.Errorf("Get after the MTU's deletion: %v, want %v", got, want)
	}
}
