// Package gnmi is switchd's gNMI server: Capabilities, Get, Set and
// Subscribe over the OpenConfig tree, backed by the gnmi library's cache.
// It owns no kernel object.
package gnmi
