package bfd

import (
	"fmt"
	"time"
)

// State is a session state (RFC 5880 §4.1; the wire values).
type State uint8

const (
	AdminDown State = 0
	Down      State = 1
	Init      State = 2
	Up        State = 3
)

func (s State) String() string {
	switch s {
	case AdminDown:
		return "AdminDown"
	case Down:
		return "Down"
	case Init:
		return "Init"
	case Up:
		return "Up"
	}
	return fmt.Sprintf("State(%d)", uint8(s))
}

// Diag is a diagnostic code (RFC 5880 §4.1): why the session last left Up.
type Diag uint8

const (
	DiagNone                  Diag = 0
	DiagDetectionTimeExpired  Diag = 1
	DiagEchoFailed            Diag = 2
	DiagNeighborDown          Diag = 3
	DiagForwardingPlaneReset  Diag = 4
	DiagPathDown              Diag = 5
	DiagConcatenatedPathDown  Diag = 6
	DiagAdminDown             Diag = 7
	DiagReverseConcatPathDown Diag = 8
)

var diagNames = [...]string{
	"none", "control detection time expired", "echo function failed",
	"neighbor signaled session down", "forwarding plane reset", "path down",
	"concatenated path down", "administratively down", "reverse concatenated path down",
}

func (d Diag) String() string {
	if int(d) < len(diagNames) {
		return diagNames[d]
	}
	return fmt.Sprintf("diag %d", uint8(d))
}

// Change is one state transition of a session, as Drain returns it.
type Change struct {
	Peer     Key
	Old, New State
	// Diag is the local diagnostic after the change (why it went Down);
	// RemoteDiag the peer's last. RemoteState is the peer's state then:
	// AdminDown means the peer turned BFD off, which must not take down
	// what BFD protects (RFC 5882 §3.2).
	Diag, RemoteDiag Diag
	RemoteState      State
	At               time.Time
}

// Session is a snapshot of one session (Sessions): the RFC 5880 §6.8.1
// state variables, the negotiated timers and counters.
type Session struct {
	Config PeerConfig // defaults filled in

	State, RemoteState      State
	LocalDiscr, RemoteDiscr uint32
	LocalDiag, RemoteDiag   Diag

	// What we advertise now (slow start: DesiredMinTx is at least 1 s
	// while not Up) and what the peer last advertised.
	DesiredMinTx, RequiredMinRx             time.Duration
	RemoteDesiredMinTx, RemoteRequiredMinRx time.Duration
	RemoteDetectMult                        uint8
	// TxInterval is the negotiated transmit interval (before jitter);
	// DetectionTime the negotiated detection time (zero before the first
	// packet from the peer).
	TxInterval, DetectionTime time.Duration
	// Polling is true while a Poll Sequence (RFC 5880 §6.5) is unanswered.
	Polling bool

	RxPackets, TxPackets, TxErrors uint64
	// UpCount counts transitions to Up, DownCount those from Up to Down
	// or AdminDown (failure-transitions); LastChange is the last
	// transition, LastDown the last of those.
	UpCount, DownCount   uint64
	LastChange, LastDown time.Time
}
