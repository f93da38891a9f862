package gnmi

import (
	"sort"
	"strings"

	gpath "github.com/openconfig/gnmi/path"
	gpb "github.com/openconfig/gnmi/proto/gnmi"
	"github.com/openconfig/goyang/pkg/yang"
	"google.golang.org/grpc/codes"
)

// Paths inside the server are in the cache's form: element names with
// each list element followed by its key values in key-name order, no
// target, no origin (gnmi/path.ToStrings). A pattern may hold "*" for
// one element or key value and "..." for any number of elements.

const (
	glob      = "*"
	globMulti = "..."
)

// toStrings is p in cache form (target and origin left out).
func toStrings(p *gpb.Path) []string { return gpath.ToStrings(p, false) }

// pattern is a request path (prefix + path) in cache form: origin
// "openconfig" or none is accepted, and with a schema, a list element
// written without keys (interface/state) or with some of them gets "*"
// for the missing ones, so that positions line up with the cache.
func (s *Server) pattern(prefix, p *gpb.Path) ([]string, error) {
	for _, o := range []string{prefix.GetOrigin(), p.GetOrigin()} {
		if o != "" && o != "openconfig" {
			return nil, errorf(codes.Unimplemented, "origin %q is not served (only openconfig)", o)
		}
	}
	if len(p.GetElem()) == 0 && len(p.GetElement()) > 0 {
		return nil, errorf(codes.InvalidArgument, "path uses the deprecated element field; use elem")
	}
	elems := append(append([]*gpb.PathElem(nil), prefix.GetElem()...), p.GetElem()...)
	out := make([]string, 0, 2*len(elems))
	e := s.opts.Schema
	for i, el := range elems {
		name := el.GetName()
		if name == globMulti {
			if i == len(elems)-1 { // trailing "...": the subtree, which a prefix already means
				break
			}
			e = nil
		}
		out = append(out, name)
		if e != nil {
			e = childEntry(e, name)
		}
		keys := el.GetKey()
		if e != nil && e.IsList() && e.Key != "" {
			names := strings.Fields(e.Key)
			var filled map[string]string
			for _, k := range names {
				if _, ok := keys[k]; !ok {
					if filled == nil {
						filled = copyKeys(keys)
					}
					filled[k] = glob
				}
			}
			if filled != nil {
				keys = filled
			}
			if len(keys) != len(names) {
				return nil, errorf(codes.InvalidArgument, "element %q: keys %v, want %v", name, keyNames(el.GetKey()), names)
			}
		}
		out = append(out, sortedValues(keys)...)
	}
	return out, nil
}

func copyKeys(m map[string]string) map[string]string {
	c := make(map[string]string, len(m)+1)
	for k, v := range m {
		c[k] = v
	}
	return c
}

func keyNames(m map[string]string) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// sortedValues are m's values in key-name order, as the cache indexes them.
func sortedValues(m map[string]string) []string {
	ks := keyNames(m)
	for i, k := range ks {
		ks[i] = m[k]
	}
	return ks
}

// childEntry finds a data node below e, looking through choice and case
// nodes, which do not appear in paths.
func childEntry(e *yang.Entry, name string) *yang.Entry {
	if c := e.Dir[name]; c != nil && !c.IsChoice() && !c.IsCase() {
		return c
	}
	for _, c := range e.Dir {
		if c.IsChoice() || c.IsCase() {
			if f := childEntry(c, name); f != nil {
				return f
			}
		}
	}
	return nil
}

// cacheQuery is the part of pat the cache can query: up to the first
// "...". exact says whether results need matchPattern afterwards.
func cacheQuery(pat []string) (q []string, exact bool) {
	for i, e := range pat {
		if e == globMulti {
			return pat[:i], false
		}
	}
	return pat, true
}

// matchPattern reports whether p is at or below a node pat names.
func matchPattern(pat, p []string) bool {
	for i, e := range pat {
		if e == globMulti {
			rest := pat[i+1:]
			for j := i; j <= len(p); j++ {
				if matchPattern(rest, p[j:]) {
					return true
				}
			}
			return false
		}
		if i >= len(p) {
			return false
		}
		if e != glob && e != p[i] {
			return false
		}
	}
	return true
}

// overlaps reports whether a subtree at prefix (no wildcards) and the
// nodes pat names can share a leaf: one is at or below the other.
func overlaps(pat, prefix []string) bool {
	for i := 0; i < len(pat) && i < len(prefix); i++ {
		switch pat[i] {
		case globMulti:
			return true
		case glob, prefix[i]:
		default:
			return false
		}
	}
	return true
}

// hasPrefix reports whether p is at or below prefix.
func hasPrefix(p, prefix []string) bool {
	if len(p) < len(prefix) {
		return false
	}
	for i := range prefix {
		if p[i] != prefix[i] {
			return false
		}
	}
	return true
}

// fullPath is the cache-form path of u in n.
func fullPath(n *gpb.Notification, u *gpb.Path) []string {
	pre := toStrings(n.GetPrefix())
	return append(pre[:len(pre):len(pre)], toStrings(u)...)
}

// filterNotification is n cut to the updates at or below pat and the
// deletes that remove something there, or nil when none is left.
func filterNotification(n *gpb.Notification, pat []string) *gpb.Notification {
	return filterBy(n, func(p []string) bool { return matchPattern(pat, p) },
		// A delete above the pattern removes what it names too.
		func(p []string) bool { return matchPattern(pat, p) || overlaps(pat, p) })
}

// filterBy is n cut to the updates and deletes whose full paths the
// functions keep (a nil function keeps all), or nil when none is left;
// n itself when all are kept, so cached notifications are never modified.
func filterBy(n *gpb.Notification, keepUpdate, keepDelete func([]string) bool) *gpb.Notification {
	var us []*gpb.Update
	var ds []*gpb.Path
	for _, u := range n.GetUpdate() {
		if keepUpdate == nil || keepUpdate(fullPath(n, u.GetPath())) {
			us = append(us, u)
		}
	}
	for _, d := range n.GetDelete() {
		if keepDelete == nil || keepDelete(fullPath(n, d)) {
			ds = append(ds, d)
		}
	}
	switch {
	case len(us)+len(ds) == 0:
		return nil
	case len(us) == len(n.GetUpdate()) && len(ds) == len(n.GetDelete()):
		return n
	}
	return &gpb.Notification{Timestamp: n.Timestamp, Prefix: n.Prefix, Update: us, Delete: ds}
}
