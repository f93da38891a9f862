package bgp

import (
	"errors"
	"net"
	"sync"

	"golang.org/x/sys/unix"
)

// tcpMD5Error says why GoBGP could not set TCP-MD5 keys, or nil. GoBGP
// only logs a warning when it cannot set a key on its listener, and the
// session then never comes up; Apply turns that into an error instead.
//
// The probe uses a listener from package net, as GoBGP does: since Go 1.24
// those are MPTCP sockets where the kernel supports MPTCP, and MPTCP
// refuses TCP_MD5SIG (ENOPROTOOPT). A binary that needs TCP-MD5 sets
// `//go:debug multipathtcp=0` in its main package (or GODEBUG).
var tcpMD5Error = sync.OnceValue(func() error {
	l, err := net.ListenTCP("tcp4", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil // cannot probe here; let GoBGP try
	}
	defer l.Close()
	sc, err := l.SyscallConn()
	if err != nil {
		return nil
	}
	var serr error
	proto := 0
	sc.Control(func(fd uintptr) {
		proto, _ = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_PROTOCOL)
		sig := unix.TCPMD5Sig{Keylen: 1}
		sig.Key[0] = 'x'
		sig.Addr.Family = unix.AF_INET
		copy(sig.Addr.Data[2:6], net.IPv4(127, 0, 0, 2).To4())
		serr = unix.SetsockoptTCPMD5Sig(int(fd), unix.IPPROTO_TCP, unix.TCP_MD5SIG, &sig)
	})
	if serr != nil && proto == unix.IPPROTO_MPTCP {
		return errors.New("TCP-MD5 is refused on MPTCP listeners; run with GODEBUG=multipathtcp=0 (or //go:debug multipathtcp=0 in package main)")
	}
	if serr != nil {
		return errors.New("TCP-MD5 not available: " + serr.Error())
	}
	return nil
})
