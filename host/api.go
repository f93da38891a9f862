package host

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// The daemon's endpoint API, served on its local unix socket under
// /v1/endpoints (the daemon mounts NewAPIHandler), used by the CNI plugin
// (host/cni) and the sim:
//
//	POST   /v1/endpoints/containers  ContainerAdd → 200 Result     (CNI ADD)
//	POST   /v1/endpoints/vms         VMAdopt      → 200 Result
//	GET    /v1/endpoints/{id...}     → 200 Result, 404 unknown, 409 drift (CNI CHECK)
//	DELETE /v1/endpoints/{id...}     → 204, also for an unknown ID (CNI DEL)
//	GET    /v1/endpoints             → 200 EndpointList
//
// An endpoint ID is "<container ID>/<ifname>" or "vm:<name>"; clients
// path-escape each '/'-separated segment. Every error is an APIError body
// whose code is a CNI error code, so the plugin passes it on unchanged.

// CNI error codes the API uses (CNI spec 1.1, "Error"; 100+ are ours).
const (
	CodeUnsupportedField  = 2   // unknown field in the request body
	CodeUnknownContainer  = 3   // unknown endpoint, or its netns does not exist
	CodeInvalidEnv        = 4   // container ID, ifname or netns (CNI_* variables) invalid
	CodeIOFailure         = 5   // reading the request failed
	CodeDecodingFailure   = 6   // request body is not JSON of the right shape
	CodeInvalidConfig     = 7   // request rejected (bad address, conflict with the existing endpoint)
	CodeTryAgainLater     = 11  // daemon not reachable (client side) or shutting down
	CodePoolExhausted     = 100 // no free address in the pools of a family
	CodeAddressInUse      = 101 // a requested fixed address belongs to another endpoint
	CodeInterfaceMissing  = 102 // a VM's tap does not exist
	CodeEndpointDrift     = 103 // CHECK: kernel state differs from the record
	CodeAddressNotAllowed = 104 // a requested fixed address is in no pool and no static prefix
	CodeInternal          = 999 // anything else (kernel or disk failure); as libcni's ErrInternal
)

// APIError is the body of every error response, shaped as a CNI error.
type APIError struct {
	Code    uint   `json:"code"`
	Msg     string `json:"msg"`
	Details string `json:"details,omitempty"`
	// Status is the HTTP status it came with (not sent).
	Status int `json:"-"`
}

func (e *APIError) Error() string {
	if e.Details == "" {
		return e.Msg
	}
	return e.Msg + ": " + e.Details
}

// ContainerAdd is the body of POST /v1/endpoints/containers.
type ContainerAdd struct {
	ContainerID string `json:"container_id"`
	IfName      string `json:"ifname,omitempty"` // "" means eth0
	Netns       string `json:"netns"`            // path, as CNI_NETNS
	// Fixed addresses; unset families are allocated from the pools.
	IPv4   netip.Addr        `json:"ipv4,omitzero"`
	IPv6   netip.Addr        `json:"ipv6,omitzero"`
	Labels map[string]string `json:"labels,omitempty"`
}

// VMAdopt is the body of POST /v1/endpoints/vms.
type VMAdopt struct {
	Name   string            `json:"name"`
	Tap    string            `json:"tap"`
	MAC    string            `json:"mac,omitempty"` // the guest NIC's
	IPv4   netip.Addr        `json:"ipv4,omitzero"`
	IPv6   netip.Addr        `json:"ipv6,omitzero"`
	Labels map[string]string `json:"labels,omitempty"`
}

// EndpointList is the body of GET /v1/endpoints.
type EndpointList struct {
	Endpoints []Endpoint     `json:"endpoints"`
	Blocks    []netip.Prefix `json:"blocks"`
}

const maxBody = 1 << 20

type apiHandler struct {
	m   *Manager
	log *slog.Logger
}

