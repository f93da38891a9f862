package endpointapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// DefaultSocket is where the daemon serves its local API.
const DefaultSocket = "/run/switchd/switchd.sock"

// MaxBody bounds a request or response body, on both sides.
const MaxBody = 1 << 20

// Client calls the endpoint API on the daemon's unix socket.
type Client struct {
	Socket string
	// Timeout bounds each call; 0 means 60 s (an ADD may queue behind
	// others for the same endpoint).
	Timeout time.Duration

	mu sync.Mutex // guards hc: a Client may be shared by goroutines
	hc *http.Client
}

func (c *Client) socket() string {
	if c.Socket == "" {
		return DefaultSocket
	}
	return c.Socket
}

func (c *Client) http() *http.Client {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.hc == nil {
		sock := c.socket()
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

// do sends one request. Every error it returns is an *Error: a daemon
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
			return &Error{Code: CodeInternal, Msg: "encode request", Details: err.Error()}
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://switchd"+path, body)
	if err != nil {
		return &Error{Code: CodeInternal, Msg: "build request", Details: err.Error()}
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return c.send(req, out)
}

// send does req and decodes the response into out or an *Error.
func (c *Client) send(req *http.Request, out any) error {
	method, path := req.Method, req.URL.Path
	resp, err := c.http().Do(req)
	if err != nil {
		return &Error{Code: CodeTryAgainLater, Msg: fmt.Sprintf("switchd daemon not reachable on %s (is it running?)", c.socket()), Details: err.Error()}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, MaxBody))
	if err != nil {
		return &Error{Code: CodeIOFailure, Status: resp.StatusCode, Msg: fmt.Sprintf("%s %s: read response", method, path), Details: err.Error()}
	}
	if resp.StatusCode >= 300 {
		e := &Error{}
		if json.Unmarshal(b, e) != nil || e.Code == 0 {
			e = &Error{Code: CodeInternal, Msg: fmt.Sprintf("%s %s: %s", method, path, resp.Status), Details: strings.TrimSpace(string(b))}
		}
		e.Status = resp.StatusCode
		return e
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return &Error{Code: CodeDecodingFailure, Status: resp.StatusCode, Msg: fmt.Sprintf("%s %s: decode response", method, path), Details: err.Error()}
		}
	}
	return nil
}
