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
// checked within the acceptance bound of 3 s (it took 30.6 s and ~810 MB).
func TestParse50kAggregates(t *testing.T) {
	data := aggregatesDoc(t, 50000)
	start := time.Now()
	in, err := Parse(data, "leaf.json")
	took := time.Since(start)
	if err != nil {
		t.Fatalf("Parse: %.2000v", err)
	}
	if len(in.Routes) < 50000 {
		t.Errorf("%d routes, want the 50,000 aggregates", len(in.Routes))
	}
	t.Logf("%d bytes, 50,000 aggregates: Parse took %v", len(data), took)
	if took > 3*time.Second {
		t.Errorf("Parse of 50,000 aggregates took %v, more than the 3 s bound", took)
	}
}

func BenchmarkCheck50kAggregates(b *testing.B) {
	data := aggregatesDoc(b, 50000)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(data, "leaf.json"); err != nil {
			b.Fatal(err)
		}
	}
}
