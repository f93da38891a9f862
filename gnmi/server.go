package gnmi

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/openconfig/gnmi/cache"
	"github.com/openconfig/gnmi/ctree"
	gpb "github.com/openconfig/gnmi/proto/gnmi"
	"github.com/openconfig/gnmi/subscribe"
	"github.com/openconfig/goyang/pkg/yang"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/switchd/switchd/models/oc"
)

// DefaultTarget is the cache's one target: the name a request without a
// target is served under, and the target of every response.
const DefaultTarget = "switchd"

// DefaultMaxSubscribes bounds concurrent Subscribe RPCs when Options leave
// it zero.
const DefaultMaxSubscribes = 64

// SetHandler applies a SetRequest as one transaction on the config tree.
// The daemon's config layer implements it; the server only checks the
// caller's role and passes the authenticated user name along.
type SetHandler interface {
	Set(ctx context.Context, user string, req *gpb.SetRequest) (*gpb.SetResponse, error)
}

// SampleRule says how TARGET_DEFINED serves a leaf: sampled when it
// returns true (counters), on change otherwise. path is the leaf's path
// in cache form (element names, each list's key values after its name).
type SampleRule func(path []string) bool

// CountersSampled is the TARGET_DEFINED rule OpenConfig suggests:
// leaves in a "counters" container are sampled, the rest go on change.
func CountersSampled(path []string) bool {
	for _, e := range path {
		if e == "counters" {
			return true
		}
	}
	return false
}

// Options configure a Server. The zero value serves an empty cache under
// DefaultTarget with no Set and no schema.
type Options struct {
	// Target is the cache's target name (DefaultTarget if empty).
	Target string
	// Models are announced by Capabilities (oc.ΓModelData, the generated
	// schema's modules, if nil).
	Models []*gpb.ModelData
	// Schema is the root of the generated YANG schema (the fake root,
	// oc.LazySchemaTree()["Device"]); with it, list elements without keys
	// in a request get wildcard keys, Get's JSON_IETF names carry module
	// prefixes and 64-bit numbers are strings, and Get's OPERATIONAL type
	// tells config twins apart. Holding it keeps the unzipped schema
	// (~5 MiB) alive, which the daemon otherwise releases after loading.
	Schema *yang.Entry
	// Set handles SetRequests; nil answers Unimplemented.
	Set SetHandler
	// MaxSubscribes bounds concurrent Subscribe RPCs (DefaultMaxSubscribes
	// if 0), separately for the TCP listener and the local socket; one
	// more is refused with ResourceExhausted.
	MaxSubscribes int
	// TargetDefined decides TARGET_DEFINED per leaf; nil serves every
	// leaf on change. Sampled leaves go out every TargetDefinedInterval
	// (10 s if zero).
	TargetDefined         SampleRule
	TargetDefinedInterval time.Duration
	// DefaultSampleInterval serves SAMPLE with sample_interval 0 (10 s if
	// zero).
	DefaultSampleInterval time.Duration
	// MinSampleInterval refuses shorter sample intervals (100 ms if zero).
	MinSampleInterval time.Duration
	Logger            *slog.Logger
}

// Server is switchd's gNMI service. Rendered state goes in through Update
// and Delete (safe from any goroutine); subtrees too big to copy into the
// cache are served by a Source registered with AddSource.
type Server struct {
	gpb.UnimplementedGNMIServer

	opts   Options
	log    *slog.Logger
	cache  *cache.Cache
	sub    *subscribe.Server // ON_CHANGE over the cache
	srcSub *subscribe.Server // ON_CHANGE over sources: an empty cache, changes passed through
	// One slot per running Subscribe RPC; the local socket has its own,
	// so remote subscribers cannot lock switchd's CLI out.
	slots, localSlots chan struct{}

	mu      sync.RWMutex // guards sources
	sources []source
}

type source struct {
	prefix []string // cache form, no wildcards
	src    Source
}

var glogToStderr sync.Once

