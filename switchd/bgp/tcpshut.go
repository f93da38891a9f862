package bgp

import (
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Ending every session at once, below GoBGP.
//
// A graceful stop must end the sessions of graceful-restart neighbors
// without a single withdrawal reaching any of them. GoBGP cannot do that:
// a session it ends with a NOTIFICATION of its own (ResetPeer, Cease /
// Administrative Reset) is over for good on our side (pkg/server,
// handleFSMMessage: only a received NOTIFICATION, a read or write failure
// or the hold timer count as the neighbor restarting), so the server drops
// that neighbor's paths and sends the withdrawals to every session not yet
// reset. One ResetPeer per neighbor, or one for all (the FSM goroutines
// send the NOTIFICATIONs concurrently with the server handling the first
// session's end), leaves the neighbors reset last with withdrawals of the
// routes of those reset first: a leaf stopped with SIGTERM cut its hosts
// off from the rest of the fabric until it was back
// (TestLeafRestartLosesNoPacketsPrivileged/terminated).
//
// So the speaker shuts the sessions' TCP sockets down (SHUT_RDWR) itself,
// all of them before GoBGP can react to any: the kernel sends each
// neighbor a FIN after what GoBGP already wrote, and any later write
// fails. The neighbors see the connection close without NOTIFICATION,
// which RFC 4724 §4.2 makes a restart (they keep our routes, with or
// without RFC 8538), and our side sees a read or write failure, a restart
// too, so GoBGP keeps their paths and withdraws nothing.

// sessionSocket is one TCP connection of a BGP session, by its ends.
type sessionSocket struct {
	local, remote netip.AddrPort
}

// bgpPort is the well-known BGP port: one end of every session uses it.
const bgpPort = 179

// sessionAddrs are the two addresses of a session: ours and the
// neighbor's, without zones (plain).
type sessionAddrs struct {
	local, remote netip.Addr
}

// shutdownSessions shuts down, for reading and writing, every TCP socket of
// this process that carries a BGP session between the addresses of one of
// sessions. It returns the sessions whose sockets it shut down.
func shutdownSessions(sessions []sessionAddrs) ([]sessionAddrs, error) {
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return nil, err
	}
	var done []sessionAddrs
	for _, e := range fds {
		fd, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if l, err := os.Readlink("/proc/self/fd/" + e.Name()); err != nil || !strings.HasPrefix(l, "socket:") {
			continue
		}
		s, ok := tcpEnds(fd)
		if !ok || (s.local.Port() != bgpPort && s.remote.Port() != bgpPort) {
			continue
		}
		ends := sessionAddrs{local: plain(s.local.Addr()), remote: plain(s.remote.Addr())}
		if !slices.Contains(sessions, ends) {
			continue
		}
		if err := unix.Shutdown(fd, unix.SHUT_RDWR); err == nil {
			done = append(done, ends)
		}
	}
	return done, nil
}

// tcpEnds returns the ends of fd if it is a connected TCP socket.
func tcpEnds(fd int) (sessionSocket, bool) {
	if t, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE); err != nil || t != unix.SOCK_STREAM {
		return sessionSocket{}, false
	}
	la, err := unix.Getsockname(fd)
	if err != nil {
		return sessionSocket{}, false
	}
	ra, err := unix.Getpeername(fd) // ENOTCONN for a listener
	if err != nil {
		return sessionSocket{}, false
	}
	l, ok1 := sockaddrAddrPort(la)
	r, ok2 := sockaddrAddrPort(ra)
	return sessionSocket{local: l, remote: r}, ok1 && ok2
}

func sockaddrAddrPort(sa unix.Sockaddr) (netip.AddrPort, bool) {
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(a.Addr), uint16(a.Port)), true
	case *unix.SockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(a.Addr).Unmap(), uint16(a.Port)), true
	}
	return netip.AddrPort{}, false
}

func plain(a netip.Addr) netip.Addr { return a.WithZone("").Unmap() }

// restartSession ends the established session between the addresses of
// session, on which graceful restart gr is negotiated, so that it comes
// back at once and neither end drops the other's routes meanwhile: it
// shuts the session's socket down, which both ends take for a restart.
// A Cease of GoBGP's own would end the session for good on our side (the
// neighbor's paths withdrawn at once, the session back after
// IdleHoldTimeAfterReset). It reports whether it did; a helper-only
// speaker's routes are not kept by its neighbors, so it does not.
func restartSession(session sessionAddrs, gr *GracefulRestart) bool {
	if !session.local.IsValid() || gr == nil || !gr.Enabled || gr.HelperOnly {
		return false
	}
	shut, err := shutdownSessions([]sessionAddrs{session})
	return err == nil && len(shut) > 0
}
