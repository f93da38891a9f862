package bfd

import (
	"errors"
	"math/rand/v2"
	"time"

	pkt "github.com/osrg/gobgp/v4/pkg/packet/bfd"
)

// session is one session's state machine (RFC 5880 §6.8): no socket and no
// clock of its own. The engine hands it packets (receive) and the time
// (timer), and sends what it asks for; tests drive it the same way with a
// made-up clock. Only the engine's loop calls its methods, under the
// engine's lock.
type session struct {
	cfg PeerConfig // defaults filled in

	state, remoteState      State
	localDiscr, remoteDiscr uint32
	diag, remoteDiag        Diag

	// advTx and advRx are what the packets carry (bfd.DesiredMinTxInterval
	// and bfd.RequiredMinRxInterval); effTx and effRx what the peer is
	// known to have applied. They differ while a Poll Sequence announcing
	// a change while Up is unanswered: a longer transmit interval, or a
	// shorter receive interval for the detection time, waits for the
	// Final (§6.8.3). polledTx and polledRx are what the poll announced.
	advTx, advRx       time.Duration
	effTx, effRx       time.Duration
	polling            bool
	polledTx, polledRx time.Duration
	// owesFinal is set by a received Poll: a Final goes out at once.
	owesFinal bool

	// The peer's last packet: bfd.RemoteMinRxInterval (1 µs until one
	// arrives, §6.8.1), its DesiredMinTx and DetectMult.
	remoteRx, remoteTx time.Duration
	remoteMult         uint8

	// txAt is the next periodic transmission, detectAt the end of the
	// detection time; zero means not armed.
	txAt, detectAt time.Time
	rnd            *rand.Rand

	// removing counts the AdminDown packets still to send before a
	// removed session is dropped (0: not being removed).
	removing int

	changes                        []Change
	rxPackets, txPackets, txErrors uint64
	upCount, downCount             uint64
	lastChange, lastDown           time.Time
}

func newSession(cfg PeerConfig, discr uint32, now time.Time, rnd *rand.Rand) *session {
	s := &session{
		cfg:         cfg,
		state:       Down,
		remoteState: Down,
		localDiscr:  discr,
		advTx:       max(cfg.DesiredMinTx, slowTx),
		advRx:       cfg.RequiredMinRx,
		remoteRx:    time.Microsecond,
		rnd:         rnd,
		lastChange:  now,
	}
	s.effTx, s.effRx = s.advTx, s.advRx
	if cfg.AdminDown {
		s.state, s.diag = AdminDown, DiagAdminDown
	}
	s.txAt = now // the first packet goes out at once
	return s
}

// txInterval is the negotiated transmit interval before jitter (§6.8.7),
// zero when the peer asked for no packets.
func (s *session) txInterval() time.Duration {
	if s.remoteRx == 0 {
		return 0
	}
	return max(min(s.advTx, s.effTx), s.remoteRx)
}

// detectTime is the detection time in asynchronous mode (§6.8.4), zero
// before the peer's first packet.
func (s *session) detectTime() time.Duration {
	return time.Duration(s.remoteMult) * max(s.advRx, s.effRx, s.remoteTx)
}

// jitter returns 75–100 % of d, or 75–90 % when DetectMult is 1 (§6.8.7).
func (s *session) jitter(d time.Duration) time.Duration {
	span := d / 4
	if s.cfg.DetectMult == 1 {
		span = d * 15 / 100
	}
	if span <= 0 {
		return d
	}
	return d - d/4 + time.Duration(s.rnd.Int64N(int64(span)))
}

// reschedule brings the next transmission forward if the interval shrank;
// a longer one applies from the next transmission on.
func (s *session) reschedule(now time.Time) {
	iv := s.txInterval()
	if iv == 0 {
		s.txAt = time.Time{}
		return
	}
	if next := now.Add(s.jitter(iv)); s.txAt.IsZero() || next.Before(s.txAt) {
		s.txAt = next
	}
}

// setState moves to st, recording the change, and applies slow start
// (§6.8.3): DesiredMinTx is at least 1 s unless Up.
func (s *session) setState(now time.Time, st State, diag Diag) {
	old := s.state
	s.state, s.diag = st, diag
	s.lastChange = now
	s.changes = append(s.changes, Change{Peer: s.cfg.Key(), Old: old, New: st, Diag: diag, RemoteDiag: s.remoteDiag,
		RemoteState: s.remoteState, At: now})
	if old == Up {
		s.downCount++
		s.lastDown = now
	}
	if st == Up {
		s.upCount++
		s.setTimers(now, s.cfg.DesiredMinTx, s.cfg.RequiredMinRx)
		return
	}
	s.setTimers(now, max(s.cfg.DesiredMinTx, slowTx), s.cfg.RequiredMinRx)
}

// setTimers changes what the session advertises. While Up that starts a
// Poll Sequence (§6.8.3); one already running is followed by another when
// its Final arrives. Otherwise the values apply at once.
func (s *session) setTimers(now time.Time, tx, rx time.Duration) {
	if tx == s.advTx && rx == s.advRx {
		return
	}
	s.advTx, s.advRx = tx, rx
	if s.state != Up {
		s.effTx, s.effRx = tx, rx
		s.polling = false
	} else if !s.polling {
		s.polling = true
		s.polledTx, s.polledRx = tx, rx
	}
	s.reschedule(now)
}

// configure applies a changed config of the same Key: timers (a Poll
// Sequence if Up) and admin state.
func (s *session) configure(now time.Time, cfg PeerConfig) {
	s.cfg = cfg
	switch {
	case cfg.AdminDown && s.state != AdminDown:
		s.adminDown(now)
	case !cfg.AdminDown && s.state == AdminDown:
		s.setState(now, Down, DiagNone)
	case s.state == Up:
		s.setTimers(now, cfg.DesiredMinTx, cfg.RequiredMinRx)
	default:
		s.setTimers(now, max(cfg.DesiredMinTx, slowTx), cfg.RequiredMinRx)
	}
}

