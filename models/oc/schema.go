// This file is written by hand; models/gen.sh rewrites the generated code
// to call it.

package oc

import (
	"sync"
	"sync/atomic"

	"github.com/openconfig/goyang/pkg/yang"
)

var (
	schemaMu sync.Mutex // serializes unzips and releases
	schema   atomic.Pointer[map[string]*yang.Entry]
)

// LazySchemaTree unzips the schema on first use and returns it (also kept
// in SchemaTree). Processes that never validate or unmarshal a tree, such
// as the CNI plugin, never pay for it.
//
// A caller may keep the map it got for as long as it needs it: a
// ReleaseSchemaTree meanwhile only drops the package's reference, and the
// next call unzips a fresh copy. Entries of two copies are equal in
// content but not identical (distinct pointers): a cache of entries must
// be dropped with the tree (see switchd/config.ReleaseSchema).
func LazySchemaTree() map[string]*yang.Entry {
	if t := schema.Load(); t != nil {
		return *t
	}
	schemaMu.Lock()
	defer schemaMu.Unlock()
	if t := schema.Load(); t != nil {
		return *t
	}
	t, err := UnzipSchema()
	if err != nil {
		panic("schema error: " + err.Error())
	}
	SchemaTree = t
	schema.Store(&t)
	return t
}

// ReleaseSchemaTree drops the unzipped schema, so that the garbage
// collector can take it once no caller holds it: about 5 MiB of live heap
// that a daemon needs only while it loads a config. The next
// LazySchemaTree unzips it again (~70 ms).
func ReleaseSchemaTree() {
	schemaMu.Lock()
	defer schemaMu.Unlock()
	SchemaTree = nil
	schema.Store(nil)
}
