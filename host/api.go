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
	"path/filepath"
	"strings"

	"github.com/switchd/switchd/host/endpointapi"
)

// The server side of the daemon's endpoint API; the wire types, the
// paths and the client are in package endpointapi.

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
	var req endpointapi.ContainerAdd
	if e := decode(r, &req); e != nil {
		writeError(w, e)
		return
	}
	if e := validateContainerEnv(&req); e != nil {
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

// validateContainerEnv rejects what a CNI runtime passes in environment
// variables with code 4, naming the variable; the Manager checks the rest.
func validateContainerEnv(req *endpointapi.ContainerAdd) *endpointapi.Error {
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
	return &endpointapi.Error{Code: endpointapi.CodeInvalidEnv, Status: http.StatusBadRequest, Msg: "invalid container request", Details: strings.Join(bad, "; ")}
}

func (h *apiHandler) adoptVM(w http.ResponseWriter, r *http.Request) {
	var req endpointapi.VMAdopt
	if e := decode(r, &req); e != nil {
		writeError(w, e)
		return
	}
	vr := VMRequest{Name: req.Name, Tap: req.Tap, IPv4: req.IPv4, IPv6: req.IPv6, Labels: req.Labels}
	if req.MAC != "" {
		mac, err := net.ParseMAC(req.MAC)
		if err != nil {
			writeError(w, &endpointapi.Error{Code: endpointapi.CodeInvalidConfig, Status: http.StatusBadRequest, Msg: "invalid VM request",
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
		writeError(w, &endpointapi.Error{Code: endpointapi.CodeUnknownContainer, Status: http.StatusNotFound, Msg: "unknown endpoint",
			Details: fmt.Sprintf("no endpoint has ID %q", id)})
		return
	}
	if err := h.m.Check(r.Context(), id); err != nil {
		e := errorFor(err)
		if !errors.Is(err, ErrUnknownEndpoint) && e.Code != endpointapi.CodeTryAgainLater {
			// Everything Check finds wrong is a difference between the
			// record and the kernel (a vanished netns included).
			e = &endpointapi.Error{Code: endpointapi.CodeEndpointDrift, Status: http.StatusConflict, Msg: "endpoint differs from its record", Details: err.Error()}
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
	l := endpointapi.EndpointList{Endpoints: h.m.List(), Blocks: h.m.Blocks()}
	if l.Blocks == nil {
		l.Blocks = []netip.Prefix{}
	}
	writeJSON(w, http.StatusOK, l)
}

// decode reads a JSON body strictly: an unknown field is code 2 naming the
// field, anything else malformed is code 6.
func decode(r *http.Request, v any) *endpointapi.Error {
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, endpointapi.MaxBody))
	if err != nil {
		return &endpointapi.Error{Code: endpointapi.CodeIOFailure, Status: http.StatusBadRequest, Msg: "read request body", Details: err.Error()}
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if strings.HasPrefix(err.Error(), "json: unknown field ") {
			return &endpointapi.Error{Code: endpointapi.CodeUnsupportedField, Status: http.StatusBadRequest, Msg: "unsupported field in request", Details: err.Error()}
		}
		return &endpointapi.Error{Code: endpointapi.CodeDecodingFailure, Status: http.StatusBadRequest, Msg: "decode request body", Details: err.Error()}
	}
	if dec.More() {
		return &endpointapi.Error{Code: endpointapi.CodeDecodingFailure, Status: http.StatusBadRequest, Msg: "decode request body", Details: "data after the JSON object"}
	}
	return nil
}

// errorFor maps the Manager's typed errors to CNI codes and HTTP statuses;
// Details is the whole error chain, which names the object.
func errorFor(err error) *endpointapi.Error {
	e := &endpointapi.Error{Details: err.Error()}
	switch {
	case errors.Is(err, ErrInvalidRequest):
		e.Code, e.Status, e.Msg = endpointapi.CodeInvalidConfig, http.StatusBadRequest, "invalid request"
	case errors.Is(err, ErrNetnsMissing):
		e.Code, e.Status, e.Msg = endpointapi.CodeUnknownContainer, http.StatusUnprocessableEntity, "network namespace does not exist"
	case errors.Is(err, ErrPoolExhausted):
		e.Code, e.Status, e.Msg = endpointapi.CodePoolExhausted, http.StatusInsufficientStorage, "address pool exhausted"
	case errors.Is(err, ErrAddressInUse):
		e.Code, e.Status, e.Msg = endpointapi.CodeAddressInUse, http.StatusConflict, "address in use"
	case errors.Is(err, ErrAddressNotAllowed):
		e.Code, e.Status, e.Msg = endpointapi.CodeAddressNotAllowed, http.StatusForbidden, "address not allowed"
	case errors.Is(err, ErrUnknownEndpoint):
		e.Code, e.Status, e.Msg = endpointapi.CodeUnknownContainer, http.StatusNotFound, "unknown endpoint"
	case errors.Is(err, ErrInterfaceMissing):
		e.Code, e.Status, e.Msg = endpointapi.CodeInterfaceMissing, http.StatusUnprocessableEntity, "interface missing"
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		e.Code, e.Status, e.Msg = endpointapi.CodeTryAgainLater, http.StatusServiceUnavailable, "request cancelled"
	default:
		e.Code, e.Status, e.Msg = endpointapi.CodeInternal, http.StatusInternalServerError, "internal error"
	}
	return e
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, e *endpointapi.Error) {
	if e.Status == 0 {
		e.Status = http.StatusInternalServerError
	}
	writeJSON(w, e.Status, e)
}
