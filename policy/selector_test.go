package policy

import (
	"strings"
	"testing"
)

func TestParseSelectorCanonical(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`all()`, `all()`},
		{`  all()  `, `all()`},
		{`role == "db"`, `role == "db"`},
		{`role=='db'`, `role == "db"`},
		{`role != "db"`, `role != "db"`},
		{`role in {"web", "db", "web"}`, `role in {"db", "web"}`},
		{`role in {"web"}`, `role == "web"`},
		{`role not in {"a","b"}`, `role not in {"a", "b"}`},
		{`role not in {"a"}`, `role != "a"`},
		{`has(role)`, `has(role)`},
		{`!has( role )`, `!has(role)`},
		{`tier == "x" && role == "db"`, `role == "db" && tier == "x"`},
		{`role == "db" && role == "db"`, `role == "db"`},
		{"a=='1'\t&&\n(b=='2' && (c=='3'))", `a == "1" && b == "2" && c == "3"`},
		{`example.com/app == "v1.2_x-y"`, `example.com/app == "v1.2_x-y"`},
		{`app == ""`, `app == ""`},
		{`in in {"x"}`, `in == "x"`},
	} {
		s, err := ParseSelector(tc.in)
		if err != nil {
			t.Errorf("ParseSelector(%q): %v", tc.in, err)
			continue
		}
		if got := s.String(); got != tc.want {
			t.Errorf("ParseSelector(%q).String() = %q, want %q", tc.in, got, tc.want)
		}
		again, err := ParseSelector(s.String())
		if err != nil || !again.Equal(s) {
			t.Errorf("canonical form %q does not parse back to itself: %v, %q", s, err, again)
		}
	}
	var zero Selector
	if zero.String() != "all()" || !zero.Matches(nil) {
		t.Errorf("zero Selector = %q, matches nothing labelled", zero)
	}
}

func TestParseSelectorRejects(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`role == web`, `selector "role == web": column 9: expected a quoted value`},
		{``, `selector "": column 1: empty selector: expected a term (all() selects every endpoint)`},
		{`   `, `selector "   ": column 4: empty selector: expected a term (all() selects every endpoint)`},
		{`role = "db"`, `selector "role = \"db\"": column 6: expected == (one = is not an operator)`},
		{`role`, `selector "role": column 5: expected an operator (==, !=, in, not in) after label key "role"`},
		{`role == "db" &&`, `selector "role == \"db\" &&": column 16: expected a label key`},
		{`role == "db" || role == "web"`, `selector "role == \"db\" || role == \"web\"": column 14: || is not supported (write one policy per alternative)`},
		{`role == "db" tier == "x"`, `selector "role == \"db\" tier == \"x\"": column 14: expected && or the end`},
		{`role == "db`, `selector "role == \"db": column 9: unterminated value (no closing ")`},
		{`role in "db"`, `selector "role in \"db\"": column 9: expected { to start the set of values`},
		{`role in {}`, `selector "role in {}": column 10: expected a quoted value`},
		{`role in {"a" "b"}`, `selector "role in {\"a\" \"b\"}": column 14: expected , or }`},
		{`role not {"a"}`, `selector "role not {\"a\"}": column 10: expected in after not`},
		{`has(role`, `selector "has(role": column 9: expected ) after the label key`},
		{`! has(role)`, `selector "! has(role)": column 1: expected a label key`},
		{`(role == "a"`, `selector "(role == \"a\"": column 13: expected && or )`},
		{`role == "a")`, `selector "role == \"a\")": column 12: unbalanced )`},
		{`all() && role == "a"`, `selector "all() && role == \"a\"": column 7: expected the end after all() (all() stands alone)`},
		{`role == "a" && all()`, `selector "role == \"a\" && all()": column 16: all() cannot be combined with other terms (it stands alone)`},
		{`-role == "a"`, `selector "-role == \"a\"": column 1: label key "-role": must start and end with a letter or digit`},
		{`Example.com/app == "a"`, `selector "Example.com/app == \"a\"": column 1: label key "Example.com/app": prefix "Example.com": must be a DNS subdomain (lower-case labels of letters, digits and '-', dot-separated)`},
		{`example.com/ == "a"`, `selector "example.com/ == \"a\"": column 1: label key "example.com/": the name part is empty`},
		{`role == "a b"`, `selector "role == \"a b\"": column 10: label value "a b": ' ' is not allowed (letters, digits, '-', '_', '.')`},
		{`role == "` + strings.Repeat("x", 64) + `"`, `selector "role == \"` + strings.Repeat("x", 64) + `\"": column 10: label value "` + strings.Repeat("x", 64) + `": longer than 63 characters`},
		{strings.Repeat("(", 40) + `a == "b"`, `selector "` + strings.Repeat("(", 40) + `a == \"b\"": column 33: parentheses nested deeper than 32`},
	} {
		_, err := ParseSelector(tc.in)
		if err == nil {
			t.Errorf("ParseSelector(%q) accepted", tc.in)
			continue
		}
		if err.Error() != tc.want {
			t.Errorf("ParseSelector(%q):\n got %s\nwant %s", tc.in, err, tc.want)
		}
	}
}

func TestSelectorMatches(t *testing.T) {
	web := map[string]string{"role": "web", "tier": "front"}
	db := map[string]string{"role": "db"}
	none := map[string]string{}
	for _, tc := range []struct {
		sel            string
		web, db, empty bool
	}{
		{`all()`, true, true, true},
		{`role == "db"`, false, true, false},
		{`role != "db"`, true, false, true}, // absent key matches !=, as in Kubernetes
		{`role in {"db", "web"}`, true, true, false},
		{`role not in {"db", "web"}`, false, false, true},
		{`has(tier)`, true, false, false},
		{`!has(tier)`, false, true, true},
		{`role == "web" && tier == "front"`, true, false, false},
		{`role == "web" && tier == "back"`, false, false, false},
		{`role == ""`, false, false, false},
	} {
		s := MustParseSelector(tc.sel)
		for _, c := range []struct {
			name   string
			labels map[string]string
			want   bool
		}{{"web", web, tc.web}, {"db", db, tc.db}, {"unlabelled", none, tc.empty}} {
			if got := s.Matches(c.labels); got != c.want {
				t.Errorf("%q.Matches(%s) = %v, want %v", tc.sel, c.name, got, c.want)
			}
		}
	}
}

func TestCheckLabel(t *testing.T) {
	if err := CheckLabel("app.kubernetes.io/name", "web-1"); err != nil {
		t.Errorf("good label refused: %v", err)
	}
	if err := CheckLabel("role", "a/b"); err == nil || err.Error() != `label value "a/b": '/' is not allowed (letters, digits, '-', '_', '.')` {
		t.Errorf("bad value: %v", err)
	}
	if err := CheckLabel("", "x"); err == nil {
		t.Errorf("empty key accepted")
	}
}

func FuzzParseSelector(f *testing.F) {
	for _, s := range []string{`all()`, `role == "db"`, `a in {"x", 'y'} && !has(b)`, `(a != "1" && (b not in {"2"}))`, `role == web`, `x/y == ""`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		s, err := ParseSelector(in)
		if err != nil {
			return
		}
		again, err := ParseSelector(s.String())
		if err != nil {
			t.Fatalf("canonical form %q of %q does not parse: %v", s, in, err)
		}
		if again.String() != s.String() {
			t.Fatalf("canonical form of %q is not stable: %q then %q", in, s, again)
		}
	})
}
