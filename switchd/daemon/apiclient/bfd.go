package apiclient

import "time"

// BFDStatus lists the BFD sessions (RFC 5880) the config asks for.
type BFDStatus struct {
	Sessions []BFDSessionStatus `json:"sessions"`
}

// BFDSessionStatus is one BFD session: its identity, state, negotiated
// timers, transition counts and what it protects.
type BFDSessionStatus struct {
	Peer      string `json:"peer"`
	Local     string `json:"local,omitempty"`
	Interface string `json:"interface,omitempty"`
	Multihop  bool   `json:"multihop,omitempty"`

	State       string `json:"state"`
	RemoteState string `json:"remote-state"`
	// Diagnostic is why the session last left Up (RFC 5880 §4.1).
	Diagnostic          string `json:"diagnostic,omitempty"`
	LocalDiscriminator  uint32 `json:"local-discriminator"`
	RemoteDiscriminator uint32 `json:"remote-discriminator,omitempty"`
	// TxIntervalMs and DetectionTimeMs are the negotiated values.
	TxIntervalMs    float64 `json:"tx-interval-ms"`
	DetectionTimeMs float64 `json:"detection-time-ms,omitempty"`

	UpTransitions      uint64     `json:"up-transitions"`
	FailureTransitions uint64     `json:"failure-transitions"`
	LastFailure        *time.Time `json:"last-failure,omitempty"`
	// Failed is true from a failure until the session is Up again: the
	// peer is out of the FIB's next hops and its neighbors are held down.
	Failed bool `json:"failed,omitempty"`

	// Neighbors are the BGP neighbors it protects; Static, whether static
	// routes' next hops use it.
	Neighbors []string `json:"neighbors,omitempty"`
	Static    bool     `json:"static,omitempty"`
}
