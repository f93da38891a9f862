package server

import (
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/osrg/gobgp/v4/pkg/config/oc"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
)

// readsAfterWrite is a TCP connection whose reads wait until the first
// write has been tried: of the two session goroutines, the sender runs
// first, an order a loaded machine may pick.
type readsAfterWrite struct {
	net.Conn
	wrote chan struct{}
	once  sync.Once
}

func (c *readsAfterWrite) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.once.Do(func() { close(c.wrote) })
	return n, err
}

func (c *readsAfterWrite) Read(b []byte) (int, error) {
	<-c.wrote
	return c.Conn.Read(b)
}

// TestCeaseBeforeResetNotTakenForRestart: a peer sends a Cease and resets
// the connection, and our keepalive fails before the receive loop has read
// the Cease. With graceful restart negotiated and the N bit not, a Cease
// ends the session for good (its routes go) while a write failure is a
// restart (its routes are kept): the session must end as the Cease says.
// Upstream the failed write closed the connection, so the Cease was never
// read.
func TestCeaseBeforeResetNotTakenForRestart(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	local, err := net.Dial("tcp4", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	peer, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	cease, _ := bgp.NewBGPNotificationMessage(bgp.BGP_ERROR_CEASE, bgp.BGP_ERROR_SUB_ADMINISTRATIVE_SHUTDOWN, nil).Serialize()
	if _, err := peer.Write(cease); err != nil {
		t.Fatal(err)
	}
	peer.(*net.TCPConn).SetLinger(0) // close with RST
	peer.Close()
	waitTCPClosed(t, local.(*net.TCPConn))

	pConf := &oc.Neighbor{}
	pConf.Config.NeighborAddress = netip.MustParseAddr("127.0.0.1")
	pConf.Timers.State.NegotiatedHoldTime = 90
	pConf.Timers.State.KeepaliveInterval = 1
	pConf.GracefulRestart.State.Enabled = true
	pConf.GracefulRestart.State.PeerRestartTime = 120
	f := newFSM(&oc.Global{}, pConf, bgp.BGP_FSM_ESTABLISHED, slog.New(slog.DiscardHandler))
	f.conn = &readsAfterWrite{Conn: local, wrote: make(chan struct{})}
	h := &fsmHandler{fsm: f, outgoing: f.outgoingCh, callback: func(*fsmMsg) {}}

	done := make(chan *fsmStateReason, 1)
	go func() {
		_, r := h.established(t.Context())
		done <- r
	}()
	select {
	case r := <-done:
		if r.Type != fsmNotificationRecv {
			t.Errorf("session ended as %q, want the Cease received", r)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the session did not end")
	}
}

// waitTCPClosed waits until c's socket has taken the peer's RST.
func waitTCPClosed(t *testing.T, c *net.TCPConn) {
	t.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		var state uint8
		rc.Control(func(fd uintptr) {
			if ti, err := unix.GetsockoptTCPInfo(int(fd), syscall.IPPROTO_TCP, unix.TCP_INFO); err == nil {
				state = ti.State
			}
		})
		if state == 7 { // TCP_CLOSE
			return
		}
	}
	t.Fatal("the peer's reset never arrived")
}
