package policy

import (
	"fmt"
	"slices"
	"strings"
)

// A Selector picks endpoints by their labels. The grammar:
//
//	selector := "all()" | conj
//	conj     := term { "&&" term }
//	term     := key "==" value | key "!=" value
//	          | key "in" set | key "not" "in" set
//	          | "has(" key ")" | "!has(" key ")" | "(" conj ")"
//	set      := "{" value { "," value } "}"
//	value    := a double- or single-quoted label value
//
// As in Kubernetes, key != "v" and key not in {...} also match an endpoint
// without the key. Keys and values follow Kubernetes label syntax
// (checkKey, checkValue), so every selector can be written for a label
// an orchestrator may give.
//
// The compiler makes one set per distinct selector, named after String:
// equal selectors share a set, and a set's members may come from local
// endpoints (Matches) and from any other source that knows the name
// (memberships learned over BGP, later). The zero Selector is all().
type Selector struct {
	terms []term // sorted by their text, no duplicates; none for all()
	canon string
}

type op uint8

const (
	opEq op = iota
	opNe
	opIn
	opNotIn
	opHas
	opNotHas
)

type term struct {
	op     op
	key    string
	values []string // sorted, no duplicates; one for == and !=
}

// ParseSelector parses s. An error names the selector, the column (in
// bytes, from 1) and what was expected there.
func ParseSelector(s string) (Selector, error) {
	p := &selParser{src: s}
	terms, err := p.parse()
	if err != nil {
		return Selector{}, fmt.Errorf("selector %q: %w", s, err)
	}
	return newSelector(terms), nil
}

// MustParseSelector is ParseSelector for selectors known to be good
// (tests, built-in policy); it panics on an error.
func MustParseSelector(s string) Selector {
	sel, err := ParseSelector(s)
	if err != nil {
		panic(err)
	}
	return sel
}

