// Package bfd is switchd's BFD engine: RFC 5880 asynchronous mode over
// RFC 5881 single-hop (UDP 3784, TTL 255 sent and required) and RFC 5883
// multihop (UDP 4784, a minimum TTL) sessions, IPv4 and IPv6, with no
// authentication, demand mode or echo.
//
// A session (session.go) is a state machine with no socket and no clock:
// Down/Init/Up/AdminDown, discriminators, the negotiated transmit interval
// and detection time, slow start (at least 1 s between packets until Up,
// §6.8.3), Poll/Final when the timers change while Up (a longer transmit
// interval or a shorter receive interval waits for the Final), and jitter
// of 75–100 % (75–90 % at detect multiplier 1). The Engine (engine.go) owns
// the sockets of one namespace and runs every session on one goroutine:
// epoll waits for the receive sockets (one per address family and kind,
// opened as sessions need them) and for the earliest timer of a heap of
// sessions, so a session costs no goroutine or runtime timer. The loop
// batches: a timer may run up to a tenth of its session's interval late
// (at most 5 ms, never early), so one turn sends for many sessions, and
// after a turn that received, the sockets are read again only after up to
// 5 ms. 100 sessions at 50 ms × 3 take 4–5 % of a core against FRR
// bfdd or another engine (BenchmarkPrivilegedSessions100At50ms*). Each
// session sends from a socket of its own (its own source port in
// 49152–65535, as RFC 5881 §4 asks).
//
// Why our own state machine rather than GoBGP's built-in BFD (v4.7+):
// that one is single-hop only, is tied to a BGP neighbor (no static next
// hops), and in v4.8.0 its expiry delivers a stale administrative reset
// to the next BGP session, a flap loop (osrg/gobgp#3561, fixed in v4.9.0).
// The wire codec is GoBGP v4's pkg/packet/bfd: the module is switchd's
// BGP library anyway (its speaker moves to v4), the package is 150 lines
// with no dependencies, and it decodes into a caller's struct without
// allocating. gopacket's layers.BFD decodes authentication too, but would
// bring the whole layers package (every protocol gopacket knows,
// registered at init) for a 24-byte header. The bits the codec skips
// (authentication present, multipoint) are checked on the raw byte
// (parse).
//
// The engine publishes as other switchd components do: Updates is a
// 1-buffered kick, Drain returns the state changes (peer, old, new,
// diagnostic), Sessions a snapshot of every session's state, timers and
// counters. Nothing here knows BGP: what a Down means for a neighbor or a
// static route's next hop is the caller's (RFC 5882).
package bfd
