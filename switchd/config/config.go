// Package config loads switchd's config file: the OpenConfig tree (plus
// switchd's own module) in RFC 7951 JSON or the same tree in YAML. The file
// is unmarshalled and validated as a whole, by ygot and by switchd's own
// checks, before anything is applied, and translated into what the
// components take (bgp.Config, fib routes).
//
// Every problem is reported as an Error naming the OpenConfig path of the
// offending node in gNMI path form, all problems of a file at once.
package config

import (
	"fmt"
	"io"
	"os"
	"reflect"
	"runtime/debug"

	"github.com/switchd/switchd/fib"
	"github.com/switchd/switchd/models/oc"
	"github.com/switchd/switchd/platform"
	"github.com/switchd/switchd/policy"
	"github.com/switchd/switchd/switchd/bgp"
)

// Intent is a validated config: the tree and what components need from it.
type Intent struct {
	// Device is the whole validated tree. Its leaves were read from the
	// config containers (ytypes.PreferShadowPath): see package models.
	Device *oc.Device
	// BGP is the speaker's configuration, from the DEFAULT_INSTANCE network
	// instance's BGP protocol and its table connections.
	BGP bgp.Config
	// Routes are the routes of the main table configured locally: static
	// routes and discarding aggregates, normalized, sorted by prefix.
	Routes []fib.Route
	// Workloads holds the IPAM pools and configured endpoints (the
	// project's own module, /switchd).
	Workloads Workloads
	// Dataplane holds kernel forwarding settings (/switchd/config).
	Dataplane Dataplane
	// Policy is the workload policy (/switchd/workload-policy) and the
	// failsafe additions (/switchd/failsafe).
	Policy policy.Intent
	// Groups are the groups whose membership BGP carries
	// (/switchd/workload-policy/groups; groups.go).
	Groups []Group
	// ACL is the OpenConfig ACLs (/acl) with the defined sets they name
	// (/defined-sets).
	ACL policy.ACLIntent
	// Metrics is the Prometheus listener (/switchd/metrics).
	Metrics Metrics
	// Kubernetes is cluster mode (/switchd/kubernetes; kubernetes.go).
	Kubernetes Kubernetes
	// GNMI is the gNMI TCP listener (/system/grpc-servers, /system/aaa).
	GNMI GNMI
	// Interfaces are what /interfaces asks of existing interfaces, in name
	// order (interfaces.go).
	Interfaces []platform.InterfaceConfig
	// BFD are the BFD sessions BGP neighbors and static next hops ask
	// for (bfd.go).
	BFD []BFDSession
}

// Load reads and parses the config file at path. A file over MaxFileSize is
// refused before it is read.
func Load(path string) (*Intent, error) {
	data, err := readFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(data, path)
}

// readFile reads a config file, refusing one over MaxFileSize.
func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("load config: %w", err)
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Mode().IsRegular() {
		if err := checkSize(st.Size()); err != nil {
			return nil, Errors{{Path: "/", Reason: fmt.Sprintf("%s: %v", path, err)}}
		}
	}
	// One byte more than allowed tells a file over the limit (or one
	// growing while read) from one at it.
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("load config %s: %w", path, err)
	}
	if err := checkSize(int64(len(data))); err != nil {
		return nil, Errors{{Path: "/", Reason: fmt.Sprintf("%s: %v", path, err)}}
	}
	return data, nil
}

// Parse parses a config. The format is taken from filename's extension
// (.json; .yaml or .yml) and otherwise from the content (JSON starts with
// '{'). A config with problems gives an Errors listing all of them; a
// document that cannot be parsed at all gives a single Error at "/".
//
// Parse never panics: a panic in the decoders, ygot or the checks is
// turned into an Error at "/", so that a daemon reloading a bad file logs
// it and keeps its running config.
func Parse(data []byte, filename string) (in *Intent, err error) {
	defer func() {
		if r := recover(); r != nil {
			in, err = nil, Errors{{Path: "/", Reason: fmt.Sprintf("%s: internal error while loading the config (please report): %v\n%s", filename, r, debug.Stack())}}
		}
	}()
	fail := func(err error) error { return Errors{{Path: "/", Reason: fmt.Sprintf("%s: %v", filename, err)}} }
	if err := checkSize(int64(len(data))); err != nil {
		return nil, fail(err)
	}
	yamlIn := isYAML(data, filename)
	if !yamlIn {
		// Before decoding: the decoder would recurse that deep. (YAML's
		// parser stops at 10,000 levels itself; decodeJSON then refuses
		// the converted document by path.)
		if err := checkJSONDepth(data); err != nil {
			return nil, fail(err)
		}
	}
	j, err := toJSON(data, yamlIn)
	if err != nil {
		return nil, fail(err)
	}
	doc, err := decodeJSON(j)
	if err != nil {
		return nil, fail(err)
	}
	dev, err := Unmarshal(doc)
	if err != nil {
		return nil, err
	}
	return Translate(dev)
}

// Unmarshal checks a decoded RFC 7951 JSON document against the schema and
// unmarshals it into a Device, reading the config containers. It does not
// run the semantic checks of Translate.
func Unmarshal(doc any) (*oc.Device, error) {
	errList := checkTree(doc)
	dev := &oc.Device{}
	if m, ok := doc.(map[string]any); ok {
		u := &unmarshaller{}
		u.structure(reflect.ValueOf(dev), oc.LazySchemaTree()["Device"], m, nil)
		errList = append(errList, u.list...)
	}
	if len(errList) > 0 {
		return nil, sortErrors(errList)
	}
	if errList := validateTree(dev); len(errList) > 0 {
		return nil, sortErrors(errList)
	}
	return dev, nil
}
