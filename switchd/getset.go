package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
	"github.com/openconfig/ygot/ygot"
)

const getUsage = `usage: switchd get [--type all|config|state|operational] [--gnmi-socket PATH] PATH...

Prints the daemon's tree at each PATH (gNMI path text; keys may be "*",
e.g. /interfaces/interface[name=*]/state/oper-status) as JSON_IETF
(RFC 7951): the value itself when one node answers, else an object from
each answering node's path to its value.

flags:
`

const setUsage = `usage: switchd set [--gnmi-socket PATH] OP...

Changes the daemon's config in one gNMI Set: every OP or none. OP is
  --update PATH VALUE    merge VALUE into the tree at PATH
  --replace PATH VALUE   replace the tree at PATH with VALUE
  --delete PATH          delete the tree at PATH
VALUE is JSON_IETF (RFC 7951: 64-bit numbers as strings); a VALUE that is
not JSON is taken as a string, and @FILE reads it from FILE. A refused Set
prints the daemon's error, which names the offending path, and exits 1.

flags:
`

func cmdGet(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("switchd get", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(fs.Output(), getUsage); fs.PrintDefaults() }
	cf := addClientFlags(fs)
	typ := fs.String("type", "all", "all, config, state or operational")
	paths, code, ok := parseInterspersed(fs, args)
	if !ok {
		return code // flag printed the usage (-h: 0) or the error (2)
	}
	t, known := gpb.GetRequest_DataType_value[strings.ToUpper(*typ)]
	if !known || len(paths) == 0 {
		if !known {
			fmt.Fprintf(stderr, "switchd get: --type %q: all, config, state or operational\n", *typ)
		}
		fs.Usage()
		return 2
	}
	return clientMain("switchd get", cf, stderr, func(ctx context.Context, c *daemonClient) error {
		var gps []*gpb.Path
		for _, p := range paths {
			gp, err := parsePath(p)
			if err != nil {
				return err
			}
			gps = append(gps, gp)
		}
		r, err := c.Get(ctx, &gpb.GetRequest{Path: gps, Encoding: gpb.Encoding_JSON_IETF, Type: gpb.GetRequest_DataType(t)})
		if err != nil {
			return c.rpcError(err)
		}
		b, err := getJSON(r)
		if err != nil {
			return err
		}
		_, err = stdout.Write(b)
		return err
	})
}

// getJSON renders a Get answer: one node's value, or an object of path
// text → value for several (wildcards, or several paths), indented.
func getJSON(r *gpb.GetResponse) ([]byte, error) {
	type node struct {
		path string
		val  json.RawMessage
	}
	var nodes []node
	for _, n := range r.GetNotification() {
		for _, u := range n.GetUpdate() {
			p := pathText(append(append([]*gpb.PathElem(nil), n.GetPrefix().GetElem()...), u.GetPath().GetElem()...))
			v := u.GetVal().GetJsonIetfVal()
			if v == nil {
				v = u.GetVal().GetJsonVal()
			}
			if v == nil { // a scalar in another encoding: as text
				v, _ = json.Marshal(u.GetVal().String())
			}
			nodes = append(nodes, node{p, v})
		}
	}
	var buf bytes.Buffer
	switch len(nodes) {
	case 0:
		buf.WriteString("{}")
	case 1:
		if err := json.Indent(&buf, nodes[0].val, "", "  "); err != nil {
			return nil, err
		}
	default:
		buf.WriteString("{")
		for i, nd := range nodes {
			if i > 0 {
				buf.WriteString(",")
			}
			k, _ := json.Marshal(nd.path)
			buf.WriteString("\n  ")
			buf.Write(k)
			buf.WriteString(": ")
			if err := json.Indent(&buf, nd.val, "  ", "  "); err != nil {
				return nil, err
			}
		}
		buf.WriteString("\n}")
	}
	buf.WriteString("\n")
	return buf.Bytes(), nil
}

// setOp is one operation of a set command, in the order given.
type setOp struct {
	kind  string // update, replace, delete
	path  string
	value *string // set once the VALUE is read; nil for delete
}

func cmdSet(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("switchd set", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(fs.Output(), setUsage); fs.PrintDefaults() }
	cf := addClientFlags(fs)
	var ops []*setOp
	for _, kind := range []string{"update", "replace", "delete"} {
		help := "PATH VALUE: " + kind + " (repeatable)"
		if kind == "delete" {
			help = "PATH: delete (repeatable)"
		}
		fs.Func(kind, help, func(p string) error {
			ops = append(ops, &setOp{kind: kind, path: p})
			return nil
		})
	}
	values, code, ok := parseInterspersed(fs, args)
	if !ok {
		return code // flag printed the usage (-h: 0) or the error (2)
	}
	// The VALUEs, positional, go to the updates and replaces in order.
	for _, op := range ops {
		if op.kind == "delete" {
			continue
		}
		if len(values) == 0 {
			fmt.Fprintf(stderr, "switchd set: --%s %s: VALUE missing\n", op.kind, op.path)
			fs.Usage()
			return 2
		}
		op.value, values = &values[0], values[1:]
	}
	if len(ops) == 0 || len(values) > 0 {
		if len(values) > 0 {
			fmt.Fprintf(stderr, "switchd set: unexpected arguments %q\n", values)
		}
		fs.Usage()
		return 2
	}
	req, err := setRequest(ops)
	if err != nil {
		fmt.Fprintf(stderr, "switchd set: %v\n", err)
		return 2
	}
	return clientMain("switchd set", cf, stderr, func(ctx context.Context, c *daemonClient) error {
		r, err := c.Set(ctx, req)
		if err != nil {
			err = c.rpcError(err)
			if _, down := err.(*unreachableError); down {
				return err
			}
			return fmt.Errorf("refused: %w", err)
		}
		for _, u := range r.GetResponse() {
			p, _ := ygot.PathToString(u.GetPath())
			fmt.Fprintf(stdout, "%s %s\n", strings.ToLower(u.GetOp().String()), p)
		}
		return nil
	})
}

// setRequest builds the SetRequest: deletes, replaces, updates (gNMI
// applies them in that order whatever the order given).
func setRequest(ops []*setOp) (*gpb.SetRequest, error) {
	req := &gpb.SetRequest{}
	for _, op := range ops {
		gp, err := parsePath(op.path)
		if err != nil {
			return nil, err
		}
		if op.kind == "delete" {
			req.Delete = append(req.Delete, gp)
			continue
		}
		v, err := setValue(*op.value)
		if err != nil {
			return nil, fmt.Errorf("--%s %s: %v", op.kind, op.path, err)
		}
		u := &gpb.Update{Path: gp, Val: &gpb.TypedValue{Value: &gpb.TypedValue_JsonIetfVal{JsonIetfVal: v}}}
		if op.kind == "replace" {
			req.Replace = append(req.Replace, u)
		} else {
			req.Update = append(req.Update, u)
		}
	}
	return req, nil
}

// setValue is VALUE as JSON: read from a file for @FILE, and quoted as a
// string if it is not JSON (switchd set --update .../description uplink).
func setValue(s string) ([]byte, error) {
	b := []byte(s)
	if name, ok := strings.CutPrefix(s, "@"); ok {
		var err error
		if b, err = os.ReadFile(name); err != nil {
			return nil, err
		}
		if !json.Valid(b) {
			return nil, fmt.Errorf("%s: not JSON", name)
		}
	}
	if json.Valid(b) {
		return bytes.TrimSpace(b), nil
	}
	return json.Marshal(string(b))
}
