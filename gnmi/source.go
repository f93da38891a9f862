package gnmi

import (
	"fmt"

	"github.com/openconfig/gnmi/ctree"
	gpb "github.com/openconfig/gnmi/proto/gnmi"
)

// Source serves a subtree the cache does not hold, because its owner
// already keeps it in memory and a second copy would cost too much (the
// AFT: fib's table at a million routes). Get, ONCE, POLL and SAMPLE walk
// it; its changes, published with Server.Update like any other state,
// reach ON_CHANGE subscribers without being stored.
type Source interface {
	// Walk calls fn with notifications of the leaves at or below query,
	// a cache-form pattern ("*" for any one element or key value; no
	// "..."), which may be shorter than the source's prefix (then all of
	// the source matches) or longer. It stops at fn's first error and
	// returns it. Notifications must be new or not shared: the server
	// may set their prefix's target. Walk may run on several goroutines
	// at once, concurrently with the owner's changes.
	Walk(query []string, fn func(*gpb.Notification) error) error
}

// AddSource serves the subtree at prefix (a path without wildcards,
// relative to the target's root) from src. Updates published under the
// prefix afterwards are streamed, not cached; the daemon adds its sources
// before it publishes under them.
func (s *Server) AddSource(prefix *gpb.Path, src Source) error {
	p := toStrings(prefix)
	for _, e := range p {
		if e == glob || e == globMulti {
			return fmt.Errorf("source prefix %v: wildcards are not allowed", p)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, o := range s.sources {
		if hasPrefix(p, o.prefix) || hasPrefix(o.prefix, p) {
			return fmt.Errorf("source prefix %v overlaps %v", p, o.prefix)
		}
	}
	s.sources = append(s.sources, source{prefix: p, src: src})
	return nil
}

// sourceFor is the source serving the leaf at p, or nil.
func (s *Server) sourceFor(p []string) Source {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, o := range s.sources {
		if hasPrefix(p, o.prefix) {
			return o.src
		}
	}
	return nil
}

// aboveSource reports whether p is above a source's prefix.
func (s *Server) aboveSource(p []string) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, o := range s.sources {
		if len(p) < len(o.prefix) && hasPrefix(o.prefix, p) {
			return true
		}
	}
	return false
}

// sourcesFor are the sources sharing a leaf with pat.
func (s *Server) sourcesFor(pat []string) []source {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []source
	for _, o := range s.sources {
		if overlaps(pat, o.prefix) {
			out = append(out, o)
		}
	}
	return out
}

// walk calls fn with the notifications at or below pat: the cache's
// leaves, then those of every source sharing nodes with pat.
func (s *Server) walk(pat []string, fn func(*gpb.Notification) error) error {
	if err := s.walkCache(pat, fn); err != nil {
		return err
	}
	return s.walkSources(pat, fn)
}

// walkCache calls fn with the cached leaves at or below pat. fn never
// runs under the cache's locks (it may block on a slow client): hits are
// collected first, as pointers to the cached notifications, which fn
// must not modify.
func (s *Server) walkCache(pat []string, fn func(*gpb.Notification) error) error {
	q, exact := cacheQuery(pat)
	var hits []*gpb.Notification
	err := s.cache.Query(s.opts.Target, q, func(_ []string, _ *ctree.Leaf, v any) error {
		if n, ok := v.(*gpb.Notification); ok {
			hits = append(hits, n)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, n := range hits {
		if !exact {
			if n = filterNotification(n, pat); n == nil {
				continue
			}
		}
		if err := fn(n); err != nil {
			return err
		}
	}
	return nil
}

// walkSources calls fn with the leaves at or below pat of every source
// sharing nodes with pat.
func (s *Server) walkSources(pat []string, fn func(*gpb.Notification) error) error {
	q, _ := cacheQuery(pat)
	for _, o := range s.sourcesFor(pat) {
		// A pattern naming the source's whole subtree needs no filter:
		// a walk of a million routes skips a million path matches.
		all := covers(pat, o.prefix)
		err := o.src.Walk(q, func(n *gpb.Notification) error {
			if n = s.withTarget(n); !all {
				if n = filterNotification(n, pat); n == nil {
					return nil
				}
			}
			return fn(n)
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// covers reports whether pat matches every leaf at or below prefix: it
// is prefix or above it, element by element or "*", or ends in "..."
// there.
func covers(pat, prefix []string) bool {
	for i, e := range pat {
		switch {
		case e == globMulti:
			return i == len(pat)-1
		case i >= len(prefix):
			return false
		case e != glob && e != prefix[i]:
			return false
		}
	}
	return true
}
