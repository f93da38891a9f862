// This file is written by hand; models/gen.sh rewrites the generated code
// to call it.

package oc

import (
	"sync"

	"github.com/openconfig/goyang/pkg/yang"
)

var schemaOnce sync.Once

// LazySchemaTree unzips the schema on first use and returns it (also kept
// in SchemaTree). Processes that never validate or unmarshal a tree, such
// as the CNI plugin, never pay for it.
func LazySchemaTree() map[string]*yang.Entry {
	schemaOnce.Do(func() {
		t, err := UnzipSchema()
		if err != nil {
			panic("schema error: " + err.Error())
		}
		SchemaTree = t
	})
	return SchemaTree
}
