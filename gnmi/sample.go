package gnmi

import (
	"context"
	"errors"
	"time"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
	"google.golang.org/protobuf/proto"
)

// sampler decides, at each sample of one SAMPLE subscription, which
// leaves go to the client. It is pure logic: the clock comes in as an
// argument, so tests drive it without waiting. Not safe for concurrent
// use; each subscription's goroutine owns its sampler.
//
// Without suppress every leaf goes out at every sample. With suppress,
// a leaf goes out when it is new or its value changed since it was last
// sent, and, with a heartbeat, also when it has not been sent for a
// heartbeat interval. A leaf sent before and missing from a sample goes
// out as a delete, so the client does not keep a leaf that is gone.
type sampler struct {
	suppress  bool
	heartbeat time.Duration

	round uint64
	sent  map[string]*sentLeaf
	key   []byte // reused by sample for each leaf's key
}

type sentLeaf struct {
	// where it was last sent (the walked notification's, not modified),
	// joined only for the delete
	prefix, path *gpb.Path
	val          *gpb.TypedValue
	at           time.Time // when last sent
	round        uint64    // last sample that saw it
}

func newSampler(suppress bool, heartbeat time.Duration) *sampler {
	return &sampler{suppress: suppress, heartbeat: heartbeat, sent: map[string]*sentLeaf{}}
}

// sample takes the notifications of one walk (not modified) and returns
// what to send at now: the notifications cut to the leaves that go out,
// then one delete notification for leaves gone since the last sample.
// It goes over each notification's updates once, keying leaves by their
// full path written into one reused buffer (see appendKey): making each
// path strings again per leaf and subscriber was most of a sample's cost.
func (s *sampler) sample(now time.Time, walked []*gpb.Notification) []*gpb.Notification {
	s.round++
	var out []*gpb.Notification
	for _, n := range walked {
		ups := n.GetUpdate()
		var kept []*gpb.Update // nil while every update so far is kept
		for i, u := range ups {
			s.key = appendKey(s.key[:0], n.GetPrefix(), u.GetPath())
			l := s.sent[string(s.key)] // no allocation for the lookup
			if l == nil {
				l = &sentLeaf{}
				s.sent[string(s.key)] = l
			}
			send := !s.suppress || l.val == nil || !proto.Equal(l.val, u.GetVal()) ||
				(s.heartbeat > 0 && now.Sub(l.at) >= s.heartbeat)
			l.round = s.round
			switch {
			case send:
				l.prefix, l.path, l.val, l.at = n.GetPrefix(), u.GetPath(), u.GetVal(), now
				if kept != nil {
					kept = append(kept, u)
				}
			case kept == nil:
				kept = append(make([]*gpb.Update, 0, len(ups)), ups[:i]...)
			}
		}
		switch {
		case kept != nil:
			if len(kept) > 0 {
				out = append(out, &gpb.Notification{Timestamp: n.Timestamp, Prefix: n.Prefix, Update: kept})
			}
		case len(ups) == 0:
		case len(n.GetDelete()) == 0:
			out = append(out, n)
		default: // the walk's deletes are not the sampler's to send
			out = append(out, &gpb.Notification{Timestamp: n.Timestamp, Prefix: n.Prefix, Update: ups})
		}
	}
	var gone []*gpb.Path
	for k, l := range s.sent {
		if l.round != s.round {
			if l.path != nil {
				gone = append(gone, joinPaths(l.prefix, l.path))
			}
			delete(s.sent, k)
		}
	}
	if len(gone) > 0 {
		out = append(out, &gpb.Notification{Timestamp: now.UnixNano(), Delete: gone})
	}
	return out
}

// appendKey appends to b the full path of p under prefix in cache form
// (toStrings), its strings joined by NUL as joinKey joins them, without
// making the strings.
func appendKey(b []byte, prefix, p *gpb.Path) []byte {
	first := true
	add := func(s string) {
		if !first {
			b = append(b, 0)
		}
		first = false
		b = append(b, s...)
	}
	for _, q := range [2]*gpb.Path{prefix, p} {
		if len(q.GetElem()) == 0 { // the deprecated element field, as toStrings reads it
			for _, e := range q.GetElement() {
				add(e)
			}
			continue
		}
		for _, e := range q.GetElem() {
			add(e.GetName())
			switch keys := e.GetKey(); len(keys) {
			case 0:
			case 1:
				for _, v := range keys {
					add(v)
				}
			default:
				for _, v := range sortedValues(keys) {
					add(v)
				}
			}
		}
	}
	return b
}

// joinPaths is prefix's elements followed by p's (no target, no origin).
func joinPaths(prefix, p *gpb.Path) *gpb.Path {
	if len(prefix.GetElem()) == 0 {
		return &gpb.Path{Elem: p.GetElem()}
	}
	return &gpb.Path{Elem: append(append([]*gpb.PathElem(nil), prefix.GetElem()...), p.GetElem()...)}
}

// samplePart serves one SAMPLE subscription (or the sampled leaves of a
// TARGET_DEFINED one, or an ON_CHANGE heartbeat): every interval it walks
// the cache and the sources at pat and sends what its sampler lets out.
type samplePart struct {
	s           *Server
	pat         []string
	interval    time.Duration
	keep        func([]string) bool // nil keeps all
	updatesOnly bool                // the first sample only primes the sampler
	// heartbeatOnly: an ON_CHANGE heartbeat, which adds nothing to the
	// initial state and resends all at each tick.
	heartbeatOnly bool
	sampler       *sampler
}

func (p *samplePart) run(ctx context.Context, out chan<- item) error {
	if p.sampler == nil {
		p.sampler = newSampler(false, 0)
	}
	t := time.NewTicker(p.interval)
	defer t.Stop()
	emit := func(it item) bool {
		select {
		case out <- it:
			return true
		case <-ctx.Done():
			return false
		}
	}
	first := true
	for {
		if !first || !p.heartbeatOnly {
			var walked []*gpb.Notification
			err := p.s.walk(p.pat, func(n *gpb.Notification) error {
				if p.keep != nil {
					n = filterBy(n, p.keep, nil)
				}
				if n != nil {
					walked = append(walked, n)
				}
				return nil
			})
			if err != nil {
				return err
			}
			sent := p.sampler.sample(time.Now(), walked)
			if !first || !p.updatesOnly {
				if !p.send(sent, emit) {
					return nil
				}
			}
		}
		if first && !emit(item{synced: true}) {
			return nil
		}
		first = false
		select {
		case <-t.C:
		case <-ctx.Done():
			return nil
		}
	}
}

// send hands what the sampler let out to emit, leaves batched (see
// batcher), and reports false once emit does (the RPC is over).
func (p *samplePart) send(sent []*gpb.Notification, emit func(item) bool) bool {
	done := errors.New("done")
	b := batcher{target: p.s.opts.Target, send: func(n *gpb.Notification) error {
		if !emit(item{resp: updateResponse(n)}) {
			return done
		}
		return nil
	}}
	for _, n := range sent {
		if len(n.GetDelete()) > 0 { // the sampler's deletes come last, alone
			if b.flush() != nil {
				return false
			}
			if n.Prefix == nil {
				n.Prefix = &gpb.Path{Target: p.s.opts.Target}
			}
			if !emit(item{resp: updateResponse(n)}) {
				return false
			}
			continue
		}
		if b.add(n) != nil {
			return false
		}
	}
	return b.flush() == nil
}