func newSelector(terms []term) Selector {
	texts := make(map[string]term, len(terms))
	for _, t := range terms {
		texts[t.String()] = t
	}
	keys := make([]string, 0, len(texts))
	for k := range texts {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	sel := Selector{}
	for _, k := range keys {
		sel.terms = append(sel.terms, texts[k])
	}
	sel.canon = strings.Join(keys, " && ")
	return sel
}

// String is the canonical form: terms sorted and without duplicates, set
// values sorted, one-value sets written as == or !=, values in double
// quotes, one space around operators. Equal selectors have equal strings.
func (s Selector) String() string {
	if len(s.terms) == 0 {
		return "all()"
	}
	return s.canon
}

// Equal reports whether s and o select the same endpoints by construction
// (the same canonical form).
func (s Selector) Equal(o Selector) bool { return s.String() == o.String() }

// Matches reports whether an endpoint with these labels is selected.
func (s Selector) Matches(labels map[string]string) bool {
	for _, t := range s.terms {
		if !t.matches(labels) {
			return false
		}
	}
	return true
}

func (t term) matches(labels map[string]string) bool {
	v, ok := labels[t.key]
	switch t.op {
	case opHas:
		return ok
	case opNotHas:
		return !ok
	case opEq, opIn:
		return ok && slices.Contains(t.values, v)
	default: // opNe, opNotIn
		return !ok || !slices.Contains(t.values, v)
	}
}

func (t term) String() string {
	switch t.op {
	case opHas:
		return "has(" + t.key + ")"
	case opNotHas:
		return "!has(" + t.key + ")"
	case opEq:
		return t.key + ` == "` + t.values[0] + `"`
	case opNe:
		return t.key + ` != "` + t.values[0] + `"`
	}
	kw := " in {"
	if t.op == opNotIn {
		kw = " not in {"
	}
	return t.key + kw + `"` + strings.Join(t.values, `", "`) + `"}`
}

// selParser is a recursive-descent parser over bytes; pos is the offset
// of the next unread byte.
type selParser struct {
	src string
	pos int
}

type selError struct {
	col int
	msg string
}

func (e *selError) Error() string { return fmt.Sprintf("column %d: %s", e.col, e.msg) }

func (p *selParser) errAt(pos int, format string, args ...any) error {
	return &selError{col: pos + 1, msg: fmt.Sprintf(format, args...)}
}

func (p *selParser) skipSpace() {
	for p.pos < len(p.src) && (p.src[p.pos] == ' ' || p.src[p.pos] == '\t' || p.src[p.pos] == '\n' || p.src[p.pos] == '\r') {
		p.pos++
	}
}

// eat consumes tok (after blanks) if it is next.
func (p *selParser) eat(tok string) bool {
	p.skipSpace()
	if strings.HasPrefix(p.src[p.pos:], tok) {
		p.pos += len(tok)
		return true
	}
	return false
}

func (p *selParser) parse() ([]term, error) {
	p.skipSpace()
	if p.pos == len(p.src) {
		return nil, p.errAt(p.pos, "empty selector: expected a term (all() selects every endpoint)")
	}
	if p.eat("all()") {
		p.skipSpace()
		if p.pos != len(p.src) {
			return nil, p.errAt(p.pos, "expected the end after all() (all() stands alone)")
		}
		return nil, nil
	}
	terms, err := p.conj(0)
	if err != nil {
		return nil, err
	}
	p.skipSpace()
	if p.pos != len(p.src) {
		if p.src[p.pos] == ')' {
			return nil, p.errAt(p.pos, "unbalanced )")
		}
		if strings.HasPrefix(p.src[p.pos:], "||") {
			return nil, p.errAt(p.pos, "|| is not supported (write one policy per alternative)")
		}
		return nil, p.errAt(p.pos, "expected && or the end")
	}
	return terms, nil
}

// maxDepth bounds nested parentheses, so a hostile selector cannot
// exhaust the stack.
const maxDepth = 32

func (p *selParser) conj(depth int) ([]term, error) {
	var out []term
	for {
		ts, err := p.term(depth)
		if err != nil {
			return nil, err
		}
		out = append(out, ts...)
		if !p.eat("&&") {
			return out, nil
		}
	}
}

func (p *selParser) term(depth int) ([]term, error) {
	p.skipSpace()
	start := p.pos
	switch {
	case p.eat("("):
		if depth >= maxDepth {
			return nil, p.errAt(start, "parentheses nested deeper than %d", maxDepth)
		}
		ts, err := p.conj(depth + 1)
		if err != nil {
			return nil, err
		}
		if !p.eat(")") {
			return nil, p.errAt(p.pos, "expected && or )")
		}
		return ts, nil
	case p.eat("!has("), p.eat("has("):
		o := opHas
		if p.src[start] == '!' {
			o = opNotHas
		}
		key, err := p.key()
		if err != nil {
			return nil, err
		}
		if !p.eat(")") {
			return nil, p.errAt(p.pos, "expected ) after the label key")
		}
		return []term{{op: o, key: key}}, nil
	case p.eat("all()"):
		return nil, p.errAt(start, "all() cannot be combined with other terms (it stands alone)")
	}
	key, err := p.key()
	if err != nil {
		return nil, err
	}
	p.skipSpace()
	opPos := p.pos
	switch {
	case p.eat("=="), p.eat("!="):
		o := opEq
		if p.src[opPos] == '!' {
			o = opNe
		}
		v, err := p.value()
		if err != nil {
			return nil, err
		}
		return []term{{op: o, key: key, values: []string{v}}}, nil
	case p.eatWord("in"):
		return p.set(key, opIn)
	case p.eatWord("not"):
		if !p.eatWord("in") {
			return nil, p.errAt(p.pos, "expected in after not")
		}
		return p.set(key, opNotIn)
	}
	if p.pos < len(p.src) && p.src[p.pos] == '=' {
		return nil, p.errAt(opPos, "expected == (one = is not an operator)")
	}
	return nil, p.errAt(opPos, "expected an operator (==, !=, in, not in) after label key %q", key)
}

// eatWord consumes a keyword not followed by a key character.
func (p *selParser) eatWord(w string) bool {
	p.skipSpace()
	end := p.pos + len(w)
	if !strings.HasPrefix(p.src[p.pos:], w) || (end < len(p.src) && isKeyByte(p.src[end])) {
		return false
	}
	p.pos = end
	return true
}

func (p *selParser) set(key string, o op) ([]term, error) {
	if !p.eat("{") {
		return nil, p.errAt(p.pos, "expected { to start the set of values")
	}
	var vals []string
	for {
		v, err := p.value()
		if err != nil {
			return nil, err
		}
		vals = append(vals, v)
		if p.eat("}") {
			break
		}
		if !p.eat(",") {
			return nil, p.errAt(p.pos, "expected , or }")
		}
	}
	slices.Sort(vals)
	vals = slices.Compact(vals)
	if len(vals) == 1 { // one canonical form for key in {"a"} and key == "a"
		if o == opIn {
			o = opEq
		} else {
			o = opNe
		}
	}
	return []term{{op: o, key: key, values: vals}}, nil
}

func isKeyByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == '/'
}

