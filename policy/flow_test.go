package policy

import (
	"context"
	"encoding/binary"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/switchd/switchd/sim/ns"
)

// udpDrop is `udp dport P counter drop`, named id.
func udpDrop(id string, p uint16) ChainRule {
	return ChainRule{ID: id, Exprs: []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_UDP}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binary.BigEndian.AppendUint16(nil, p)},
		&expr.Counter{},
		&expr.Verdict{Kind: expr.VerdictDrop},
	}}
}

// TestPrivilegedRestartKeepsFiltering restarts the table's owner 40 times
// (a new Table each time, the old one just dropped, as after SIGKILL) while
// a blocked and an allowed UDP flow send every 200 µs over loopback. Each
// restart's desired chain differs from the kernel's (the drop rule under
// another name, an extra rule in front), so every adoption deletes the
// drop rule and inserts its successor. Not one blocked datagram may pass
// and not one allowed datagram may be lost.
func TestPrivilegedRestartKeepsFiltering(t *testing.T) {
	n := ns.NewT(t, "pol-flow")
	var blocked, allowed, tx *net.UDPConn
	must(t, n.Do(func() (err error) {
		if blocked, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9999}); err != nil {
			return err
		}
		if allowed, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9998}); err != nil {
			return err
		}
		tx, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		return err
	}))
	defer blocked.Close()
	defer allowed.Close()
	defer tx.Close()
	allowed.SetReadBuffer(4 << 20)

	chain := func(i int) Chain {
		rules := []ChainRule{udpDrop(map[bool]string{true: "drop-a", false: "drop-b"}[i%2 == 0], 9999)}
		if i%3 == 0 {
			rules = append([]ChainRule{tcpPort(1)}, rules...)
		}
		return Chain{Name: "out", Hook: nftables.ChainHookOutput, Priority: nftables.ChainPriorityFilter, Policy: &accept, Rules: rules}
	}
	ctx := context.Background()
	first := NewTable(n.Net())
	must(t, first.SetChain(chain(0)))
	must(t, first.Apply(ctx))
	first.Close()

	var gotBlocked, gotAllowed atomic.Int64
	var wg sync.WaitGroup
	count := func(c *net.UDPConn, n *atomic.Int64) {
		defer wg.Done()
		buf := make([]byte, 64)
		for {
			if _, err := c.Read(buf); err != nil {
				return
			}
			n.Add(1)
		}
	}
	wg.Add(2)
	go count(blocked, &gotBlocked)
	go count(allowed, &gotAllowed)
	stop := make(chan struct{})
	sent := 0
	sendDone := make(chan struct{})
	go func() {
		defer close(sendDone)
		tick := time.NewTicker(200 * time.Microsecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			tx.WriteToUDP([]byte("x"), blocked.LocalAddr().(*net.UDPAddr))
			if _, err := tx.WriteToUDP([]byte("x"), allowed.LocalAddr().(*net.UDPAddr)); err == nil {
				sent++
			}
		}
	}()
	for i := 1; i <= 40; i++ {
		tb := NewTable(n.Net())
		must(t, tb.SetChain(chain(i)))
		must(t, tb.Apply(ctx))
		if tb.Messages() == 0 {
			t.Fatalf("restart %d: adoption sent nothing, but the chain differs", i)
		}
		tb.Close()
		time.Sleep(2 * time.Millisecond)
	}
	close(stop)
	<-sendDone
	time.Sleep(50 * time.Millisecond)
	blocked.Close()
	allowed.Close()
	wg.Wait()
	if gotBlocked.Load() != 0 {
		t.Errorf("%d blocked datagrams passed during restarts", gotBlocked.Load())
	}
	if int(gotAllowed.Load()) != sent || sent < 100 {
		t.Errorf("allowed: %d of %d arrived", gotAllowed.Load(), sent)
	}
	t.Logf("40 restarts: %d allowed datagrams sent, %d arrived; %d blocked passed", sent, gotAllowed.Load(), gotBlocked.Load())
}