// adminDown takes the session to AdminDown (§6.8.16) and tells the peer at
// once.
func (s *session) adminDown(now time.Time) {
	s.setState(now, AdminDown, DiagAdminDown)
	s.detectAt = time.Time{}
	if s.remoteRx != 0 {
		s.txAt = now
	}
}

// finalReceived ends the Poll Sequence: what it announced is in effect.
func (s *session) finalReceived(now time.Time) {
	s.polling = false
	s.effTx, s.effRx = s.polledTx, s.polledRx
	if s.advTx != s.effTx || s.advRx != s.effRx {
		s.polling = true
		s.polledTx, s.polledRx = s.advTx, s.advRx
	}
	s.reschedule(now)
}

// receive handles a packet parse accepted and the engine matched to s
// (§6.8.6 from "set bfd.RemoteDiscr" on). It reports whether a Final is
// owed now.
func (s *session) receive(now time.Time, h *pkt.BFDHeader) bool {
	s.rxPackets++
	s.remoteDiscr = h.MyDiscriminator
	s.remoteState = State(h.State)
	s.remoteDiag = Diag(h.Diagnostic)
	s.remoteRx = usec(h.RequiredMinRxInterval)
	s.remoteTx = usec(h.DesiredMinTxInterval)
	s.remoteMult = h.DetectTimeMultiplier
	if h.Final && s.polling {
		s.finalReceived(now)
	}
	if s.state == AdminDown {
		return false
	}
	s.detectAt = now.Add(s.detectTime())
	s.reschedule(now)
	switch rs := s.remoteState; {
	case rs == AdminDown:
		if s.state != Down {
			s.setState(now, Down, DiagNeighborDown)
		}
	case s.state == Down && rs == Down:
		s.setState(now, Init, DiagNone)
	case s.state == Down && rs == Init, s.state == Init && rs >= Init:
		s.setState(now, Up, DiagNone)
	case s.state == Up && rs == Down:
		s.setState(now, Down, DiagNeighborDown)
	}
	if h.Poll {
		s.owesFinal = true
	}
	return s.owesFinal
}

// timer runs what is due at now: the detection time's end (§6.8.4: Down,
// and the peer's discriminator forgotten) and the periodic transmission,
// which it reports.
func (s *session) timer(now time.Time) (send bool) {
	if !s.detectAt.IsZero() && !now.Before(s.detectAt) {
		s.detectAt = time.Time{}
		s.remoteDiscr = 0
		s.remoteState = Down
		if s.state == Init || s.state == Up {
			s.setState(now, Down, DiagDetectionTimeExpired)
		}
	}
	if !s.txAt.IsZero() && !now.Before(s.txAt) {
		s.txAt = time.Time{}
		s.reschedule(now)
		return true
	}
	return false
}

// next is when timer has something to do; zero if never.
func (s *session) next() time.Time {
	switch {
	case s.txAt.IsZero():
		return s.detectAt
	case s.detectAt.IsZero() || s.txAt.Before(s.detectAt):
		return s.txAt
	}
	return s.detectAt
}

// header is the packet to send now: a periodic one (with Poll while a
// Poll Sequence runs), or the Final owed, never both bits (§6.8.7).
func (s *session) header(final bool) pkt.BFDHeader {
	h := pkt.BFDHeader{
		Version:               1,
		Diagnostic:            pkt.DiagnosticType(s.diag),
		State:                 pkt.StateType(s.state),
		DetectTimeMultiplier:  s.cfg.DetectMult,
		MyDiscriminator:       s.localDiscr,
		YourDiscriminator:     s.remoteDiscr,
		DesiredMinTxInterval:  uint32(s.advTx / time.Microsecond),
		RequiredMinRxInterval: uint32(s.advRx / time.Microsecond),
	}
	if final {
		h.Final = true
		s.owesFinal = false
	} else {
		h.Poll = s.polling
	}
	return h
}

func usec(v uint32) time.Duration { return time.Duration(v) * time.Microsecond }

// The checks of a received packet before its session is known (§6.8.6),
// each counted on its own.
var (
	errShort      = errors.New("shorter than a control packet")
	errLength     = errors.New("length field out of range")
	errVersion    = errors.New("version is not 1")
	errAuth       = errors.New("authentication present but not configured")
	errMultipoint = errors.New("multipoint bit set")
	errDetectMult = errors.New("detect multiplier zero")
	errMyDiscr    = errors.New("my discriminator zero")
	errYourDiscr  = errors.New("your discriminator zero outside Down and AdminDown")
)

// Bits of the second byte the codec does not decode.
const (
	flagAuth       = 1 << 2
	flagMultipoint = 1 << 0
)

// parse decodes b into h and applies the checks of §6.8.6 that need no
// session.
func parse(b []byte, h *pkt.BFDHeader) error {
	if len(b) < 24 {
		return errShort
	}
	n := int(b[3])
	if n < 24 || n > len(b) {
		return errLength
	}
	if b[0]>>5 != 1 {
		return errVersion
	}
	if b[1]&flagAuth != 0 {
		return errAuth
	}
	if b[1]&flagMultipoint != 0 {
		return errMultipoint
	}
	if err := h.UnmarshalBinary(b[:n]); err != nil {
		return errLength
	}
	switch {
	case h.DetectTimeMultiplier == 0:
		return errDetectMult
	case h.MyDiscriminator == 0:
		return errMyDiscr
	case h.YourDiscriminator == 0 && State(h.State) != Down && State(h.State) != AdminDown:
		return errYourDiscr
	}
	return nil
}