func (p *selParser) key() (string, error) {
	p.skipSpace()
	start := p.pos
	for p.pos < len(p.src) && isKeyByte(p.src[p.pos]) {
		p.pos++
	}
	if p.pos == start {
		return "", p.errAt(start, "expected a label key")
	}
	k := p.src[start:p.pos]
	if err := checkKey(k); err != nil {
		return "", p.errAt(start, "label key %q: %v", k, err)
	}
	return k, nil
}

func (p *selParser) value() (string, error) {
	p.skipSpace()
	start := p.pos
	if p.pos == len(p.src) || (p.src[p.pos] != '"' && p.src[p.pos] != '\'') {
		return "", p.errAt(start, "expected a quoted value")
	}
	q := p.src[p.pos]
	end := strings.IndexByte(p.src[p.pos+1:], q)
	if end < 0 {
		return "", p.errAt(start, "unterminated value (no closing %c)", q)
	}
	v := p.src[p.pos+1 : p.pos+1+end]
	p.pos += end + 2
	if err := checkValue(v); err != nil {
		return "", p.errAt(start+1, "label value %q: %v", v, err)
	}
	return v, nil
}

// checkKey checks a label key as Kubernetes does (a qualified name): an
// optional DNS subdomain prefix of at most 253 bytes and a slash, then a
// name of at most 63 bytes of alphanumerics, '-', '_' and '.', starting
// and ending with an alphanumeric.
func checkKey(k string) error {
	name := k
	if prefix, n, ok := strings.Cut(k, "/"); ok {
		name = n
		if err := checkDNSSubdomain(prefix); err != nil {
			return fmt.Errorf("prefix %q: %v", prefix, err)
		}
	}
	if name == "" {
		return fmt.Errorf("the name part is empty")
	}
	return checkName(name)
}

// checkValue checks a label value as Kubernetes does: empty, or a name of
// at most 63 bytes as in checkKey.
func checkValue(v string) error {
	if v == "" {
		return nil
	}
	return checkName(v)
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

func checkName(s string) error {
	if len(s) > 63 {
		return fmt.Errorf("longer than 63 characters")
	}
	if !isAlnum(s[0]) || !isAlnum(s[len(s)-1]) {
		return fmt.Errorf("must start and end with a letter or digit")
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !isAlnum(c) && c != '-' && c != '_' && c != '.' {
			return fmt.Errorf("%q is not allowed (letters, digits, '-', '_', '.')", c)
		}
	}
	return nil
}

func checkDNSSubdomain(s string) error {
	if s == "" || len(s) > 253 {
		return fmt.Errorf("must be 1 to 253 characters")
	}
	for _, l := range strings.Split(s, ".") {
		if l == "" || len(l) > 63 || !isLowerAlnum(l[0]) || !isLowerAlnum(l[len(l)-1]) {
			return fmt.Errorf("must be a DNS subdomain (lower-case labels of letters, digits and '-', dot-separated)")
		}
		for i := 0; i < len(l); i++ {
			if !isLowerAlnum(l[i]) && l[i] != '-' {
				return fmt.Errorf("must be a DNS subdomain (lower-case labels of letters, digits and '-', dot-separated)")
			}
		}
	}
	return nil
}

func isLowerAlnum(c byte) bool { return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' }

// CheckLabel checks an endpoint's label against the syntax selectors can
// match (Kubernetes label syntax), for whoever takes labels in (config,
// the endpoint API).
func CheckLabel(key, value string) error {
	if err := checkKey(key); err != nil {
		return fmt.Errorf("label key %q: %v", key, err)
	}
	if err := checkValue(value); err != nil {
		return fmt.Errorf("label value %q: %v", value, err)
	}
	return nil
}
