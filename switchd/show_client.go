package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
	"github.com/openconfig/goyang/pkg/yang"
	"github.com/openconfig/ygot/util"
	"github.com/openconfig/ygot/ygot"
	"github.com/openconfig/ygot/ytypes"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/switchd/switchd/gnmi"
	"github.com/switchd/switchd/models/oc"
)

// defaultGNMISocket is the daemon's local gNMI socket (switchd run
// --gnmi-socket); SWITCHD_GNMI_SOCKET, when set, replaces it for every
// subcommand.
const defaultGNMISocket = "/run/switchd/gnmi.sock"

func gnmiSocketDefault() string {
	if p := os.Getenv("SWITCHD_GNMI_SOCKET"); p != "" {
		return p
	}
	return defaultGNMISocket
}

// clientFlags are the flags every gNMI client subcommand takes.
type clientFlags struct {
	socket  *string
	timeout *time.Duration
}

func addClientFlags(fs *flag.FlagSet) clientFlags {
	return clientFlags{
		socket:  fs.String("gnmi-socket", gnmiSocketDefault(), "the daemon's local gNMI socket (env SWITCHD_GNMI_SOCKET)"),
		timeout: fs.Duration("timeout", 30*time.Second, "give up on the daemon after this long"),
	}
}

// daemonClient is a gNMI client on the daemon's local socket: no TLS, no
// password; the socket's mode (0600, root) is the access control.
type daemonClient struct {
	socket string
	cc     *grpc.ClientConn
	gpb.GNMIClient
}

// unreachableError says the daemon is not there: no socket, or nobody
// accepting on it.
type unreachableError struct {
	socket string
	err    error
}

func (e *unreachableError) Error() string {
	return fmt.Sprintf("cannot reach the daemon at %s: %v", e.socket, e.err)
}

func (e *unreachableError) Unwrap() error { return e.err }

// dialDaemon connects to the local socket. gRPC connects lazily, so a
// missing socket is caught here (the usual "daemon not running") and a
// refused connection by the first RPC (see rpcError).
func dialDaemon(socket string) (*daemonClient, error) {
	if _, err := os.Stat(socket); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			err = errors.New("no such socket (is switchd running?)")
		}
		return nil, &unreachableError{socket: socket, err: err}
	}
	cc, err := grpc.NewClient("unix://"+socket, grpc.WithTransportCredentials(insecure.NewCredentials()),
		// A Get of a big subtree (thousands of interfaces) outgrows gRPC's
		// default 4 MiB; the AFT is streamed instead (once).
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxGetBytes)))
	if err != nil {
		return nil, &unreachableError{socket: socket, err: err}
	}
	return &daemonClient{socket: socket, cc: cc, GNMIClient: gpb.NewGNMIClient(cc)}, nil
}

func (c *daemonClient) Close() { c.cc.Close() }

// rpcError turns an RPC's failure into what a user reads: Unavailable
// (connection refused: a stale socket of a stopped daemon) is the daemon
// not running; anything else is the daemon's answer, its code and
// message (which names the path for a refused Set).
func (c *daemonClient) rpcError(err error) error {
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	switch st.Code() {
	case codes.Unavailable:
		msg := st.Message()
		if strings.Contains(msg, "connection refused") { // gRPC's is three errors deep
			msg = "connection refused (is switchd running?)"
		}
		return &unreachableError{socket: c.socket, err: errors.New(msg)}
	case codes.DeadlineExceeded:
		return fmt.Errorf("no answer from the daemon at %s: %s", c.socket, st.Message())
	}
	return fmt.Errorf("%s: %s", st.Code(), st.Message())
}

// maxGetBytes bounds a Get answer the client takes.
const maxGetBytes = 256 << 20

// once reads paths with a Subscribe ONCE and hands fn each notification
// as it comes, until the sync_response: the server sends a big subtree
// (the AFT: 100,000 routes are ~64 MB as one PROTO Get answer) in
// batches, so neither side holds it whole in one message.
func (c *daemonClient) once(ctx context.Context, fn func(*gpb.Notification), paths ...string) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sl := &gpb.SubscriptionList{Mode: gpb.SubscriptionList_ONCE, Encoding: gpb.Encoding_PROTO}
	for _, p := range paths {
		gp, err := parsePath(p)
		if err != nil {
			return err
		}
		sl.Subscription = append(sl.Subscription, &gpb.Subscription{Path: gp})
	}
	st, err := c.Subscribe(ctx)
	if err != nil {
		return c.rpcError(err)
	}
	if err := st.Send(&gpb.SubscribeRequest{Request: &gpb.SubscribeRequest_Subscribe{Subscribe: sl}}); err != nil {
		if _, err := st.Recv(); err != nil { // the server's reason
			return c.rpcError(err)
		}
		return c.rpcError(err)
	}
	for {
		r, err := st.Recv()
		if err != nil {
			return c.rpcError(err)
		}
		if r.GetSyncResponse() {
			return nil
		}
		if n := r.GetUpdate(); n != nil {
			fn(n)
		}
	}
}

