package gnmi

import (
	"fmt"
	"reflect"
	"testing"
	"time"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
	"github.com/openconfig/ygot/ygot"

	"github.com/switchd/switchd/models/oc"
)

// walkOf is what a walk of two leaves returns.
func walkOf(t *testing.T, leaves map[string]uint64) []*gpb.Notification {
	var out []*gpb.Notification
	for p, v := range leaves {
		out = append(out, &gpb.Notification{Timestamp: 1, Update: []*gpb.Update{{Path: mustPath(t, p), Val: uint(v)}}})
	}
	return out
}

func sentStrings(t *testing.T, ns []*gpb.Notification) []string {
	var evs []event
	for _, n := range ns {
		evs = append(evs, events(t, &gpb.SubscribeResponse{Response: &gpb.SubscribeResponse_Update{Update: n}})...)
	}
	return sortedStrings(evs)
}

// TestSampler drives the sampler with a clock of its own through rounds
// of samples and checks, round by round, what goes out.
func TestSampler(t *testing.T) {
	const a, b = "/x/a", "/x/b"
	t0 := time.Unix(1000, 0)
	type round struct {
		at     time.Duration // after t0
		leaves map[string]uint64
		want   []string
	}
	for _, tc := range []struct {
		name      string
		suppress  bool
		heartbeat time.Duration
		rounds    []round
	}{
		{"every sample sends all", false, 0, []round{
			{0, map[string]uint64{a: 1, b: 2}, []string{"/x/a=1", "/x/b=2"}},
			{time.Second, map[string]uint64{a: 1, b: 2}, []string{"/x/a=1", "/x/b=2"}},
			{2 * time.Second, map[string]uint64{a: 3, b: 2}, []string{"/x/a=3", "/x/b=2"}},
		}},
		{"suppress sends changes only", true, 0, []round{
			{0, map[string]uint64{a: 1, b: 2}, []string{"/x/a=1", "/x/b=2"}},
			{time.Second, map[string]uint64{a: 1, b: 2}, nil},
			{2 * time.Second, map[string]uint64{a: 3, b: 2}, []string{"/x/a=3"}},
			{3 * time.Hour, map[string]uint64{a: 3, b: 2}, nil},
		}},
		{"heartbeat resends what suppress held back", true, 3 * time.Second, []round{
			{0, map[string]uint64{a: 1, b: 2}, []string{"/x/a=1", "/x/b=2"}},
			{time.Second, map[string]uint64{a: 1, b: 2}, nil},
			{2 * time.Second, map[string]uint64{a: 5, b: 2}, []string{"/x/a=5"}},
			// b last went out at 0, a at 2 s: only b is due.
			{3 * time.Second, map[string]uint64{a: 5, b: 2}, []string{"/x/b=2"}},
			{4 * time.Second, map[string]uint64{a: 5, b: 2}, nil},
			{5 * time.Second, map[string]uint64{a: 5, b: 2}, []string{"/x/a=5"}},
		}},
		{"a leaf gone goes out as a delete, once", true, 0, []round{
			{0, map[string]uint64{a: 1, b: 2}, []string{"/x/a=1", "/x/b=2"}},
			{time.Second, map[string]uint64{a: 1}, []string{"delete /x/b"}},
			{2 * time.Second, map[string]uint64{a: 1}, nil},
			{3 * time.Second, map[string]uint64{a: 1, b: 2}, []string{"/x/b=2"}},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSampler(tc.suppress, tc.heartbeat)
			for i, r := range tc.rounds {
				got := sentStrings(t, s.sample(t0.Add(r.at), walkOf(t, r.leaves)))
				if !reflect.DeepEqual(got, r.want) {
					t.Errorf("round %d (at %v): sent %q, want %q", i, r.at, got, r.want)
				}
			}
		})
	}
}

// TestSamplerKeepsWalkIntact: the walk hands the sampler the cache's own
// notifications, which other subscribers share; a partial send must be
// a copy.
func TestSamplerKeepsWalkIntact(t *testing.T) {
	n := &gpb.Notification{Timestamp: 1, Update: []*gpb.Update{
		{Path: mustPath(t, "/x/a"), Val: uint(1)}, {Path: mustPath(t, "/x/b"), Val: uint(2)},
	}}
	s := newSampler(true, 0)
	s.sample(time.Unix(0, 0), []*gpb.Notification{n})
	n.Update[1].Val = uint(3) // as a new cached value would be
	out := s.sample(time.Unix(1, 0), []*gpb.Notification{n})
	if got := sentStrings(t, out); !reflect.DeepEqual(got, []string{"/x/b=3"}) {
		t.Fatalf("sent %q, want only /x/b=3", got)
	}
	if len(n.Update) != 2 {
		t.Fatalf("the walked notification was cut to %d updates", len(n.Update))
	}
}