// NewAPIHandler serves the endpoint API of m. Requests run concurrently;
// the Manager serializes those for one endpoint.
func NewAPIHandler(m *Manager, log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.Default()
	}
	h := &apiHandler{m: m, log: log}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/endpoints/containers", h.addContainer)
	mux.HandleFunc("POST /v1/endpoints/vms", h.adoptVM)
	mux.HandleFunc("GET /v1/endpoints", h.list)
	mux.HandleFunc("GET /v1/endpoints/{id...}", h.check)
	mux.HandleFunc("DELETE /v1/endpoints/{id...}", h.del)
	return mux
}

func (h *apiHandler) addContainer(w http.ResponseWriter, r *http.Request) {
	var req ContainerAdd
	if e := decode(r, &req); e != nil {
		writeError(w, e)
		return
	}
	if e := req.validateEnv(); e != nil {
		writeError(w, e)
		return
	}
	res, err := h.m.AddContainer(r.Context(), ContainerRequest{
		ContainerID: req.ContainerID, IfName: req.IfName, Netns: req.Netns,
		IPv4: req.IPv4, IPv6: req.IPv6, Labels: req.Labels,
	})
	if err != nil {
		h.log.Warn("add container endpoint", "container", req.ContainerID, "ifname", req.IfName, "netns", req.Netns, "err", err)
		writeError(w, errorFor(err))
		return
	}
	h.log.Debug("added container endpoint", "endpoint", res.Endpoint.ID, "ipv4", res.Endpoint.IPv4, "ipv6", res.Endpoint.IPv6)
	writeJSON(w, http.StatusOK, res)
}

// validateEnv rejects what a CNI runtime passes in environment variables
// with code 4, naming the variable; the Manager checks the rest.
func (req *ContainerAdd) validateEnv() *APIError {
	var bad []string
	if len(req.ContainerID) > 200 || !containerIDRe.MatchString(req.ContainerID) {
		bad = append(bad, fmt.Sprintf("container ID (CNI_CONTAINERID) %q: must match %s", req.ContainerID, containerIDRe))
	}
	if req.IfName != "" {
		if err := validIfName(req.IfName); err != nil {
			bad = append(bad, "CNI_IFNAME: "+err.Error())
		}
	}
	if req.Netns == "" || !filepath.IsAbs(req.Netns) {
		bad = append(bad, fmt.Sprintf("netns (CNI_NETNS) %q: must be an absolute path", req.Netns))
	}
	if len(bad) == 0 {
		return nil
	}
	return &APIError{Code: CodeInvalidEnv, Status: http.StatusBadRequest, Msg: "invalid container request", Details: strings.Join(bad, "; ")}
}

func (h *apiHandler) adoptVM(w http.ResponseWriter, r *http.Request) {
	var req VMAdopt
	if e := decode(r, &req); e != nil {
		writeError(w, e)
		return
	}
	vr := VMRequest{Name: req.Name, Tap: req.Tap, IPv4: req.IPv4, IPv6: req.IPv6, Labels: req.Labels}
	if req.MAC != "" {
		mac, err := net.ParseMAC(req.MAC)
		if err != nil {
			writeError(w, &APIError{Code: CodeInvalidConfig, Status: http.StatusBadRequest, Msg: "invalid VM request",
				Details: fmt.Sprintf("VM %q: mac %q: %v", req.Name, req.MAC, err)})
			return
		}
		vr.MAC = mac
	}
	res, err := h.m.AdoptVM(r.Context(), vr)
	if err != nil {
		h.log.Warn("adopt VM tap", "vm", req.Name, "tap", req.Tap, "err", err)
		writeError(w, errorFor(err))
		return
	}
	h.log.Debug("adopted VM tap", "endpoint", res.Endpoint.ID, "tap", req.Tap)
	writeJSON(w, http.StatusOK, res)
}

