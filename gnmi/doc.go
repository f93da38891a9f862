// Package gnmi is switchd's gNMI server: Capabilities, Get, Set and
// Subscribe over the OpenConfig tree, on the gnmi library's cache and
// subscribe packages. It owns no kernel object and knows no component:
// the daemon renders state into notifications and publishes them here.
//
// # What is cached and what is walked
//
// Rendered state goes in through Server.Update and Server.Delete into a
// cache.Cache with one target (DefaultTarget). The cache keeps one
// notification per leaf, drops a value equal to the cached one (so
// republishing a whole subtree costs no subscriber traffic) and refuses
// a timestamp older than the cached leaf's (cache.ErrStale). The cache's
// client is the library's subscribe.Server, which matches each accepted
// change against ON_CHANGE subscriptions.
//
// A subtree its owner already holds in memory and which would be costly
// to copy (the AFT: fib's routes, a million at scale) is a Source,
// registered with AddSource for a path prefix. It is not cached: Get,
// ONCE, POLL and SAMPLE call its Walk, and changes the daemon publishes
// under its prefix with Update go straight to a second subscribe.Server
// whose cache stays empty, which delivers them to ON_CHANGE subscribers
// and forgets them. A subscriber's initial state of a source is a walk
// made once its subscription is registered; changes published meanwhile
// are queued and sent after the walk (one the walk saw comes twice; none
// is lost, and the newest is sent last).
//
// # Subscribe
//
// ONCE and POLL walk the cache and the sources and end with
// sync_response. STREAM runs one part per subscription of the request,
// each a goroutine handing responses to the RPC's sender goroutine (the
// only one that calls Send) through one channel, so each part's order is
// kept; sync_response goes out once every part has sent its initial
// state:
//
//   - ON_CHANGE: the library's Subscribe, run in process on a stream of
//     ours (innerStream) for that one path, over the cache, and another
//     over the sources if the path reaches one. heartbeat_interval adds a
//     part that resends the subtree at that interval.
//   - SAMPLE: a samplePart, ticking at sample_interval, walks the path
//     and hands its sampler (sample.go, pure logic) the leaves; the
//     sampler decides what goes out (suppress_redundant,
//     heartbeat_interval) and sends deletes for leaves gone since.
//   - TARGET_DEFINED: Options.TargetDefined, a rule from the publisher,
//     says which leaves are sampled (counters); those go out every
//     TargetDefinedInterval, the rest on change.
//
// A Subscribe takes one of MaxSubscribes slots for its lifetime; without
// a free slot it fails at once with ResourceExhausted. The local socket
// has slots of its own, so remote subscribers cannot lock the CLI out.
//
// Paths are matched in the cache's string form (element names, each
// list's key values after it in key-name order). With Options.Schema a
// request may leave out list keys (interface/state/oper-status) or give
// some of them: the missing ones become "*". "..." is served anywhere in
// a path (trailing, it is the subtree; inside, the walk or the stream is
// filtered).
//
// # Listeners and security
//
// Listen serves TCP with TLS unless told otherwise: the configured
// certificate, or a self-signed one generated once into the state dir
// (SelfSignedCert, SelfSignedKey) and reused, its SHA-256 fingerprint
// logged; with a client CA, mutual TLS. Every TCP RPC authenticates: a
// verified client certificate whose CN is a user's name, else username
// and password metadata checked against the user's bcrypt hash. Admins
// may Set; read-only users get PermissionDenied on Set. The local unix
// socket (mode 0600, so root only) serves without TLS and without
// password, as root, for switchd's own CLI. ListenFromConfig derives
// the TCP listener's options from /system/grpc-servers and
// /system/aaa/authentication/users (config.go).
//
// The gnmi library logs through glog; New points glog at stderr, since
// glog otherwise writes log files into the temporary directory.
package gnmi