// TestPattern: request paths become cache-form patterns; with the schema
// a list element without (some of) its keys gets "*" for them, so that
// interface/state/oper-status finds every interface.
func TestPattern(t *testing.T) {
	s, err := New(Options{Schema: oc.LazySchemaTree()["Device"]})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		prefix, path string
		want         []string
		wantErr      bool
	}{
		{"", "/interfaces/interface/state/oper-status", []string{"interfaces", "interface", "*", "state", "oper-status"}, false},
		{"", "/interfaces/interface[name=eth0]/state", []string{"interfaces", "interface", "eth0", "state"}, false},
		{"/network-instances/network-instance[name=DEFAULT]", "/protocols/protocol[name=BGP]/bgp",
			// Keys go in key-name order: identifier before name.
			[]string{"network-instances", "network-instance", "DEFAULT", "protocols", "protocol", "*", "BGP", "bgp"}, false},
		{"", "/interfaces/...", []string{"interfaces"}, false},
		{"", "/interfaces/.../oper-status", []string{"interfaces", "...", "oper-status"}, false},
		{"", "/interfaces/interface[name=eth0][bogus=1]/state", nil, true},
	} {
		pre := &gpb.Path{}
		if tc.prefix != "" {
			pre = mustPath(t, tc.prefix)
		}
		got, err := s.pattern(pre, mustPath(t, tc.path))
		if (err != nil) != tc.wantErr || (!tc.wantErr && !reflect.DeepEqual(got, tc.want)) {
			t.Errorf("pattern(%q, %q) = %q, %v; want %q (error %v)", tc.prefix, tc.path, got, err, tc.want, tc.wantErr)
		}
	}
	if _, err := s.pattern(&gpb.Path{Origin: "cli"}, mustPath(t, "/x")); err == nil {
		t.Error("origin cli accepted")
	}
}

func TestMatchPattern(t *testing.T) {
	for _, tc := range []struct {
		pat, p []string
		want   bool
	}{
		{[]string{"a", "*", "c"}, []string{"a", "b", "c", "d"}, true},
		{[]string{"a", "*", "c"}, []string{"a", "b", "x"}, false},
		{[]string{"a", "...", "d"}, []string{"a", "b", "c", "d"}, true},
		{[]string{"a", "...", "d"}, []string{"a", "d"}, true},
		{[]string{"a", "...", "d"}, []string{"a", "b", "c"}, false},
		{[]string{"a", "b"}, []string{"a"}, false},
	} {
		if got := matchPattern(tc.pat, tc.p); got != tc.want {
			t.Errorf("matchPattern(%q, %q) = %v, want %v", tc.pat, tc.p, got, tc.want)
		}
	}
}

// TestBatcher: walked leaves of one timestamp go out as one notification
// whose prefix is the path they share; a new timestamp starts another;
// no leaf loses its own path element.
func TestBatcher(t *testing.T) {
	var sent []*gpb.Notification
	b := batcher{target: "switchd", send: func(n *gpb.Notification) error { sent = append(sent, n); return nil }}
	leaf := func(ts int64, p string) *gpb.Notification {
		return &gpb.Notification{Timestamp: ts, Update: []*gpb.Update{{Path: mustPath(t, p), Val: uint(1)}}}
	}
	for _, n := range []*gpb.Notification{
		leaf(1, "/interfaces/interface[name=eth0]/state/counters/in-pkts"),
		leaf(1, "/interfaces/interface[name=eth0]/state/counters/out-pkts"),
		leaf(1, "/interfaces/interface[name=eth1]/state/counters/in-pkts"),
		leaf(2, "/interfaces/interface[name=eth1]/state/oper-status"),
		{Timestamp: 3, Prefix: mustPath(t, "/system/state"), Update: []*gpb.Update{{Path: mustPath(t, "/hostname"), Val: str("leaf1")}}},
	} {
		if err := b.add(n); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.flush(); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, n := range sent {
		pre, _ := ygot.PathToString(&gpb.Path{Elem: n.GetPrefix().GetElem()})
		got = append(got, fmt.Sprintf("%d %s %v", n.Timestamp, pre, sentStrings(t, []*gpb.Notification{n})))
	}
	want := []string{
		"1 /interfaces [/interfaces/interface[name=eth0]/state/counters/in-pkts=1 /interfaces/interface[name=eth0]/state/counters/out-pkts=1 /interfaces/interface[name=eth1]/state/counters/in-pkts=1]",
		"2 /interfaces/interface[name=eth1]/state [/interfaces/interface[name=eth1]/state/oper-status=1]",
		"3 /system/state [/system/state/hostname=leaf1]",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("sent\n%q\nwant\n%q", got, want)
	}
}

// TestAppendKey: the sampler's key for a leaf is its full path's cache
// strings joined as joinKey joins them, written without making them:
// keys in key-name order, a prefix, the deprecated element field. Two
// leaves differing only in a key value get different keys.
func TestAppendKey(t *testing.T) {
	multi := &gpb.Path{Elem: []*gpb.PathElem{{Name: "a"}, {Name: "l", Key: map[string]string{"z": "1", "b": "2", "m": "3"}}, {Name: "leaf"}}}
	cases := []struct{ prefix, p *gpb.Path }{
		{nil, mustPath(t, eth0InPkt)},
		{mustPath(t, "/interfaces/interface[name=eth0]"), mustPath(t, "/state/counters/in-pkts")},
		{nil, multi},
		{&gpb.Path{Target: "switchd", Elem: multi.Elem[:2]}, &gpb.Path{Elem: multi.Elem[2:]}},
		{nil, &gpb.Path{Element: []string{"a", "b"}}},
	}
	for _, c := range cases {
		want := joinKey(append(toStrings(c.prefix), toStrings(c.p)...))
		if got := string(appendKey(nil, c.prefix, c.p)); got != want {
			t.Errorf("appendKey(%v, %v) = %q, want %q", c.prefix, c.p, got, want)
		}
	}
	a := string(appendKey(nil, nil, mustPath(t, "/interfaces/interface[name=eth0]/state/counters/in-pkts")))
	if b := string(appendKey(nil, nil, mustPath(t, "/interfaces/interface[name=eth1]/state/counters/in-pkts"))); a == b {
		t.Errorf("eth0 and eth1 share the key %q", a)
	}
}
