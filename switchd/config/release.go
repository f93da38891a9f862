package config

import "github.com/switchd/switchd/models/oc"

// ReleaseSchema lets the garbage collector take the unzipped schema and
// what this package cached from it (the fields of each generated struct),
// about 5 MiB a daemon needs only while it loads a config. The next Load
// or Parse unzips the schema again (~70 ms), which suits a daemon that
// reloads rarely; a process that parses many configs (switchd check,
// tests) simply never calls it.
//
// It is safe to call while another goroutine loads a config: that load
// keeps the copy it started with. Struct fields it caches after the Clear
// point into that copy, which is equal in content to any later one, so
// later loads stay correct; they only keep the old copy alive until the
// next ReleaseSchema.
func ReleaseSchema() {
	oc.ReleaseSchemaTree()
	typeInfos.Clear()
}