// New makes a Server with an empty cache.
func New(opts Options) (*Server, error) {
	if opts.Target == "" {
		opts.Target = DefaultTarget
	}
	if opts.Models == nil {
		opts.Models = oc.ΓModelData
	}
	if opts.MaxSubscribes <= 0 {
		opts.MaxSubscribes = DefaultMaxSubscribes
	}
	if opts.DefaultSampleInterval <= 0 {
		opts.DefaultSampleInterval = 10 * time.Second
	}
	if opts.TargetDefinedInterval <= 0 {
		opts.TargetDefinedInterval = 10 * time.Second
	}
	if opts.MinSampleInterval <= 0 {
		opts.MinSampleInterval = 100 * time.Millisecond
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	glogToStderr.Do(func() {
		// The gnmi library logs through glog, which otherwise writes log
		// files into the temporary directory at its first line.
		if f := flag.Lookup("logtostderr"); f != nil && f.Value.String() == "false" {
			f.Value.Set("true")
		}
	})
	s := &Server{opts: opts, log: opts.Logger, slots: make(chan struct{}, opts.MaxSubscribes), localSlots: make(chan struct{}, opts.MaxSubscribes)}
	s.cache = cache.New([]string{opts.Target})
	var err error
	if s.sub, err = subscribe.NewServer(s.cache); err != nil {
		return nil, err
	}
	s.cache.SetClient(s.sub.Update)
	// Source changes go through a second subscribe server whose cache stays
	// empty: its matcher and per-client queues deliver them, nothing is
	// stored. Its cache needs the target to accept subscriptions.
	if s.srcSub, err = subscribe.NewServer(cache.New([]string{opts.Target})); err != nil {
		return nil, err
	}
	return s, nil
}

// Target is the name the server's state is served under.
func (s *Server) Target() string { return s.opts.Target }

// Update publishes n: updates under a registered source's prefix go to
// ON_CHANGE subscribers only, the rest into the cache, which drops values
// equal to the cached ones and refuses timestamps older than the cached
// leaf's (cache.ErrStale, returned). A missing prefix or target is set
// to the server's target; a zero timestamp becomes now. The cache keeps
// n (or its parts) and subscribers read it later: the caller must not
// change n after the call.
func (s *Server) Update(n *gpb.Notification) error {
	if n == nil {
		return errors.New("nil notification")
	}
	n = s.withTarget(n)
	if n.Timestamp == 0 {
		n.Timestamp = time.Now().UnixNano()
	}
	cached, passed := s.splitBySource(n)
	var errs []error
	if cached != nil {
		errs = append(errs, s.cacheUpdate(cached))
	}
	if passed != nil {
		s.srcSub.Update(ctree.DetachedLeaf(passed))
	}
	return errors.Join(errs...)
}

// Delete removes the subtrees at paths (relative to the target root) and
// tells subscribers.
func (s *Server) Delete(ts time.Time, paths ...*gpb.Path) error {
	if ts.IsZero() {
		ts = time.Now()
	}
	return s.Update(&gpb.Notification{Timestamp: ts.UnixNano(), Delete: paths})
}

// cacheUpdate puts n into the cache a leaf at a time, every leaf's
// notification sharing n's prefix. The library splits a notification of
// several updates too, but clones the prefix for each leaf: an
// interface's prefix (two elements and a key map) is ~600 B, paid again
// by each of its leaves for as long as the cache holds them. A shared
// prefix's elements are clipped so that no append on a stored path can
// write into it; the cache and its readers never change a stored path.
func (s *Server) cacheUpdate(n *gpb.Notification) error {
	n.Prefix.Elem = slices.Clip(n.Prefix.Elem)
	if n.Atomic || len(n.Update)+len(n.Delete) <= 1 {
		return s.cache.GnmiUpdate(n)
	}
	var errs []error
	for i := range n.Update {
		errs = append(errs, s.cache.GnmiUpdate(&gpb.Notification{Timestamp: n.Timestamp, Prefix: n.Prefix,
			Update: n.Update[i : i+1 : i+1]}))
	}
	if len(n.Delete) > 0 {
		errs = append(errs, s.cache.GnmiUpdate(&gpb.Notification{Timestamp: n.Timestamp, Prefix: n.Prefix,
			Delete: n.Delete}))
	}
	return errors.Join(errs...)
}

func (s *Server) withTarget(n *gpb.Notification) *gpb.Notification {
	if n.Prefix == nil {
		n.Prefix = &gpb.Path{Target: s.opts.Target}
	} else if n.Prefix.Target == "" {
		n.Prefix.Target = s.opts.Target
	}
	return n
}

// splitBySource returns the part of n for the cache and the part for
// source subscribers; either may be nil.
func (s *Server) splitBySource(n *gpb.Notification) (cached, passed *gpb.Notification) {
	s.mu.RLock()
	nsrc := len(s.sources)
	s.mu.RUnlock()
	if nsrc == 0 {
		return n, nil
	}
	pre := toStrings(n.Prefix)
	var cu, pu []*gpb.Update
	var cd, pd []*gpb.Path
	for _, u := range n.Update {
		if s.sourceFor(append(pre[:len(pre):len(pre)], toStrings(u.Path)...)) != nil {
			pu = append(pu, u)
		} else {
			cu = append(cu, u)
		}
	}
	for _, d := range n.Delete {
		p := append(pre[:len(pre):len(pre)], toStrings(d)...)
		switch {
		case s.sourceFor(p) != nil:
			pd = append(pd, d)
		case s.aboveSource(p):
			// The cache tells only of leaves it removed: subscribers to
			// the source's leaves hear of their end from the source side.
			cd, pd = append(cd, d), append(pd, d)
		default:
			cd = append(cd, d)
		}
	}
	part := func(u []*gpb.Update, d []*gpb.Path) *gpb.Notification {
		if len(u)+len(d) == 0 {
			return nil
		}
		if len(u) == len(n.Update) && len(d) == len(n.Delete) {
			return n
		}
		return &gpb.Notification{Timestamp: n.Timestamp, Prefix: n.Prefix, Update: u, Delete: d, Atomic: n.Atomic}
	}
	return part(cu, cd), part(pu, pd)
}

// Capabilities lists the models of the generated schema and the
// encodings served.
func (s *Server) Capabilities(ctx context.Context, _ *gpb.CapabilityRequest) (*gpb.CapabilityResponse, error) {
	return &gpb.CapabilityResponse{
		SupportedModels:    s.opts.Models,
		SupportedEncodings: []gpb.Encoding{gpb.Encoding_JSON_IETF, gpb.Encoding_JSON, gpb.Encoding_PROTO},
		GNMIVersion:        gnmiVersion(),
	}, nil
}

// gnmiVersion is the version of gnmi.proto the server was built with.
func gnmiVersion() string {
	v, _ := proto.GetExtension(gpb.File_github_com_openconfig_gnmi_proto_gnmi_gnmi_proto.Options(), gpb.E_GnmiService).(string)
	return v
}

// Set checks that the caller may change config and hands the request to
// the SetHandler.
func (s *Server) Set(ctx context.Context, req *gpb.SetRequest) (*gpb.SetResponse, error) {
	u := UserFrom(ctx)
	if !u.Role.canSet() {
		return nil, status.Errorf(codes.PermissionDenied, "user %q (role %s) may not Set", u.Name, u.Role)
	}
	if s.opts.Set == nil {
		return nil, status.Error(codes.Unimplemented, "Set is not served")
	}
	if t := req.GetPrefix().GetTarget(); t != "" && t != s.opts.Target {
		return nil, status.Errorf(codes.NotFound, "no such target %q (this is %q)", t, s.opts.Target)
	}
	return s.opts.Set.Set(ctx, u.Name, req)
}

// checkTarget accepts an empty target or the server's own.
func (s *Server) checkTarget(t string) error {
	if t == "" || t == s.opts.Target || t == "*" {
		return nil
	}
	return status.Errorf(codes.NotFound, "no such target %q (this is %q)", t, s.opts.Target)
}

func joinKey(p []string) string { return strings.Join(p, "\x00") }

func errorf(c codes.Code, format string, a ...any) error {
	return status.Error(c, fmt.Sprintf(format, a...))
}
