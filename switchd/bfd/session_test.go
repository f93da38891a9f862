package bfd

import (
	"errors"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	pkt "github.com/osrg/gobgp/v4/pkg/packet/bfd"
)

// link runs two sessions against each other on a made-up clock: packets
// go through the codec and parse and arrive at once, unless the direction
// is cut.
type link struct {
	t          *testing.T
	now        time.Time
	a, b       *session
	cutA, cutB bool            // drop what a (b) sends
	sentA      []pkt.BFDHeader // what a sent, in order
	sentAtA    []time.Time
}

func newLink(t *testing.T, ca, cb PeerConfig) *link {
	t.Helper()
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	mk := func(c PeerConfig, discr uint32, seed uint64) *session {
		c, err := c.withDefaults()
		if err != nil {
			t.Fatal(err)
		}
		return newSession(c, discr, start, rand.New(rand.NewPCG(seed, seed)))
	}
	return &link{t: t, now: start, a: mk(ca, 0xa, 1), b: mk(cb, 0xb, 2)}
}

// upLink is two sessions at 50 ms × 3 both ways, run until both are Up
// and done polling; ca is a's config.
func upLink(t *testing.T) (l *link, ca PeerConfig) {
	t.Helper()
	ca = peerCfg("10.0.0.2", 50*time.Millisecond, 50*time.Millisecond, 3)
	l = newLink(t, ca, peerCfg("10.0.0.1", 50*time.Millisecond, 50*time.Millisecond, 3))
	l.until(10*time.Second, l.steady)
	return l, ca
}

