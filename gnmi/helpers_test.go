package gnmi

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
	"github.com/openconfig/ygot/ygot"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/switchd/switchd/models/oc"
)

// newTestServer is a Server with the generated schema, served on a local
// socket in a temporary directory, and a client connected to it as root.
func newTestServer(t testing.TB, o Options) (*Server, gpb.GNMIClient) {
	t.Helper()
	s, c, stop := startTestServer(t, o)
	t.Cleanup(stop)
	return s, c
}

// startTestServer is newTestServer with the stop function returned, for
// benchmarks, whose cleanups wait for the end of all their runs.
func startTestServer(t testing.TB, o Options) (*Server, gpb.GNMIClient, func()) {
	t.Helper()
	if o.Schema == nil {
		o.Schema = oc.LazySchemaTree()["Device"]
	}
	s, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "gnmi.sock")
	l, err := s.Listen(ListenOptions{LocalSocket: sock})
	if err != nil {
		t.Fatal(err)
	}
	cc, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		l.Close()
		t.Fatal(err)
	}
	return s, gpb.NewGNMIClient(cc), func() { cc.Close(); l.Close() }
}

// mustPath parses a gNMI path string ("/a/b[k=v]/c").
func mustPath(t testing.TB, p string) *gpb.Path {
	t.Helper()
	gp, err := ygot.StringToStructuredPath(p)
	if err != nil {
		t.Fatalf("path %q: %v", p, err)
	}
	return gp
}

// publish puts one leaf into s at ts (nanoseconds).
func publish(t testing.TB, s *Server, ts int64, p string, v *gpb.TypedValue) {
	t.Helper()
	if err := s.Update(&gpb.Notification{Timestamp: ts, Update: []*gpb.Update{{Path: mustPath(t, p), Val: v}}}); err != nil {
		t.Fatalf("publish %s: %v", p, err)
	}
}

func str(s string) *gpb.TypedValue {
	return &gpb.TypedValue{Value: &gpb.TypedValue_StringVal{StringVal: s}}
}
func uint(u uint64) *gpb.TypedValue {
	return &gpb.TypedValue{Value: &gpb.TypedValue_UintVal{UintVal: u}}
}

// pathString is the gNMI string form of a notification's update or
// delete path, prefix included.
func pathString(t testing.TB, n *gpb.Notification, p *gpb.Path) string {
	t.Helper()
	s, err := ygot.PathToString(joinPaths(n.GetPrefix(), p))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// event is one thing a subscriber saw: an update (path=value), a delete
// (path) or a sync.
type event struct {
	sync   bool
	delete bool
	path   string
	val    string
}

func (e event) String() string {
	switch {
	case e.sync:
		return "sync"
	case e.delete:
		return "delete " + e.path
	}
	return e.path + "=" + e.val
}

// events turns a response into events, in order.
func events(t testing.TB, r *gpb.SubscribeResponse) []event {
	if r.GetSyncResponse() {
		return []event{{sync: true}}
	}
	n := r.GetUpdate()
	var out []event
	for _, u := range n.GetUpdate() {
		out = append(out, event{path: pathString(t, n, u.GetPath()), val: valString(u.GetVal())})
	}
	for _, d := range n.GetDelete() {
		out = append(out, event{delete: true, path: pathString(t, n, d)})
	}
	return out
}

// subscriber reads a Subscribe stream into events on its own goroutine.
type subscriber struct {
	t      testing.TB
	stream gpb.GNMI_SubscribeClient
	cancel context.CancelFunc

	mu   sync.Mutex
	seen []event
	err  error
	kick chan struct{}
}

func startSubscriber(t testing.TB, c gpb.GNMIClient, req *gpb.SubscribeRequest) *subscriber {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	st, err := c.Subscribe(ctx)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	// io.EOF means the server already ended the stream (a refusal can
	// beat the request out); its status comes from Recv below.
	if err := st.Send(req); err != nil && err != io.EOF {
		cancel()
		t.Fatal(err)
	}
	s := &subscriber{t: t, stream: st, cancel: cancel, kick: make(chan struct{}, 1)}
	t.Cleanup(cancel)
	go func() {
		for {
			r, err := st.Recv()
			s.mu.Lock()
			if err != nil {
				s.err = err
			} else {
				s.seen = append(s.seen, events(t, r)...)
			}
			s.mu.Unlock()
			select {
			case s.kick <- struct{}{}:
			default:
			}
			if err != nil {
				return
			}
		}
	}()
	return s
}

// waitFor waits until cond holds for the events seen so far (or the
// stream ended: then cond sees the error too). The deadline only keeps a
// broken test from hanging; it is not what the test asserts.
func (s *subscriber) waitFor(what string, cond func(seen []event, err error) bool) []event {
	s.t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		s.mu.Lock()
		seen, err := append([]event(nil), s.seen...), s.err
		s.mu.Unlock()
		if cond(seen, err) {
			return seen
		}
		if err != nil {
			s.t.Fatalf("waiting for %s: stream ended: %v; saw %v", what, err, seen)
		}
		select {
		case <-s.kick:
		case <-deadline:
			s.t.Fatalf("waiting for %s: saw %v", what, seen)
		}
	}
}

// count is how many events match e.
func count(seen []event, e event) int {
	n := 0
	for _, x := range seen {
		if x == e {
			n++
		}
	}
	return n
}

func indexOf(seen []event, e event) int {
	for i, x := range seen {
		if x == e {
			return i
		}
	}
	return -1
}

func streamRequest(subs ...*gpb.Subscription) *gpb.SubscribeRequest {
	return &gpb.SubscribeRequest{Request: &gpb.SubscribeRequest_Subscribe{Subscribe: &gpb.SubscriptionList{
		Mode: gpb.SubscriptionList_STREAM, Encoding: gpb.Encoding_JSON_IETF, Subscription: subs,
	}}}
}

func sortedStrings(evs []event) []string {
	var out []string
	for _, e := range evs {
		out = append(out, e.String())
	}
	sort.Strings(out)
	return out
}

// valString is a value as a test compares it.
func valString(tv *gpb.TypedValue) string {
	switch v := tv.GetValue().(type) {
	case *gpb.TypedValue_StringVal:
		return v.StringVal
	case *gpb.TypedValue_UintVal:
		return fmt.Sprint(v.UintVal)
	case *gpb.TypedValue_IntVal:
		return fmt.Sprint(v.IntVal)
	case *gpb.TypedValue_BoolVal:
		return fmt.Sprint(v.BoolVal)
	case *gpb.TypedValue_JsonIetfVal:
		return string(v.JsonIetfVal)
	}
	return fmt.Sprint(tv)
}
