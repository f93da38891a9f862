package config

import (
	"reflect"
	"runtime"
	"sync"
	"testing"
	"weak"

	"github.com/switchd/switchd/models/oc"
)

// TestReleaseSchemaFreesTree checks that after a load and ReleaseSchema
// nothing keeps the unzipped schema alive (not the package's cache of
// struct fields either), so the garbage collector can take it, and that
// the next load unzips a new copy and gives the same result.
func TestReleaseSchemaFreesTree(t *testing.T) {
	first, err := Load("../../examples/host.json")
	if err != nil {
		t.Fatal(err)
	}
	old := weak.Make(oc.LazySchemaTree()["Device"])
	ReleaseSchema()
	for i := 0; i < 5 && old.Value() != nil; i++ {
		runtime.GC()
	}
	if old.Value() != nil {
		t.Fatal("the released schema is still reachable after GC")
	}
	again, err := Load("../../examples/host.json")
	if err != nil {
		t.Fatalf("load after release: %v", err)
	}
	if !reflect.DeepEqual(first.Device, again.Device) || !reflect.DeepEqual(first.BGP, again.BGP) {
		t.Error("a load after ReleaseSchema gives a different result")
	}
}

// TestReleaseSchemaConcurrentLoads releases the schema while other
// goroutines load configs: every load succeeds with the same result (run
// with -race, it also checks the release is properly synchronized).
func TestReleaseSchemaConcurrentLoads(t *testing.T) {
	want, err := Load("../../examples/host.json")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 5; i++ {
				got, err := Load("../../examples/host.json")
				if err != nil {
					t.Errorf("load: %v", err)
					return
				}
				if !reflect.DeepEqual(want.Device, got.Device) {
					t.Error("a load concurrent with ReleaseSchema gives a different result")
					return
				}
			}
		}()
	}
	for i := 0; i < 10; i++ {
		ReleaseSchema()
		runtime.Gosched()
	}
	wg.Wait()
}

// BenchmarkLoadHost is what a reload of examples/host.json costs with the
// schema kept (warm) and after ReleaseSchema (released: unzipped again),
// side by side.
func BenchmarkLoadHost(b *testing.B) {
	for _, bc := range []struct {
		name    string
		release bool
	}{{"warm", false}, {"released", true}} {
		b.Run(bc.name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				if bc.release {
					ReleaseSchema()
				}
				if _, err := Load("../../examples/host.json"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