// changed is a's config with fn applied and defaults filled in.
func changed(t *testing.T, ca PeerConfig, fn func(*PeerConfig)) PeerConfig {
	t.Helper()
	fn(&ca)
	c, err := ca.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func peerCfg(peer string, tx, rx time.Duration, mult uint8) PeerConfig {
	return PeerConfig{Peer: netip.MustParseAddr(peer), DesiredMinTx: tx, RequiredMinRx: rx, DetectMult: mult}
}

func (l *link) send(from, to *session, final bool) {
	h := from.header(final)
	if from == l.a {
		l.sentA = append(l.sentA, h)
		l.sentAtA = append(l.sentAtA, l.now)
	}
	if (from == l.a && l.cutA) || (from == l.b && l.cutB) {
		return
	}
	buf, err := h.MarshalBinary()
	if err != nil {
		l.t.Fatal(err)
	}
	var got pkt.BFDHeader
	if err := parse(buf, &got); err != nil {
		l.t.Fatalf("parse what %x sent: %v", from.localDiscr, err)
	}
	if to.receive(l.now, &got) {
		l.send(to, from, true)
	}
}

// step advances the clock to the next timer of either session and runs it.
func (l *link) step() {
	next := l.a.next()
	if n := l.b.next(); next.IsZero() || (!n.IsZero() && n.Before(next)) {
		next = n
	}
	if next.IsZero() {
		l.t.Fatal("no timer armed")
	}
	l.now = next
	if l.a.timer(l.now) {
		l.send(l.a, l.b, false)
	}
	if l.b.timer(l.now) {
		l.send(l.b, l.a, false)
	}
}

// until steps until cond holds, failing after limit of made-up time.
func (l *link) until(limit time.Duration, cond func() bool) {
	l.t.Helper()
	end := l.now.Add(limit)
	for !cond() {
		if l.now.After(end) {
			l.t.Fatalf("not reached within %v: a %v (%v), b %v (%v)", limit, l.a.state, l.a.diag, l.b.state, l.b.diag)
		}
		l.step()
	}
}

func (l *link) bothUp() bool { return l.a.state == Up && l.b.state == Up }

func (l *link) steady() bool { return l.bothUp() && !l.a.polling && !l.b.polling }

func TestHandshakeAndNegotiation(t *testing.T) {
	l := newLink(t, peerCfg("10.0.0.2", 50*time.Millisecond, 100*time.Millisecond, 3),
		peerCfg("10.0.0.1", 200*time.Millisecond, 30*time.Millisecond, 5))
	l.until(10*time.Second, l.steady)

	var states []State
	for _, c := range l.a.changes {
		if c.Peer.Peer != netip.MustParseAddr("10.0.0.2") {
			t.Errorf("change names peer %v", c.Peer)
		}
		states = append(states, c.New)
	}
	// a hears b's Down (→ Init) or b's Init (→ Up straight from Down).
	if got := states[len(states)-1]; got != Up || len(states) > 2 {
		t.Errorf("a went through %v, want [Init Up] or [Up]", states)
	}
	// a sends every max(its 50 ms, b's 30 ms) = 50 ms; b every
	// max(200, 100) = 200 ms.
	if got := l.a.txInterval(); got != 50*time.Millisecond {
		t.Errorf("a's tx interval %v, want 50ms", got)
	}
	if got := l.b.txInterval(); got != 200*time.Millisecond {
		t.Errorf("b's tx interval %v, want 200ms", got)
	}
	// a detects with b's multiplier 5 × max(a's rx 100, b's tx 200);
	// b with a's 3 × max(30, 50).
	if got := l.a.detectTime(); got != time.Second {
		t.Errorf("a's detection time %v, want 1s", got)
	}
	if got := l.b.detectTime(); got != 150*time.Millisecond {
		t.Errorf("b's detection time %v, want 150ms", got)
	}
	if l.a.remoteDiscr != 0xb || l.b.remoteDiscr != 0xa {
		t.Errorf("discriminators: a knows %x, b knows %x", l.a.remoteDiscr, l.b.remoteDiscr)
	}
}

// Until Up a session advertises at least 1 s and sends that slowly; at Up
// it polls for its fast rate, and no packet carries Poll and Final.
func TestSlowStartThenPoll(t *testing.T) {
	l, _ := upLink(t)
	var sawPoll bool
	var last time.Duration
	for i, h := range l.sentA {
		if h.Poll && h.Final {
			t.Errorf("packet %d has Poll and Final", i)
		}
		if State(h.State) != Up && h.DesiredMinTxInterval < 1e6 {
			t.Errorf("packet %d in %v advertises %d µs, want >= 1 s", i, State(h.State), h.DesiredMinTxInterval)
		}
		if State(h.State) == Up && h.Poll {
			sawPoll = true
			last = usec(h.DesiredMinTxInterval)
		}
	}
	if !sawPoll || last != 50*time.Millisecond {
		t.Errorf("no Poll announcing 50ms after Up (last %v)", last)
	}
	// Slow start: periodic packets sent while not Up are at least 750 ms
	// (1 s less jitter) apart.
	var prev time.Time
	for i, h := range l.sentA {
		if h.Final {
			continue
		}
		if State(h.State) != Up && !prev.IsZero() && l.sentAtA[i].Sub(prev) < 750*time.Millisecond {
			t.Errorf("packet %d in %v sent %v after the one before", i, State(h.State), l.sentAtA[i].Sub(prev))
		}
		prev = l.sentAtA[i]
	}
	if l.a.upCount != 1 {
		t.Fatalf("a came up %d times", l.a.upCount)
	}
}

// A longer transmit interval waits for the Final (§6.8.3); so does a
// shorter receive interval in the detection time.
func TestPollFinalOnTimerChange(t *testing.T) {
	l, ca := upLink(t)

	// Cut b's answers, so the poll stays open.
	l.cutB = true
	l.a.configure(l.now, changed(t, ca, func(c *PeerConfig) { c.DesiredMinTx, c.RequiredMinRx = 300*time.Millisecond, 20*time.Millisecond }))
	if !l.a.polling {
		t.Fatal("no Poll Sequence after a timer change while Up")
	}
	if got := l.a.txInterval(); got != 50*time.Millisecond {
		t.Errorf("tx interval %v before the Final, want the old 50ms", got)
	}
	if got := l.a.detectTime(); got != 150*time.Millisecond {
		t.Errorf("detection time %v before the Final, want the old 3×50ms", got)
	}
	l.step()
	h := l.sentA[len(l.sentA)-1]
	if !h.Poll || usec(h.DesiredMinTxInterval) != 300*time.Millisecond || usec(h.RequiredMinRxInterval) != 20*time.Millisecond {
		t.Errorf("packet during the poll: %+v", h)
	}

	l.cutB = false
	l.until(time.Second, func() bool { return !l.a.polling })
	if got := l.a.txInterval(); got != 300*time.Millisecond {
		t.Errorf("tx interval %v after the Final, want 300ms", got)
	}
	// b's tx is 50 ms: detection 3 × max(20, 50).
	if got := l.a.detectTime(); got != 150*time.Millisecond {
		t.Errorf("detection time %v after the Final", got)
	}
	// b now sends at max(50, a's 20 ms rx) = 50ms, and detects a with
	// 3 × max(b's rx 50, a's tx 300).
	if got := l.b.detectTime(); got != 900*time.Millisecond {
		t.Errorf("b's detection time %v, want 900ms", got)
	}
	if !l.bothUp() {
		t.Errorf("session fell: a %v b %v", l.a.state, l.b.state)
	}
}

// A second change during a poll is polled for after the first Final.
func TestPollDuringPoll(t *testing.T) {
	l, ca := upLink(t)
	l.cutB = true
	for _, tx := range []time.Duration{100 * time.Millisecond, 200 * time.Millisecond} {
		l.a.configure(l.now, changed(t, ca, func(c *PeerConfig) { c.DesiredMinTx = tx }))
	}
	if l.a.polledTx != 100*time.Millisecond {
		t.Fatalf("poll announced %v", l.a.polledTx)
	}
	// A Final for the first poll leaves the second open.
	l.a.receive(l.now, &pkt.BFDHeader{Version: 1, State: pkt.StateUp, Final: true, DetectTimeMultiplier: 3,
		MyDiscriminator: 0xb, YourDiscriminator: 0xa, DesiredMinTxInterval: 50000, RequiredMinRxInterval: 50000})
	if !l.a.polling || l.a.polledTx != 200*time.Millisecond || l.a.effTx != 100*time.Millisecond {
		t.Errorf("after the first Final: polling %v for %v, in effect %v", l.a.polling, l.a.polledTx, l.a.effTx)
	}
	l.cutB = false
	l.until(time.Second, func() bool { return !l.a.polling })
	if l.a.txInterval() != 200*time.Millisecond {
		t.Errorf("tx interval %v", l.a.txInterval())
	}
}

// Silence from the peer takes the session Down at the end of the
// detection time, not before, and forgets the peer's discriminator.
func TestDetectionTimeout(t *testing.T) {
	l, _ := upLink(t)
	l.a.changes = nil
	l.cutB = true
	deadline := l.a.detectAt
	if got := deadline.Sub(l.now); got > 150*time.Millisecond {
		t.Fatalf("detection time %v ahead", got)
	}
	// a's timers run at each of its transmissions before the deadline,
	// and it stays Up through them.
	l.until(time.Second, func() bool { return l.a.state != Up })
	if !l.now.Equal(deadline) {
		t.Errorf("Down at %v, detection time ended at %v", l.now, deadline)
	}
	if l.a.state != Down || l.a.diag != DiagDetectionTimeExpired || l.a.remoteDiscr != 0 {
		t.Errorf("after expiry: %v diag %v remote discr %x", l.a.state, l.a.diag, l.a.remoteDiscr)
	}
	if len(l.a.changes) != 1 || l.a.changes[0] != (Change{Peer: l.a.cfg.Key(), Old: Up, New: Down, Diag: DiagDetectionTimeExpired, RemoteState: Down, At: l.now}) {
		t.Errorf("changes %+v", l.a.changes)
	}
	// Back to slow start.
	if l.a.advTx != time.Second || l.a.txInterval() != time.Second {
		t.Errorf("after Down: advertises %v, sends every %v", l.a.advTx, l.a.txInterval())
	}
	// b hears a's Down and follows with diag 3; both come back.
	l.cutB = false
	l.until(10*time.Second, l.steady)
	if l.b.upCount != 2 || l.a.upCount != 2 {
		t.Errorf("up counts a %d b %d", l.a.upCount, l.b.upCount)
	}
	var sawNeighborDown bool
	for _, c := range l.b.changes {
		sawNeighborDown = sawNeighborDown || (c.Old == Up && c.New == Down && c.Diag == DiagNeighborDown)
	}
	if !sawNeighborDown {
		t.Errorf("b's changes %+v: no Down with neighbor signaled session down", l.b.changes)
	}
}

// AdminDown is signalled: the peer goes Down with diag 3 and does not
// come Up until the session is enabled again.
func TestAdminDown(t *testing.T) {
	l, ca := upLink(t)
	l.a.configure(l.now, changed(t, ca, func(c *PeerConfig) { c.AdminDown = true }))
	if l.a.state != AdminDown || l.a.diag != DiagAdminDown {
		t.Fatalf("a %v %v", l.a.state, l.a.diag)
	}
	l.until(time.Second, func() bool { return l.b.state == Down })
	if c := l.b.changes[len(l.b.changes)-1]; c.Diag != DiagNeighborDown || c.RemoteState != AdminDown {
		t.Errorf("b's change %+v, want diag %v with the peer in AdminDown", c, DiagNeighborDown)
	}
	for range 50 {
		l.step()
	}
	if l.a.state != AdminDown || l.b.state != Down {
		t.Errorf("while admin down: a %v b %v", l.a.state, l.b.state)
	}
	l.a.configure(l.now, changed(t, ca, func(c *PeerConfig) {}))
	l.until(10*time.Second, l.steady)
}

// A peer asking for no packets (RequiredMinRx 0) gets none.
func TestRemoteMinRxZero(t *testing.T) {
	l := newLink(t, peerCfg("10.0.0.2", 50*time.Millisecond, 50*time.Millisecond, 3),
		peerCfg("10.0.0.1", 50*time.Millisecond, 50*time.Millisecond, 3))
	l.a.receive(l.now, &pkt.BFDHeader{Version: 1, State: pkt.StateDown, DetectTimeMultiplier: 3,
		MyDiscriminator: 0xb, DesiredMinTxInterval: 1e6, RequiredMinRxInterval: 0})
	if l.a.txInterval() != 0 || !l.a.txAt.IsZero() {
		t.Errorf("tx interval %v, next tx %v", l.a.txInterval(), l.a.txAt)
	}
}

func TestJitter(t *testing.T) {
	for _, c := range []struct {
		mult   uint8
		lo, hi time.Duration
	}{{3, 750 * time.Millisecond, time.Second}, {1, 750 * time.Millisecond, 900 * time.Millisecond}} {
		s := &session{cfg: PeerConfig{DetectMult: c.mult}, rnd: rand.New(rand.NewPCG(1, 2))}
		lo, hi := time.Hour, time.Duration(0)
		for range 10000 {
			d := s.jitter(time.Second)
			lo, hi = min(lo, d), max(hi, d)
		}
		if lo < c.lo || hi >= c.hi || lo > c.lo+10*time.Millisecond || hi < c.hi-10*time.Millisecond {
			t.Errorf("mult %d: jitter spans %v..%v, want %v..%v", c.mult, lo, hi, c.lo, c.hi)
		}
	}
}

func TestParseChecks(t *testing.T) {
	good := func() []byte {
		h := pkt.BFDHeader{Version: 1, State: pkt.StateDown, DetectTimeMultiplier: 3, MyDiscriminator: 7,
			DesiredMinTxInterval: 1e6, RequiredMinRxInterval: 1e6}
		b, _ := h.MarshalBinary()
		return b
	}
	for _, c := range []struct {
		name string
		edit func([]byte) []byte
		want error
	}{
		{"good", func(b []byte) []byte { return b }, nil},
		{"trailing bytes beyond length", func(b []byte) []byte { return append(b, 0, 0) }, nil},
		{"short", func(b []byte) []byte { return b[:20] }, errShort},
		{"length beyond packet", func(b []byte) []byte { b[3] = 30; return b }, errLength},
		{"length below 24", func(b []byte) []byte { b[3] = 20; return b }, errLength},
		{"version 0", func(b []byte) []byte { b[0] &^= 0xe0; return b }, errVersion},
		{"auth bit", func(b []byte) []byte { b[1] |= flagAuth; return b }, errAuth},
		{"multipoint bit", func(b []byte) []byte { b[1] |= flagMultipoint; return b }, errMultipoint},
		{"detect mult 0", func(b []byte) []byte { b[2] = 0; return b }, errDetectMult},
		{"my discr 0", func(b []byte) []byte { b[7] = 0; return b }, errMyDiscr},
		{"Up without your discr", func(b []byte) []byte { b[1] = byte(Up) << 6; return b }, errYourDiscr},
	} {
		var h pkt.BFDHeader
		if err := parse(c.edit(good()), &h); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
}

func TestValidate(t *testing.T) {
	p4 := netip.MustParseAddr("10.0.0.1")
	for _, c := range []struct {
		cfg   PeerConfig
		field string // "" means valid
	}{
		{PeerConfig{Peer: p4}, ""},
		{PeerConfig{Peer: netip.MustParseAddr("fe80::1"), Interface: "eth0"}, ""},
		{PeerConfig{Peer: p4, Local: netip.MustParseAddr("10.0.0.2"), Multihop: true, MinTTL: 250}, ""},
		{PeerConfig{}, "Peer"},
		{PeerConfig{Peer: netip.MustParseAddr("224.0.0.5")}, "Peer"},
		{PeerConfig{Peer: netip.MustParseAddr("fe80::1%eth0"), Interface: "eth0"}, "Peer"},
		{PeerConfig{Peer: netip.MustParseAddr("fe80::1")}, "Interface"},
		{PeerConfig{Peer: netip.MustParseAddr("::ffff:10.0.0.1")}, "Peer"},
		{PeerConfig{Peer: p4, Local: netip.MustParseAddr("0.0.0.0")}, "Local"},
		{PeerConfig{Peer: p4, Local: netip.MustParseAddr("fd00::1")}, "Local"},
		{PeerConfig{Peer: p4, Multihop: true}, "Local"},
		{PeerConfig{Peer: p4, Local: netip.MustParseAddr("10.0.0.2"), Multihop: true, Interface: "eth0"}, "Interface"},
		{PeerConfig{Peer: p4, MinTTL: 254}, "MinTTL"},
		{PeerConfig{Peer: p4, DesiredMinTx: 5 * time.Millisecond}, "DesiredMinTx"},
		{PeerConfig{Peer: p4, RequiredMinRx: 2 * time.Minute}, "RequiredMinRx"},
		{PeerConfig{Peer: p4, DesiredMinTx: 10*time.Millisecond + 1}, "DesiredMinTx"},
		{PeerConfig{Peer: p4, Interface: "a-very-long-interface"}, "Interface"},
	} {
		err := c.cfg.Validate()
		var fe *FieldError
		switch {
		case c.field == "" && err != nil:
			t.Errorf("%+v: %v", c.cfg, err)
		case c.field != "" && !errors.As(err, &fe):
			t.Errorf("%+v: %v, want a FieldError on %s", c.cfg, err, c.field)
		case c.field != "" && fe.Field != c.field:
			t.Errorf("%+v: error on %s (%v), want %s", c.cfg, fe.Field, err, c.field)
		}
	}
	got, _ := PeerConfig{Peer: p4}.withDefaults()
	if got.DesiredMinTx != DefaultDesiredMinTx || got.RequiredMinRx != DefaultRequiredMinRx || got.DetectMult != 3 || got.MinTTL != 255 {
		t.Errorf("defaults: %+v", got)
	}
}
