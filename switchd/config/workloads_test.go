package config

import (
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
)

func hostDoc(t *testing.T) map[string]any {
	t.Helper()
	b, err := os.ReadFile("../../examples/host.json")
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestParseRejectsWorkloads(t *testing.T) {
	const pools = "/switchd/ipam/pools"
	const vm1 = "/switchd/endpoints/endpoint[name=vm1]"
	pool := func(t *testing.T, m map[string]any, i int) map[string]any {
		return at(t, m, "switchd:switchd", "ipam", "pools", "pool", i)
	}
	vm := func(t *testing.T, m map[string]any) map[string]any {
		return at(t, m, "switchd:switchd", "endpoints", "endpoint", 0, "config")
	}
	for _, tc := range []struct {
		name   string
		break_ func(t *testing.T, m map[string]any)
		path   string
		reason string
	}{{
		name: "overlapping pools",
		break_: func(t *testing.T, m map[string]any) {
			l := at(t, m, "switchd:switchd", "ipam", "pools")
			l["pool"] = append(l["pool"].([]any), map[string]any{"prefix": "10.10.1.128/25", "config": map[string]any{"prefix": "10.10.1.128/25"}})
		},
		path:   pools + "/pool[prefix=10.10.1.128/25]",
		reason: "overlaps pool 10.10.1.0/24",
	}, {
		name:   "block larger than pool",
		break_: func(t *testing.T, m map[string]any) { at(t, pool(t, m, 0), "config")["block-length"] = 20 },
		path:   pools + "/pool[prefix=10.10.1.0/24]/config/block-length",
		reason: "block length /20 does not fit pool 10.10.1.0/24",
	}, {
		name: "pool with host bits",
		break_: func(t *testing.T, m map[string]any) {
			p := pool(t, m, 0)
			p["prefix"] = "10.10.1.1/24"
			at(t, p, "config")["prefix"] = "10.10.1.1/24"
		},
		path:   pools + "/pool[prefix=10.10.1.1/24]/config/prefix",
		reason: "host bits set",
	}, {
		name:   "container endpoint in config",
		break_: func(t *testing.T, m map[string]any) { vm(t, m)["kind"] = "CONTAINER" },
		path:   vm1 + "/config/kind",
		reason: "container endpoints come from the CNI plugin",
	}, {
		name:   "VM without tap",
		break_: func(t *testing.T, m map[string]any) { delete(vm(t, m), "interface") },
		path:   vm1 + "/config/interface",
		reason: "needs the tap interface",
	}, {
		name: "one resilient bucket",
		break_: func(t *testing.T, m map[string]any) {
			at(t, m, "switchd:switchd", "config")["resilient-ecmp-buckets"] = 1
		},
		path:   "/switchd/config/resilient-ecmp-buckets",
		reason: "",
	}, {
		name:   "unknown hash policy",
		break_: func(t *testing.T, m map[string]any) { at(t, m, "switchd:switchd", "config")["ecmp-hash-policy"] = "L7" },
		path:   "/switchd/config/ecmp-hash-policy",
		reason: "",
	}, {
		name:   "bad MAC",
		break_: func(t *testing.T, m map[string]any) { vm(t, m)["mac"] = "52:54:00:12:34" },
		path:   vm1 + "/config/mac",
		reason: "",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			m := hostDoc(t)
			tc.break_(t, m)
			data, _ := json.Marshal(m)
			_, err := Parse(data, "host.json")
			var es Errors
			if !errors.As(err, &es) {
				t.Fatalf("got %v, want config errors", err)
			}
			for _, e := range es {
				if e.Path == tc.path && strings.Contains(e.Reason, tc.reason) {
					return
				}
			}
			t.Errorf("no error at\n  %s\ncontaining %q; got:\n%v", tc.path, tc.reason, err)
		})
	}
}
