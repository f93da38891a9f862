package gnmi

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
)

// DefaultPort is gNMI's registered port.
const DefaultPort = 9339

// ListenOptions say where and how the server is reachable.
type ListenOptions struct {
	// Addresses are host:port pairs for the TCP listener ("" host: all
	// addresses); none means no TCP listener.
	Addresses []string
	// TLS is on unless Plaintext is set (only for tests and labs: then
	// passwords would travel in the clear).
	TLS       TLSOptions
	Plaintext bool
	// Users are the accounts the TCP listener accepts (by password, or by
	// a client certificate whose CN is the user's name).
	Users []User
	// LocalSocket is a unix socket path served without TLS and without
	// authentication, every RPC as root (admin); it is made mode 0600,
	// so only root reaches it. Empty: none.
	LocalSocket string
}

// Listener is a running server: a TCP listener and a local socket.
type Listener struct {
	// Addrs are the TCP listeners' addresses (with the port the kernel
	// chose for port 0).
	Addrs []net.Addr
	// Fingerprint is the SHA-256 of the TLS certificate served, "" in
	// plaintext.
	Fingerprint string

	servers []*grpc.Server
	wg      sync.WaitGroup
}

// Listen starts serving s as o says and returns once the sockets are
// bound; Close stops it.
func (s *Server) Listen(o ListenOptions) (*Listener, error) {
	l := &Listener{}
	if len(o.Addresses) > 0 {
		auth, err := newAuthenticator(o.Users)
		if err != nil {
			return nil, err
		}
		opts := []grpc.ServerOption{grpc.ChainUnaryInterceptor(auth.unary), grpc.ChainStreamInterceptor(auth.stream)}
		if !o.Plaintext {
			cfg, fp, err := serverTLS(o.TLS)
			if err != nil {
				return nil, err
			}
			l.Fingerprint = fp
			opts = append(opts, grpc.Creds(credentials.NewTLS(cfg)))
			s.log.Info("gnmi TLS certificate", "sha256", fp, "client-ca", o.TLS.ClientCAFile != "")
		}
		gs := grpc.NewServer(opts...)
		gpb.RegisterGNMIServer(gs, s)
		var lis []net.Listener
		for _, a := range o.Addresses {
			nl, err := net.Listen("tcp", a)
			if err != nil {
				for _, x := range lis {
					x.Close()
				}
				return nil, fmt.Errorf("gnmi listen %s: %w", a, err)
			}
			lis = append(lis, nl)
			l.Addrs = append(l.Addrs, nl.Addr())
		}
		l.serve(gs, lis...)
	}
	if o.LocalSocket != "" {
		nl, err := listenLocal(o.LocalSocket)
		if err != nil {
			l.Close()
			return nil, err
		}
		gs := grpc.NewServer(
			grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
				return h(localRoot(ctx), req)
			}),
			grpc.ChainStreamInterceptor(func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
				return h(srv, &ctxStream{ServerStream: ss, ctx: localRoot(ss.Context())})
			}))
		gpb.RegisterGNMIServer(gs, s)
		l.serve(gs, nl)
		s.log.Info("gnmi local socket", "path", o.LocalSocket)
	}
	for _, a := range l.Addrs {
		s.log.Info("gnmi listening", "addr", a.String(), "tls", !o.Plaintext)
	}
	return l, nil
}

func (l *Listener) serve(gs *grpc.Server, lis ...net.Listener) {
	l.servers = append(l.servers, gs)
	for _, nl := range lis {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			gs.Serve(nl)
		}()
	}
}

// Close stops the listeners and ends running RPCs.
func (l *Listener) Close() {
	for _, gs := range l.servers {
		gs.Stop()
	}
	l.wg.Wait()
}

// listenLocal binds a unix socket only root can connect to: mode 0600
// (connecting needs write permission; the usual umask 022 already
// withholds it from others between bind and chmod), in a directory made
// 0700 if it did not exist. A stale socket file is replaced.
func listenLocal(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("gnmi local socket %s: exists and is not a socket", path)
		}
		if c, err := net.Dial("unix", path); err == nil {
			c.Close()
			return nil, fmt.Errorf("gnmi local socket %s: in use", path)
		}
		os.Remove(path)
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	nl, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("gnmi local socket %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		nl.Close()
		return nil, err
	}
	return nl, nil
}