func (h *apiHandler) check(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	ep, ok := h.m.Get(id)
	if !ok {
		writeError(w, &APIError{Code: CodeUnknownContainer, Status: http.StatusNotFound, Msg: "unknown endpoint",
			Details: fmt.Sprintf("no endpoint has ID %q", id)})
		return
	}
	if err := h.m.Check(r.Context(), id); err != nil {
		e := errorFor(err)
		if !errors.Is(err, ErrUnknownEndpoint) && e.Code != CodeTryAgainLater {
			// Everything Check finds wrong is a difference between the
			// record and the kernel (a vanished netns included).
			e = &APIError{Code: CodeEndpointDrift, Status: http.StatusConflict, Msg: "endpoint differs from its record", Details: err.Error()}
		}
		writeError(w, e)
		return
	}
	writeJSON(w, http.StatusOK, h.m.result(ep))
}

func (h *apiHandler) del(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if err := h.m.Del(r.Context(), id); err != nil {
		h.log.Warn("delete endpoint", "endpoint", id, "err", err)
		writeError(w, errorFor(err))
		return
	}
	h.log.Debug("deleted endpoint", "endpoint", id)
	w.WriteHeader(http.StatusNoContent)
}

func (h *apiHandler) list(w http.ResponseWriter, r *http.Request) {
	l := EndpointList{Endpoints: h.m.List(), Blocks: h.m.Blocks()}
	if l.Blocks == nil {
		l.Blocks = []netip.Prefix{}
	}
	writeJSON(w, http.StatusOK, l)
}

// decode reads a JSON body strictly: an unknown field is code 2 naming the
// field, anything else malformed is code 6.
func decode(r *http.Request, v any) *APIError {
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, maxBody))
	if err != nil {
		return &APIError{Code: CodeIOFailure, Status: http.StatusBadRequest, Msg: "read request body", Details: err.Error()}
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if strings.HasPrefix(err.Error(), "json: unknown field ") {
			return &APIError{Code: CodeUnsupportedField, Status: http.StatusBadRequest, Msg: "unsupported field in request", Details: err.Error()}
		}
		return &APIError{Code: CodeDecodingFailure, Status: http.StatusBadRequest, Msg: "decode request body", Details: err.Error()}
	}
	if dec.More() {
		return &APIError{Code: CodeDecodingFailure, Status: http.StatusBadRequest, Msg: "decode request body", Details: "data after the JSON object"}
	}
	return nil
}

// errorFor maps the Manager's typed errors to CNI codes and HTTP statuses;
// Details is the whole error chain, which names the object.
func errorFor(err error) *APIError {
	e := &APIError{Details: err.Error()}
	switch {
	case errors.Is(err, ErrInvalidRequest):
		e.Code, e.Status, e.Msg = CodeInvalidConfig, http.StatusBadRequest, "invalid request"
	case errors.Is(err, ErrNetnsMissing):
		e.Code, e.Status, e.Msg = CodeUnknownContainer, http.StatusUnprocessableEntity, "network namespace does not exist"
	case errors.Is(err, ErrPoolExhausted):
		e.Code, e.Status, e.Msg = CodePoolExhausted, http.StatusInsufficientStorage, "address pool exhausted"
	case errors.Is(err, ErrAddressInUse):
		e.Code, e.Status, e.Msg = CodeAddressInUse, http.StatusConflict, "address in use"
	case errors.Is(err, ErrAddressNotAllowed):
		e.Code, e.Status, e.Msg = CodeAddressNotAllowed, http.StatusForbidden, "address not allowed"
	case errors.Is(err, ErrUnknownEndpoint):
		e.Code, e.Status, e.Msg = CodeUnknownContainer, http.StatusNotFound, "unknown endpoint"
	case errors.Is(err, ErrInterfaceMissing):
		e.Code, e.Status, e.Msg = CodeInterfaceMissing, http.StatusUnprocessableEntity, "interface missing"
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		e.Code, e.Status, e.Msg = CodeTryAgainLater, http.StatusServiceUnavailable, "request cancelled"
	default:
		e.Code, e.Status, e.Msg = CodeInternal, http.StatusInternalServerError, "internal error"
	}
	return e
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, e *APIError) {
	if e.Status == 0 {
		e.Status = http.StatusInternalServerError
	}
	writeJSON(w, e.Status, e)
}