// get is one Get of paths (gNMI path text) in the given encoding. A path
// that holds no data (NotFound) gives an empty notification, not an
// error: nothing to show is an empty table.
func (c *daemonClient) get(ctx context.Context, enc gpb.Encoding, typ gpb.GetRequest_DataType, paths ...string) ([]*gpb.Notification, error) {
	var out []*gpb.Notification
	for _, p := range paths {
		gp, err := parsePath(p)
		if err != nil {
			return nil, err
		}
		r, err := c.Get(ctx, &gpb.GetRequest{Path: []*gpb.Path{gp}, Encoding: enc, Type: typ})
		if status.Code(err) == codes.NotFound {
			continue
		}
		if err != nil {
			return nil, c.rpcError(err)
		}
		out = append(out, r.GetNotification()...)
	}
	return out, nil
}

// device reads the state in the subtrees at paths (containers or lists,
// JSON_IETF; the config leaves the daemon also publishes are left out)
// and decodes them into one oc.Device: each answer's value is wrapped in the
// containers and list entries of its path, from the root down, made to
// conform to RFC 7951 (conform) and unmarshalled by ygot against the
// schema (state paths, which the generated structs prefer).
func (c *daemonClient) device(ctx context.Context, paths ...string) (*oc.Device, error) {
	ns, err := c.get(ctx, gpb.Encoding_JSON_IETF, gpb.GetRequest_STATE, paths...)
	if err != nil {
		return nil, err
	}
	root := oc.LazySchemaTree()["Device"]
	d := &oc.Device{}
	for _, n := range ns {
		for _, u := range n.GetUpdate() {
			elems := append(append([]*gpb.PathElem(nil), n.GetPrefix().GetElem()...), u.GetPath().GetElem()...)
			dec := json.NewDecoder(bytes.NewReader(u.GetVal().GetJsonIetfVal()))
			dec.UseNumber() // 64-bit counters do not fit a float64
			var v any
			if err := dec.Decode(&v); err != nil {
				return nil, fmt.Errorf("decode %s: %w", pathText(elems), err)
			}
			tree := conform(wrapJSON(elems, v), root)
			if err := ytypes.Unmarshal(root, d, tree, &ytypes.IgnoreExtraFields{}); err != nil {
				return nil, fmt.Errorf("decode %s: %w", pathText(elems), err)
			}
		}
	}
	return d, nil
}

// wrapJSON puts v, the value of the node at elems, into the JSON of the
// whole tree: a container is an object member, a list entry a one-entry
// array whose object holds the keys (the value of a list entry holds its
// own).
func wrapJSON(elems []*gpb.PathElem, v any) any {
	for i := len(elems) - 1; i >= 0; i-- {
		e := elems[i]
		if len(e.GetKey()) > 0 {
			if m, ok := v.(map[string]any); ok {
				for k, kv := range e.GetKey() {
					if _, has := m[k]; !has {
						m[k] = kv
					}
				}
			}
			v = []any{v}
		}
		v = map[string]any{e.GetName(): v}
	}
	return v
}

// conform makes numbers in a decoded JSON tree what ygot's RFC 7951
// unmarshalling wants, by the schema entry e of each: a 64-bit integer
// or decimal64 a string, any other number a float64. A server without
// the schema (the daemon drops it to save memory) sends 64-bit values
// as JSON numbers, which ygot refuses.
func conform(v any, e *yang.Entry) any {
	switch x := v.(type) {
	case map[string]any:
		for k, c := range x {
			var ce *yang.Entry
			if e != nil { // FirstChild strips "module:" and looks through choices and cases
				ce = util.FirstChild(e, []string{k})
			}
			x[k] = conform(c, ce)
		}
	case []any: // list entries or leaf-list values: each has e
		for i := range x {
			x[i] = conform(x[i], e)
		}
	case json.Number:
		if gnmi.Is64(e) {
			return x.String()
		}
		f, err := x.Float64()
		if err != nil {
			return x.String()
		}
		return f
	}
	return v
}

func parsePath(p string) (*gpb.Path, error) {
	gp, err := ygot.StringToStructuredPath(p)
	if err != nil {
		return nil, fmt.Errorf("path %q: %v", p, err)
	}
	return gp, nil
}

func pathText(elems []*gpb.PathElem) string {
	s, err := ygot.PathToString(&gpb.Path{Elem: elems})
	if err != nil {
		return fmt.Sprint(elems)
	}
	return s
}

// clientMain runs fn with a client on the socket and turns its error into
// a message and exit code 1.
func clientMain(cmd string, f clientFlags, stderr io.Writer, fn func(ctx context.Context, c *daemonClient) error) int {
	c, err := dialDaemon(*f.socket)
	if err == nil {
		defer c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), *f.timeout)
		defer cancel()
		err = fn(ctx, c)
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", cmd, err)
		return 1
	}
	return 0
}

// parseInterspersed parses fs's flags wherever they are among the
// positional arguments (`show bgp summary --json` as well as `show --json
// bgp summary`), which flag alone stops at the first positional one.
func parseInterspersed(fs *flag.FlagSet, args []string) (pos []string, code int, ok bool) {
	for {
		if err := fs.Parse(args); errors.Is(err, flag.ErrHelp) {
			return nil, 0, false
		} else if err != nil {
			return nil, 2, false
		}
		if fs.NArg() == 0 {
			return pos, 0, true
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}
