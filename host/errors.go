package host

import "errors"

// Errors a caller (the CNI layer) maps to its own codes with errors.Is. Every
// error the Manager returns wraps at most one of them and names the object.
var (
	// ErrInvalidRequest: the request is malformed or conflicts with an
	// existing endpoint (CNI: invalid network config / try again later).
	ErrInvalidRequest = errors.New("invalid request")
	// ErrNetnsMissing: the workload's network namespace path does not exist
	// or is not a network namespace.
	ErrNetnsMissing = errors.New("network namespace missing")
	// ErrPoolExhausted: no pool of the family has a free address left.
	ErrPoolExhausted = errors.New("pool exhausted")
	// ErrAddressInUse: an explicitly requested address belongs to another
	// endpoint.
	ErrAddressInUse = errors.New("address in use")
	// ErrAddressNotAllowed: an explicitly requested address lies in no
	// pool and no static prefix, so this host may not announce it.
	ErrAddressNotAllowed = errors.New("address not allowed")
	// ErrUnknownEndpoint: no endpoint has this ID (Check only; Del of an
	// unknown ID succeeds).
	ErrUnknownEndpoint = errors.New("unknown endpoint")
	// ErrInterfaceMissing: the endpoint's host-side interface (a VM's tap)
	// does not exist.
	ErrInterfaceMissing = errors.New("interface missing")
)