// Client calls the endpoint API on the daemon's unix socket.
type Client struct {
	Socket string
	// Timeout bounds each call; 0 means 60 s (an ADD may queue behind
	// others for the same endpoint).
	Timeout time.Duration

	mu sync.Mutex // guards hc: a Client may be shared by goroutines
	hc *http.Client
}

// DefaultSocket is where the daemon serves its local API.
const DefaultSocket = "/run/switchd/switchd.sock"

func (c *Client) http() *http.Client {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.hc == nil {
		sock := c.Socket
		if sock == "" {
			sock = DefaultSocket
		}
		var d net.Dialer
		c.hc = &http.Client{Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				return d.DialContext(ctx, "unix", sock)
			},
			MaxIdleConnsPerHost: 64,
		}}
	}
	return c.hc
}

// AddContainer creates (or returns the existing) container endpoint.
func (c *Client) AddContainer(ctx context.Context, req ContainerAdd) (Result, error) {
	var res Result
	err := c.do(ctx, http.MethodPost, "/v1/endpoints/containers", req, &res)
	return res, err
}

// AdoptVM adopts a VM's tap.
func (c *Client) AdoptVM(ctx context.Context, req VMAdopt) (Result, error) {
	var res Result
	err := c.do(ctx, http.MethodPost, "/v1/endpoints/vms", req, &res)
	return res, err
}

// Del removes an endpoint; an unknown ID is success.
func (c *Client) Del(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, endpointPath(id), nil, nil)
}

// Check verifies an endpoint against the kernel and returns it.
func (c *Client) Check(ctx context.Context, id string) (Result, error) {
	var res Result
	err := c.do(ctx, http.MethodGet, endpointPath(id), nil, &res)
	return res, err
}

// List returns every endpoint and the owned blocks.
func (c *Client) List(ctx context.Context) (EndpointList, error) {
	var l EndpointList
	err := c.do(ctx, http.MethodGet, "/v1/endpoints", nil, &l)
	return l, err
}

func endpointPath(id string) string {
	segs := strings.Split(id, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return "/v1/endpoints/" + strings.Join(segs, "/")
}

// do sends one request. Every error it returns is an *APIError: a daemon
// that cannot be reached is code 11 (try again later) naming the socket.
func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	timeout := c.Timeout
	if timeout == 0 {
		timeout = 60 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return &APIError{Code: CodeInternal, Msg: "encode request", Details: err.Error()}
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://switchd"+path, body)
	if err != nil {
		return &APIError{Code: CodeInternal, Msg: "build request", Details: err.Error()}
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return c.send(req, out)
}

// send does req and decodes the response into out or an *APIError.
func (c *Client) send(req *http.Request, out any) error {
	method, path := req.Method, req.URL.Path
	resp, err := c.http().Do(req)
	if err != nil {
		sock := c.Socket
		if sock == "" {
			sock = DefaultSocket
		}
		return &APIError{Code: CodeTryAgainLater, Msg: fmt.Sprintf("switchd daemon not reachable on %s (is it running?)", sock), Details: err.Error()}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return &APIError{Code: CodeIOFailure, Status: resp.StatusCode, Msg: fmt.Sprintf("%s %s: read response", method, path), Details: err.Error()}
	}
	if resp.StatusCode >= 300 {
		e := &APIError{}
		if json.Unmarshal(b, e) != nil || e.Code == 0 {
			e = &APIError{Code: CodeInternal, Msg: fmt.Sprintf("%s %s: %s", method, path, resp.Status), Details: strings.TrimSpace(string(b))}
		}
		e.Status = resp.StatusCode
		return e
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return &APIError{Code: CodeDecodingFailure, Status: resp.StatusCode, Msg: fmt.Sprintf("%s %s: decode response", method, path), Details: err.Error()}
		}
	}
	return nil
}
