// Package netlink is switchd's one way into the kernel: it names network
// namespaces (NS, an fd it owns), enters them (NS.Do, the only place switchd
// calls setns), reads and writes sysctls in them, and talks rtnetlink (or
// any netlink family) through Conn: batches of requests with each answer
// mapped back to its message by sequence number, dumps that restart when
// the kernel reports them interrupted, receive timeouts, EINTR retried,
// strict checking on. Monitor delivers link and address events.
//
// Sockets, message and attribute types come from github.com/mdlayher/netlink
// (the library google/nftables uses). Callers keep only their own message
// encoders: they append requests to a Batch (a reusable byte buffer, so a
// bulk writer allocates nothing per message) or hand in mdlayher
// netlink.Message values (Batch.Add).
package netlink
