// Package apiclient is the client side of switchd's local API: the JSON the
// daemon serves on its unix socket and a Get that reads it. The daemon
// serves these types and the simulator and CLI read them, so a reader needs
// this small package, not the daemon.
package apiclient

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"time"
)

// StatusPath is where the daemon serves Status.
const StatusPath = "/v1/status"

// Status is what GET /v1/status on the local API returns.
type Status struct {
	BGP BGPStatus `json:"bgp"`
	FIB FIBStatus `json:"fib"`
}

// BGPStatus lists the configured neighbors and their sessions.
type BGPStatus struct {
	ASN       uint32           `json:"as"`
	RouterID  string           `json:"router-id"`
	Neighbors []NeighborStatus `json:"neighbors"`
}

// NeighborStatus is one BGP session as the local API reports it.
type NeighborStatus struct {
	Address          string            `json:"address"`
	PeerAS           uint32            `json:"peer-as"`
	State            string            `json:"state"`
	EstablishedSince *time.Time        `json:"established-since,omitempty"`
	Received         map[string]uint64 `json:"received,omitempty"`
	Accepted         map[string]uint64 `json:"accepted,omitempty"`
	Sent             map[string]uint64 `json:"sent,omitempty"`
	LastError        string            `json:"last-error,omitempty"`
}

// FIBStatus summarises the routes switchd wants in the kernel.
type FIBStatus struct {
	Routes int  `json:"routes"`
	InSync bool `json:"in-sync"`
	// Stale counts routes adopted from a previous run and kept until BGP
	// has synced.
	Stale      int       `json:"stale,omitempty"`
	LastResync time.Time `json:"last-resync"`
	LastError  string    `json:"last-error,omitempty"`
}

// GetStatus asks the daemon listening on the unix socket for its status.
func GetStatus(ctx context.Context, socket string) (*Status, error) {
	c := &http.Client{
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		}},
		Timeout: 5 * time.Second,
	}
	defer c.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://switchd"+StatusPath, nil)
	if err != nil {
		return nil, fmt.Errorf("switchd status on %s: %w", socket, err)
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("switchd status on %s: %w", socket, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("switchd status on %s: %s", socket, resp.Status)
	}
	var st Status
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return nil, fmt.Errorf("switchd status on %s: decode: %w", socket, err)
	}
	return &st, nil
}
