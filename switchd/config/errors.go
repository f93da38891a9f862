package config

import (
	"sort"
	"strings"
)

// Error is one problem found in a config, located by the OpenConfig path of
// the offending node in gNMI path string form
// (/network-instances/network-instance[name=DEFAULT]/...).
type Error struct {
	Path   string
	Reason string
}

func (e Error) Error() string { return e.Path + ": " + e.Reason }

// Errors is every problem found in one config, one entry per problem. A
// config with any Error is rejected as a whole.
type Errors []Error

func (es Errors) Error() string {
	var b strings.Builder
	for i, e := range es {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(e.Error())
	}
	return b.String()
}

// sortErrors orders errors by path so that output is stable whatever order
// maps were walked in; duplicates (one problem found twice) are dropped.
func sortErrors(es Errors) Errors {
	sort.SliceStable(es, func(i, j int) bool { return es[i].Path < es[j].Path })
	out := es[:0]
	for i, e := range es {
		if i > 0 && e == es[i-1] {
			continue
		}
		out = append(out, e)
	}
	return out
}

// elem is one element of a data path: a node name and, for a list entry,
// its keys in schema order.
type elem struct {
	name string
	keys []kv
}

type kv struct{ k, v string }

// path is a data path from the root. Methods return new paths and never
// share backing arrays with the receiver.
type path []elem

func (p path) child(name string) path {
	return append(p[:len(p):len(p)], elem{name: name})
}

func (p path) entry(name string, keys []kv) path {
	return append(p[:len(p):len(p)], elem{name: name, keys: keys})
}

// keyEscaper is built once: building a Replacer costs far more than using
// it, and String runs for every list entry of a config.
var keyEscaper = strings.NewReplacer(`\`, `\\`, `]`, `\]`)

// String gives the gNMI path string form; ']' and '\' in key values are
// escaped as gNMI's path-strings specification says.
func (p path) String() string {
	if len(p) == 0 {
		return "/"
	}
	var b strings.Builder
	for _, e := range p {
		b.WriteByte('/')
		b.WriteString(e.name)
		for _, k := range e.keys {
			b.WriteByte('[')
			b.WriteString(k.k)
			b.WriteByte('=')
			b.WriteString(keyEscaper.Replace(k.v))
			b.WriteByte(']')
		}
	}
	return b.String()
}

// errs collects Errors.
type errs struct{ list Errors }

func (c *errs) add(p path, reason string) {
	c.list = append(c.list, Error{Path: p.String(), Reason: reason})
}
