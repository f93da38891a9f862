package config

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"
)

// aggregatesDoc is examples/leaf.json with n more local aggregates (discard
// routes in 10.128.0.0/9 and fd00:8000::/33, half each).
func aggregatesDoc(t testing.TB, n int) []byte {
	t.Helper()
	m := leafDoc(t)
	var aggs []any
	for i := 0; i < n; i++ {
		p := fmt.Sprintf("10.%d.%d.0/24", 128+i/2>>8, i/2&0xff)
		if i%2 == 1 {
			p = fmt.Sprintf("fd00:8000:%x::/48", i)
		}
		aggs = append(aggs, map[string]any{"prefix": p, "config": map[string]any{"prefix": p, "discard": true}})
	}
	for _, pr := range at(t, ni(t, m), "protocols")["protocol"].([]any) {
		if la, ok := pr.(map[string]any)["local-aggregates"].(map[string]any); ok {
			la["aggregate"] = append(la["aggregate"].([]any), aggs...)
		}
	}
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestParse50kAggregates: a valid file with 50,000 local aggregates is
// accepted whole (it took 30.6 s and ~810 MB). How fast is
// BenchmarkCheck50kAggregates' business: tests assert behaviour, not time.
func TestParse50kAggregates(t *testing.T) {
	data := aggregatesDoc(t, 50000)
	in, err := Parse(data, "leaf.json")
	if err != nil {
		t.Fatalf("Parse: %.2000v", err)
	}
	if len(in.Routes) < 50000 {
		t.Errorf("%d routes, want the 50,000 aggregates", len(in.Routes))
	}
}

// checkBound is issue 7's acceptance bound for checking the 50k file.
const checkBound = 3 * time.Second

// BenchmarkCheck50kAggregates measures `switchd check`'s work on a valid
// file with 50,000 local aggregates and fails if one check takes longer
// than the acceptance bound (run it on a quiet machine, without -race).
func BenchmarkCheck50kAggregates(b *testing.B) {
	data := aggregatesDoc(b, 50000)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		start := time.Now()
		if _, err := Parse(data, "leaf.json"); err != nil {
			b.Fatal(err)
		}
		if took := time.Since(start); took > checkBound {
			b.Errorf("check of 50,000 aggregates took %v, more than the %v bound", took, checkBound)
		}
	}
}
