package gnmi

import "testing"

// TestCovers: a pattern covers a source's subtree when it names the
// prefix or an ancestor (elements or "*"), or ends in "..." above it;
// not when it goes below the prefix or filters after "...".
func TestCovers(t *testing.T) {
	prefix := []string{"network-instances", "network-instance", "DEFAULT", "afts"}
	for _, c := range []struct {
		pat  []string
		want bool
	}{
		{[]string{}, true},
		{[]string{"..."}, true},
		{[]string{"network-instances", "network-instance", "*"}, true},
		{[]string{"network-instances", "network-instance", "DEFAULT", "afts"}, true},
		{[]string{"network-instances", "network-instance", "DEFAULT", "afts", "..."}, true},
		{[]string{"network-instances", "network-instance", "OTHER"}, false},
		{[]string{"network-instances", "network-instance", "DEFAULT", "afts", "ipv4-unicast"}, false},
		{[]string{"...", "state", "prefix"}, false},
	} {
		if got := covers(c.pat, prefix); got != c.want {
			t.Errorf("covers(%q) = %v, want %v", c.pat, got, c.want)
		}
	}
}
