package gnmi

import (
	"context"
	"errors"
	"io"
	"maps"
	"time"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
	"github.com/openconfig/gnmi/subscribe"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Subscribe serves ONCE and POLL by walking the cache and the sources,
// and STREAM by running one part per subscription (see doc.go): the
// gnmi library's subscribe server for ON_CHANGE over the cache and over
// source changes, a sampler for SAMPLE, both for TARGET_DEFINED. One
// sync_response follows the initial state of every part.
func (s *Server) Subscribe(stream gpb.GNMI_SubscribeServer) error {
	slots := s.slots
	if UserFrom(stream.Context()).local {
		slots = s.localSlots
	}
	select {
	case slots <- struct{}{}:
		defer func() { <-slots }()
	default:
		return status.Errorf(codes.ResourceExhausted, "too many Subscribe RPCs: %d are running, the server's limit", cap(slots))
	}
	req, err := stream.Recv()
	switch {
	case errors.Is(err, io.EOF):
		return nil
	case err != nil:
		return err
	}
	sl := req.GetSubscribe()
	if sl == nil {
		return status.Error(codes.InvalidArgument, "the first SubscribeRequest must hold a subscription list")
	}
	if err := s.checkTarget(sl.GetPrefix().GetTarget()); err != nil {
		return err
	}
	switch sl.GetEncoding() {
	case gpb.Encoding_JSON, gpb.Encoding_JSON_IETF, gpb.Encoding_PROTO:
	default:
		return errorf(codes.Unimplemented, "encoding %v is not served (JSON_IETF, JSON, PROTO are)", sl.GetEncoding())
	}
	if len(sl.GetSubscription()) == 0 {
		return status.Error(codes.InvalidArgument, "no subscription in the list")
	}
	pats := make([][]string, len(sl.GetSubscription()))
	for i, sub := range sl.GetSubscription() {
		if pats[i], err = s.pattern(sl.GetPrefix(), sub.GetPath()); err != nil {
			return err
		}
	}
	u := UserFrom(stream.Context())
	s.log.Debug("gnmi subscribe", "user", u.Name, "mode", sl.GetMode().String(), "paths", len(pats))
	switch sl.GetMode() {
	case gpb.SubscriptionList_ONCE:
		return s.once(stream, pats)
	case gpb.SubscriptionList_POLL:
		for {
			if err := s.once(stream, pats); err != nil {
				return err
			}
			r, err := stream.Recv()
			switch {
			case errors.Is(err, io.EOF):
				return nil
			case err != nil:
				return err
			case r.GetPoll() == nil:
				return status.Error(codes.InvalidArgument, "a POLL subscription takes only poll requests after the first")
			}
		}
	case gpb.SubscriptionList_STREAM:
		return s.stream(stream, sl, pats)
	}
	return errorf(codes.InvalidArgument, "subscription mode %v", sl.GetMode())
}

var syncResponse = &gpb.SubscribeResponse{Response: &gpb.SubscribeResponse_SyncResponse{SyncResponse: true}}

func updateResponse(n *gpb.Notification) *gpb.SubscribeResponse {
	return &gpb.SubscribeResponse{Response: &gpb.SubscribeResponse_Update{Update: n}}
}

// once sends every leaf the patterns name, then sync_response.
func (s *Server) once(stream gpb.GNMI_SubscribeServer, pats [][]string) error {
	b := batcher{target: s.opts.Target, send: func(n *gpb.Notification) error { return stream.Send(updateResponse(n)) }}
	for _, pat := range pats {
		if err := s.walk(pat, b.add); err != nil {
			return err
		}
	}
	if err := b.flush(); err != nil {
		return err
	}
	return stream.Send(syncResponse)
}

// batchMax bounds the updates merged into one notification.
const batchMax = 256

// batcher merges walked leaves of one timestamp into one notification
// whose prefix is the path the leaves share: the cache keeps a
// notification per leaf, and a response per leaf with its full path
// made a full sync cost a gRPC message and a whole path per leaf.
type batcher struct {
	target string
	send   func(*gpb.Notification) error
	ts     int64
	paths  [][]*gpb.PathElem // full paths of the leaves so far
	vals   []*gpb.TypedValue
	common int // elements all of paths share
}

func (b *batcher) add(n *gpb.Notification) error {
	if len(b.paths) > 0 && (b.ts != n.Timestamp || len(b.paths)+len(n.Update) > batchMax) {
		if err := b.flush(); err != nil {
			return err
		}
	}
	pre := n.GetPrefix().GetElem()
	for _, u := range n.GetUpdate() {
		p := u.GetPath().GetElem()
		if len(pre) > 0 {
			p = append(pre[:len(pre):len(pre)], p...)
		}
		if len(b.paths) == 0 {
			b.ts, b.common = n.Timestamp, max(len(p)-1, 0)
		} else {
			b.common = commonElems(b.paths[0][:b.common], p)
		}
		b.paths, b.vals = append(b.paths, p), append(b.vals, u.GetVal())
	}
	return nil
}

func (b *batcher) flush() error {
	if len(b.paths) == 0 {
		return nil
	}
	n := &gpb.Notification{Timestamp: b.ts, Prefix: &gpb.Path{Target: b.target, Elem: b.paths[0][:b.common]},
		Update: make([]*gpb.Update, len(b.paths))}
	for i, p := range b.paths {
		n.Update[i] = &gpb.Update{Path: &gpb.Path{Elem: p[b.common:]}, Val: b.vals[i]}
	}
	b.paths, b.vals = b.paths[:0], b.vals[:0]
	return b.send(n)
}

// commonElems is how many leading elements a and b share (names and
// keys equal), at most len(a) and fewer than len(b), so that every leaf
// keeps a path of its own.
func commonElems(a, b []*gpb.PathElem) int {
	i := 0
	for i < len(a) && i < len(b)-1 && a[i].GetName() == b[i].GetName() && maps.Equal(a[i].GetKey(), b[i].GetKey()) {
		i++
	}
	return i
}

// item is what a part of a STREAM subscription hands the sender: a
// response, or the news that the part's initial state is all sent.
type item struct {
	resp   *gpb.SubscribeResponse
	synced bool
}

// stream runs the parts of a STREAM subscription and sends what they
// produce, in the order each produced it, on the RPC's one stream.
func (s *Server) stream(stream gpb.GNMI_SubscribeServer, sl *gpb.SubscriptionList, pats [][]string) error {
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	out := make(chan item, 64)
	errc := make(chan error, 3*len(pats))
	parts := 0
	start := func(f func() error) {
		parts++
		go func() {
			if err := f(); err != nil && ctx.Err() == nil {
				errc <- err
			}
		}()
	}
	uo := sl.GetUpdatesOnly()
	for i, sub := range sl.GetSubscription() {
		pat := pats[i]
		onChange := func(keep func([]string) bool) {
			start(func() error { return s.onChangePart(ctx, s.sub, pat, uo, keep, false, out) })
			if len(s.sourcesFor(pat)) > 0 {
				start(func() error { return s.onChangePart(ctx, s.srcSub, pat, uo, keep, true, out) })
			}
			if hb := time.Duration(sub.GetHeartbeatInterval()); hb > 0 {
				// The heartbeat resends what is there, change or not.
				sp := &samplePart{s: s, pat: pat, interval: max(hb, s.opts.MinSampleInterval), keep: keep, heartbeatOnly: true}
				start(func() error { return sp.run(ctx, out) })
			}
		}
		switch sub.GetMode() {
		case gpb.SubscriptionMode_ON_CHANGE:
			onChange(nil)
		case gpb.SubscriptionMode_SAMPLE:
			iv := time.Duration(sub.GetSampleInterval())
			if iv == 0 {
				iv = s.opts.DefaultSampleInterval
			}
			if iv < s.opts.MinSampleInterval {
				return errorf(codes.InvalidArgument, "sample_interval %v is below the server's minimum %v", iv, s.opts.MinSampleInterval)
			}
			sp := &samplePart{s: s, pat: pat, interval: iv, updatesOnly: uo,
				sampler: newSampler(sub.GetSuppressRedundant(), time.Duration(sub.GetHeartbeatInterval()))}
			start(func() error { return sp.run(ctx, out) })
		case gpb.SubscriptionMode_TARGET_DEFINED:
			rule := s.opts.TargetDefined
			if rule == nil {
				onChange(nil)
				break
			}
			onChange(func(p []string) bool { return !rule(p) })
			sp := &samplePart{s: s, pat: pat, interval: s.opts.TargetDefinedInterval, updatesOnly: uo,
				keep: rule, sampler: newSampler(false, 0)}
			start(func() error { return sp.run(ctx, out) })
		default:
			return errorf(codes.InvalidArgument, "subscription mode %v", sub.GetMode())
		}
	}
	pending := parts
	for {
		select {
		case it := <-out:
			r := it.resp
			if it.synced {
				if pending--; pending > 0 {
					continue
				}
				r = syncResponse
			}
			if err := stream.Send(r); err != nil {
				return err
			}
		case err := <-errc:
			return err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// onChangePart streams what the library's subscribe server sub sends for
// pat, cut by keep (nil keeps all). Over the cache (s.sub) the library
// also sends the initial state; over sources (s.srcSub, whose cache is
// empty), once the library's subscription is in place (its empty sync),
// the part walks the sources itself and then forwards their changes,
// which the library queued meanwhile: one the walk already saw comes
// again, none is lost, and the last value sent is the newest.
func (s *Server) onChangePart(ctx context.Context, sub *subscribe.Server, pat []string, updatesOnly bool, keep func([]string) bool, sources bool, out chan<- item) error {
	elems := make([]*gpb.PathElem, len(pat))
	q, exact := cacheQuery(pat)
	elems = elems[:len(q)]
	for i, e := range q {
		elems[i] = &gpb.PathElem{Name: e} // the library indexes by ToStrings, which gives q back
	}
	req := &gpb.SubscribeRequest{Request: &gpb.SubscribeRequest_Subscribe{Subscribe: &gpb.SubscriptionList{
		Prefix:       &gpb.Path{Target: s.opts.Target},
		Mode:         gpb.SubscriptionList_STREAM,
		UpdatesOnly:  updatesOnly || sources,
		Subscription: []*gpb.Subscription{{Path: &gpb.Path{Elem: elems}, Mode: gpb.SubscriptionMode_ON_CHANGE}},
	}}}
	in := make(chan *gpb.SubscribeResponse, 64)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	inner := &innerStream{ctx: ctx, req: req, out: in}
	done := make(chan error, 1)
	go func() { done <- sub.Subscribe(inner) }()

	cut := func(n *gpb.Notification) *gpb.Notification {
		if !exact {
			if n = filterNotification(n, pat); n == nil {
				return nil
			}
		}
		if keep != nil {
			n = filterBy(n, keep, nil)
		}
		return n
	}
	send := func(n *gpb.Notification) error {
		if n = cut(n); n == nil {
			return nil
		}
		select {
		case out <- item{resp: updateResponse(n)}:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	for {
		var r *gpb.SubscribeResponse
		select {
		case r = <-in:
		case err := <-done:
			if err == nil {
				err = status.Error(codes.Internal, "subscription ended by the server")
			}
			return err
		case <-ctx.Done():
			return nil
		}
		if r.GetSyncResponse() {
			if sources && !updatesOnly {
				b := batcher{target: s.opts.Target, send: send}
				if err := s.walkSources(pat, b.add); err != nil {
					return err
				}
				if err := b.flush(); err != nil {
					return err
				}
			}
			select {
			case out <- item{synced: true}:
			case <-ctx.Done():
				return nil
			}
			continue
		}
		if n := r.GetUpdate(); n != nil {
			if err := send(n); err != nil {
				return err
			}
		}
	}
}

// innerStream is the stream the library's Subscribe serves inside one
// part: its request is the part's, its responses go to the part.
type innerStream struct {
	grpc.ServerStream // not used by the library beyond the methods below
	ctx               context.Context
	req               *gpb.SubscribeRequest
	recvd             bool
	out               chan<- *gpb.SubscribeResponse
}

func (s *innerStream) Context() context.Context { return s.ctx }

func (s *innerStream) Send(r *gpb.SubscribeResponse) error {
	select {
	case s.out <- r:
		return nil
	case <-s.ctx.Done():
		return s.ctx.Err()
	}
}

// Recv hands the request over once, then waits for the end (a STREAM
// subscription reads nothing more).
func (s *innerStream) Recv() (*gpb.SubscribeRequest, error) {
	if !s.recvd {
		s.recvd = true
		return s.req, nil
	}
	<-s.ctx.Done()
	return nil, io.EOF
}
