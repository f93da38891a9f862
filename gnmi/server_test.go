package gnmi

import (
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

const (
	eth0Oper  = "/interfaces/interface[name=eth0]/state/oper-status"
	eth1Oper  = "/interfaces/interface[name=eth1]/state/oper-status"
	eth0MTU   = "/interfaces/interface[name=eth0]/config/mtu"
	eth0InPkt = "/interfaces/interface[name=eth0]/state/counters/in-pkts"
)

// TestGetJSONIETF: a leaf comes back as its value, a subtree with a
// wildcard as one RFC 7951 object per interface (module-qualified at the
// root, list entries with their keys, 64-bit counters as strings), and
// the type filter picks config or state leaves.
func TestGetJSONIETF(t *testing.T) {
	s, c := newTestServer(t, Options{})
	publish(t, s, 1, eth0Oper, str("UP"))
	publish(t, s, 1, eth1Oper, str("DOWN"))
	publish(t, s, 1, eth0MTU, uint(9000))
	publish(t, s, 1, eth0InPkt, uint(42))

	get := func(typ gpb.GetRequest_DataType, p string) []string {
		t.Helper()
		r, err := c.Get(context.Background(), &gpb.GetRequest{Path: []*gpb.Path{mustPath(t, p)}, Encoding: gpb.Encoding_JSON_IETF, Type: typ})
		if err != nil {
			t.Fatalf("Get %s: %v", p, err)
		}
		var out []string
		for _, n := range r.GetNotification() {
			for _, e := range events(t, &gpb.SubscribeResponse{Response: &gpb.SubscribeResponse_Update{Update: n}}) {
				out = append(out, e.String())
			}
		}
		return out
	}
	if got, want := get(gpb.GetRequest_ALL, eth0Oper), []string{eth0Oper + `="UP"`}; !reflect.DeepEqual(got, want) {
		t.Errorf("Get leaf: %q, want %q", got, want)
	}
	got := get(gpb.GetRequest_ALL, "/interfaces/interface/state/oper-status")
	if want := []string{eth0Oper + `="UP"`, eth1Oper + `="DOWN"`}; !reflect.DeepEqual(got, want) {
		t.Errorf("Get with a wildcard: %q, want %q", got, want)
	}

	r, err := c.Get(context.Background(), &gpb.GetRequest{Path: []*gpb.Path{mustPath(t, "/interfaces")}, Encoding: gpb.Encoding_JSON_IETF})
	if err != nil {
		t.Fatal(err)
	}
	var tree map[string]any
	if err := json.Unmarshal(r.GetNotification()[0].GetUpdate()[0].GetVal().GetJsonIetfVal(), &tree); err != nil {
		t.Fatal(err)
	}
	list, _ := tree["openconfig-interfaces:interface"].([]any)
	if len(list) != 2 {
		t.Fatalf("Get /interfaces: %v, want openconfig-interfaces:interface with 2 interfaces", tree)
	}
	e0 := list[0].(map[string]any)
	if e0["name"] != "eth0" || e0["state"].(map[string]any)["counters"].(map[string]any)["in-pkts"] != "42" ||
		e0["config"].(map[string]any)["mtu"] != float64(9000) {
		t.Errorf("eth0 = %v, want name eth0, in-pkts \"42\" (uint64 as a string), mtu 9000 (uint16 as a number)", e0)
	}

	if got, want := get(gpb.GetRequest_CONFIG, "/interfaces/interface[name=eth0]"), []string{
		`/interfaces/interface[name=eth0]={"name":"eth0","openconfig-interfaces:config":{"mtu":9000}}`}; !reflect.DeepEqual(got, want) {
		t.Errorf("Get CONFIG: %q, want %q", got, want)
	}
	if got := get(gpb.GetRequest_STATE, "/interfaces/interface[name=eth0]"); len(got) != 1 || strings.Contains(got[0], "mtu") || !strings.Contains(got[0], "in-pkts") {
		t.Errorf("Get STATE: %q, want state without config/mtu", got)
	}
	if _, err := c.Get(context.Background(), &gpb.GetRequest{Path: []*gpb.Path{mustPath(t, "/interfaces/interface[name=eth9]")}}); status.Code(err) != codes.NotFound {
		t.Errorf("Get of an interface that is not there: %v, want NotFound", err)
	}
	if got := get(gpb.GetRequest_ALL, "/interfaces/interface[name=*]/state/mtu"); len(got) != 0 {
		t.Errorf("Get with a wildcard matching nothing: %q, want no updates (and no error)", got)
	}
	if _, err := c.Get(context.Background(), &gpb.GetRequest{Prefix: &gpb.Path{Target: "other"}, Path: []*gpb.Path{mustPath(t, "/")}}); status.Code(err) != codes.NotFound {
		t.Errorf("Get of another target: %v, want NotFound", err)
	}
}

// TestStreamMixedModes: one request with an ON_CHANGE and a SAMPLE
// subscription gets the initial state of both before one sync_response;
// then a change reaches the ON_CHANGE subscriber and a delete comes as a
// delete, while the sampled leaf keeps coming unchanged.
func TestStreamMixedModes(t *testing.T) {
	s, c := newTestServer(t, Options{})
	publish(t, s, 1, eth0Oper, str("UP"))
	publish(t, s, 1, eth0InPkt, uint(5))
	sub := startSubscriber(t, c, streamRequest(
		&gpb.Subscription{Path: mustPath(t, "/interfaces/interface/state/oper-status"), Mode: gpb.SubscriptionMode_ON_CHANGE},
		&gpb.Subscription{Path: mustPath(t, "/interfaces/interface/state/counters"), Mode: gpb.SubscriptionMode_SAMPLE, SampleInterval: uint64(200 * time.Millisecond)},
	))
	up, pkts, sync := event{path: eth0Oper, val: "UP"}, event{path: eth0InPkt, val: "5"}, event{sync: true}
	seen := sub.waitFor("sync", func(seen []event, _ error) bool { return count(seen, sync) > 0 })
	if i := indexOf(seen, sync); indexOf(seen, up) > i || indexOf(seen, pkts) > i || indexOf(seen, up) < 0 || indexOf(seen, pkts) < 0 {
		t.Fatalf("saw %v, want oper-status UP and in-pkts 5 before sync", seen)
	}
	publish(t, s, 2, eth0Oper, str("DOWN"))
	sub.waitFor("DOWN", func(seen []event, _ error) bool { return count(seen, event{path: eth0Oper, val: "DOWN"}) == 1 })
	if err := s.Delete(time.Unix(0, 3), mustPath(t, "/interfaces/interface[name=eth0]/state/oper-status")); err != nil {
		t.Fatal(err)
	}
	seen = sub.waitFor("delete and samples", func(seen []event, _ error) bool {
		return count(seen, event{delete: true, path: eth0Oper}) == 1 && count(seen, pkts) >= 3
	})
	if n := count(seen, sync); n != 1 {
		t.Errorf("%d sync responses, want 1: %v", n, seen)
	}
	if n := count(seen, up); n != 1 {
		t.Errorf("oper-status UP came %d times, want once (on change): %v", n, seen)
	}
}

// TestTargetDefined: with CountersSampled as the rule, a TARGET_DEFINED
// subscription to an interface gets the counter again and again while it
// does not change, and oper-status once.
func TestTargetDefined(t *testing.T) {
	s, c := newTestServer(t, Options{TargetDefined: CountersSampled, TargetDefinedInterval: 100 * time.Millisecond})
	publish(t, s, 1, eth0Oper, str("UP"))
	publish(t, s, 1, eth0InPkt, uint(5))
	sub := startSubscriber(t, c, streamRequest(&gpb.Subscription{Path: mustPath(t, "/interfaces/interface[name=eth0]"), Mode: gpb.SubscriptionMode_TARGET_DEFINED}))
	seen := sub.waitFor("three samples", func(seen []event, _ error) bool { return count(seen, event{path: eth0InPkt, val: "5"}) >= 3 })
	if n := count(seen, event{path: eth0Oper, val: "UP"}); n != 1 {
		t.Errorf("oper-status came %d times, want once: %v", n, seen)
	}
}

// fakeSource serves a map of leaves, as fib's table would serve the AFT.
type fakeSource struct {
	mu     sync.Mutex
	leaves map[string]*gpb.Notification
	walks  int
}

func (f *fakeSource) set(t testing.TB, ts int64, p string, v *gpb.TypedValue) *gpb.Notification {
	n := &gpb.Notification{Timestamp: ts, Update: []*gpb.Update{{Path: mustPath(t, p), Val: v}}}
	f.mu.Lock()
	f.leaves[p] = n
	f.mu.Unlock()
	return n
}

func (f *fakeSource) Walk(q []string, fn func(*gpb.Notification) error) error {
	f.mu.Lock()
	f.walks++
	var hits []*gpb.Notification
	for _, n := range f.leaves {
		if matchPattern(q, fullPath(n, n.Update[0].Path)) {
			hits = append(hits, &gpb.Notification{Timestamp: n.Timestamp, Update: n.Update})
		}
	}
	f.mu.Unlock()
	for _, n := range hits {
		if err := fn(n); err != nil {
			return err
		}
	}
	return nil
}

const (
	aftPrefix = "/network-instances/network-instance[name=DEFAULT]/afts"
	route1    = aftPrefix + "/ipv4-unicast/ipv4-entry[prefix=10.0.0.0/24]/state/origin-protocol"
	route2    = aftPrefix + "/ipv4-unicast/ipv4-entry[prefix=10.0.1.0/24]/state/origin-protocol"
)

// TestSource: a subtree served by a Source is walked by Get, ONCE,
// SAMPLE and ON_CHANGE's initial state, and its changes reach ON_CHANGE subscribers
// (a subscription to the whole tree included) without being cached.
func TestSource(t *testing.T) {
	s, c := newTestServer(t, Options{})
	src := &fakeSource{leaves: map[string]*gpb.Notification{}}
	if err := s.AddSource(mustPath(t, aftPrefix), src); err != nil {
		t.Fatal(err)
	}
	src.set(t, 1, route1, str("BGP"))
	publish(t, s, 1, eth0Oper, str("UP"))

	r, err := c.Get(context.Background(), &gpb.GetRequest{Path: []*gpb.Path{mustPath(t, route1)}, Encoding: gpb.Encoding_JSON_IETF})
	if err != nil || len(r.GetNotification()[0].GetUpdate()) != 1 || string(r.GetNotification()[0].GetUpdate()[0].GetVal().GetJsonIetfVal()) != `"BGP"` {
		t.Fatalf("Get of a source leaf: %v, %v; want \"BGP\"", r, err)
	}

	once := startSubscriber(t, c, &gpb.SubscribeRequest{Request: &gpb.SubscribeRequest_Subscribe{Subscribe: &gpb.SubscriptionList{
		Mode: gpb.SubscriptionList_ONCE, Subscription: []*gpb.Subscription{{Path: mustPath(t, "/network-instances")}}}}})
	if seen := once.waitFor("ONCE's end", func(_ []event, err error) bool { return err != nil }); count(seen, event{path: route1, val: "BGP"}) != 1 {
		t.Errorf("ONCE: %v, want route1=BGP", seen)
	}
	sampled := startSubscriber(t, c, streamRequest(&gpb.Subscription{Path: mustPath(t, aftPrefix), Mode: gpb.SubscriptionMode_SAMPLE, SampleInterval: uint64(100 * time.Millisecond)}))
	sampled.waitFor("route1 sampled twice", func(seen []event, _ error) bool { return count(seen, event{path: route1, val: "BGP"}) >= 2 })

	all := startSubscriber(t, c, streamRequest(&gpb.Subscription{Path: mustPath(t, "/"), Mode: gpb.SubscriptionMode_ON_CHANGE}))
	aft := startSubscriber(t, c, streamRequest(&gpb.Subscription{Path: mustPath(t, aftPrefix+"/ipv4-unicast"), Mode: gpb.SubscriptionMode_ON_CHANGE}))
	for _, sub := range []*subscriber{all, aft} {
		seen := sub.waitFor("sync", func(seen []event, _ error) bool { return count(seen, event{sync: true}) > 0 })
		if i := indexOf(seen, event{path: route1, val: "BGP"}); i < 0 || i > indexOf(seen, event{sync: true}) {
			t.Errorf("saw %v, want route1=BGP before sync", seen)
		}
	}
	if n := count(all.waitFor("sync", func([]event, error) bool { return true }), event{path: eth0Oper, val: "UP"}); n != 1 {
		t.Errorf("the subscription to / saw oper-status %d times before its sync, want once", n)
	}

	// The owner changes its table, then publishes the change.
	if err := s.Update(src.set(t, 2, route2, str("STATIC"))); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(time.Unix(0, 3), mustPath(t, route1)); err != nil {
		t.Fatal(err)
	}
	for _, sub := range []*subscriber{all, aft} {
		sub.waitFor("route2 and route1's delete", func(seen []event, _ error) bool {
			return count(seen, event{path: route2, val: "STATIC"}) == 1 && count(seen, event{delete: true, path: route1}) == 1
		})
	}
	// A delete above the source's prefix reaches its subscribers too.
	if err := s.Delete(time.Unix(0, 4), mustPath(t, "/network-instances/network-instance[name=DEFAULT]")); err != nil {
		t.Fatal(err)
	}
	for _, sub := range []*subscriber{all, aft} {
		sub.waitFor("the instance's delete", func(seen []event, _ error) bool {
			return count(seen, event{delete: true, path: "/network-instances/network-instance[name=DEFAULT]"}) == 1
		})
	}
	var cached int
	s.walkCache([]string{"network-instances"}, func(*gpb.Notification) error { cached++; return nil })
	if cached != 0 {
		t.Errorf("%d source leaves in the cache, want none", cached)
	}
	if err := s.AddSource(mustPath(t, aftPrefix+"/ipv4-unicast"), src); err == nil {
		t.Error("a source inside another was accepted")
	}
}

// TestOnceAndPoll: ONCE sends the state and sync, then ends; each POLL
// sends the state of that moment.
func TestOnceAndPoll(t *testing.T) {
	s, c := newTestServer(t, Options{})
	publish(t, s, 1, eth0Oper, str("UP"))
	req := func(m gpb.SubscriptionList_Mode) *gpb.SubscribeRequest {
		return &gpb.SubscribeRequest{Request: &gpb.SubscribeRequest_Subscribe{Subscribe: &gpb.SubscriptionList{
			Mode: m, Subscription: []*gpb.Subscription{{Path: mustPath(t, "/interfaces")}}}}}
	}
	once := startSubscriber(t, c, req(gpb.SubscriptionList_ONCE))
	seen := once.waitFor("the end", func(_ []event, err error) bool { return err != nil })
	if want := []event{{path: eth0Oper, val: "UP"}, {sync: true}}; !reflect.DeepEqual(seen, want) {
		t.Errorf("ONCE: %v, want %v", seen, want)
	}

	poll := startSubscriber(t, c, req(gpb.SubscriptionList_POLL))
	poll.waitFor("first sync", func(seen []event, _ error) bool { return count(seen, event{sync: true}) == 1 })
	publish(t, s, 2, eth0Oper, str("DOWN"))
	if err := poll.stream.Send(&gpb.SubscribeRequest{Request: &gpb.SubscribeRequest_Poll{Poll: &gpb.Poll{}}}); err != nil {
		t.Fatal(err)
	}
	seen = poll.waitFor("second sync", func(seen []event, _ error) bool { return count(seen, event{sync: true}) == 2 })
	if want := []event{{path: eth0Oper, val: "UP"}, {sync: true}, {path: eth0Oper, val: "DOWN"}, {sync: true}}; !reflect.DeepEqual(seen, want) {
		t.Errorf("POLL: %v, want %v", seen, want)
	}
}

// TestSubscribeLimit: past MaxSubscribes running Subscribe RPCs, the
// next is refused with ResourceExhausted; when one ends, a new one runs.
func TestSubscribeLimit(t *testing.T) {
	s, c := newTestServer(t, Options{MaxSubscribes: 2})
	publish(t, s, 1, eth0Oper, str("UP"))
	req := streamRequest(&gpb.Subscription{Path: mustPath(t, "/interfaces"), Mode: gpb.SubscriptionMode_ON_CHANGE})
	synced := func(seen []event, _ error) bool { return count(seen, event{sync: true}) == 1 }
	a := startSubscriber(t, c, req)
	a.waitFor("sync", synced)
	startSubscriber(t, c, req).waitFor("sync", synced)
	third := startSubscriber(t, c, req)
	third.waitFor("refusal", func(_ []event, err error) bool { return err != nil })
	if err := third.err; status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "too many Subscribe") {
		t.Fatalf("third Subscribe: %v, want ResourceExhausted naming the limit", err)
	}
	a.cancel()
	a.waitFor("end", func(_ []event, err error) bool { return err != nil })
	// The slot is given back when the server's handler returns, just
	// after the client saw its stream end: retry until it is.
	for i := 0; ; i++ {
		sub := startSubscriber(t, c, req)
		seen := sub.waitFor("sync or refusal", func(seen []event, err error) bool { return synced(seen, err) || err != nil })
		if synced(seen, nil) {
			break
		}
		if i == 500 {
			t.Fatalf("no slot after one subscriber left: %v", sub.err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestLocalSocketSlotsApart: remote subscribers using up the TCP
// listener's slots do not lock the local socket (switchd's CLI) out.
func TestLocalSocketSlotsApart(t *testing.T) {
	s, local := newTestServer(t, Options{MaxSubscribes: 1})
	publish(t, s, 1, eth0Oper, str("UP"))
	h, err := HashPassword("pw")
	if err != nil {
		t.Fatal(err)
	}
	l, err := s.Listen(ListenOptions{Addresses: []string{"127.0.0.1:0"}, Plaintext: true, Users: []User{{Name: "u", PasswordHash: h}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	cc, err := grpc.NewClient(l.Addrs[0].String(), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithPerRPCCredentials(passwordCreds{"u", "pw"}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	remote := gpb.NewGNMIClient(cc)
	req := streamRequest(&gpb.Subscription{Path: mustPath(t, "/interfaces"), Mode: gpb.SubscriptionMode_ON_CHANGE})
	synced := func(seen []event, _ error) bool { return count(seen, event{sync: true}) == 1 }
	startSubscriber(t, remote, req).waitFor("remote sync", synced)
	refused := startSubscriber(t, remote, req)
	refused.waitFor("refusal", func(_ []event, err error) bool { return err != nil })
	if status.Code(refused.err) != codes.ResourceExhausted {
		t.Fatalf("second remote Subscribe: %v, want ResourceExhausted", refused.err)
	}
	startSubscriber(t, local, req).waitFor("local sync", synced)
}

// passwordCreds sends username and password metadata with each RPC.
type passwordCreds struct{ user, pw string }

func (p passwordCreds) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"username": p.user, "password": p.pw}, nil
}
func (passwordCreds) RequireTransportSecurity() bool { return false }
