// Package k8stest runs a real Kubernetes API server for tests: etcd and
// kube-apiserver, built by .ci/tools-k8s, on loopback ports of the
// caller's namespace (or, with Options, inside a network namespace of
// the test on an address of it, for daemons in other namespaces to
// reach), with a bearer token, serving certificates made here and no
// kubelet (pods stay unscheduled; a test sets status.podIP through the
// status subresource). Without the binaries a test skips.
//
// Every process is stopped by its PID and every directory removed in the
// test's cleanup, also when the test fails; the processes also die with
// the test process (Pdeathsig).
package k8stest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// Token is the bearer token of the server's one user, a member of
// system:masters (authorization is AlwaysAllow anyway).
const Token = "switchd-test-token"

// Binary finds name where .ci/tools-k8s installs it ($(go env GOPATH)/bin)
// or in PATH, or skips the test.
func Binary(t testing.TB, name string) string {
	t.Helper()
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		p := filepath.Join(strings.TrimSpace(string(out)), "bin", name)
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	t.Skipf("%s not found in $(go env GOPATH)/bin or PATH; build it with: bash .ci/tools-k8s (make tools)", name)
	return ""
}

// Netns is a network namespace to run the server in; sim/ns's *NS is one.
type Netns interface {
	// Command runs argv inside the namespace.
	Command(ctx context.Context, argv ...string) *exec.Cmd
	// Do runs f on a thread in the namespace; sockets it opens stay there.
	Do(f func() error) error
}

// Options say where the server runs.
type Options struct {
	// Netns runs etcd and kube-apiserver inside it, and the server's own
	// clients (Config, Client, the readiness poll) dial from inside it.
	// Nil: the caller's namespace.
	Netns Netns
	// Addr is the address the API server listens on, advertises and has
	// in its certificate; it must be on an interface of Netns. Invalid:
	// 127.0.0.1. etcd always listens on the namespace's loopback.
	Addr netip.Addr
}

// Server is a running etcd and kube-apiserver.
type Server struct {
	// URL is the API server's, https://ADDR:PORT.
	URL string
	// CAFile verifies the server's certificate; Kubeconfig is a kubeconfig
	// file naming URL, CAFile and Token.
	CAFile, Kubeconfig string

	t         testing.TB
	opts      Options
	dir       string
	etcdURL   string
	apiserver string // binary
	port      int
	api       *exec.Cmd
	apiExited chan struct{}
}

// Start starts etcd and kube-apiserver on the caller's loopback and
// returns once the API server is ready. The test's cleanup stops both.
func Start(t testing.TB) *Server {
	t.Helper()
	return StartWith(t, Options{})
}

// StartWith is Start where o says.
func StartWith(t testing.TB, o Options) *Server {
	t.Helper()
	if !o.Addr.IsValid() {
		o.Addr = netip.AddrFrom4([4]byte{127, 0, 0, 1})
	}
	etcdBin, apiBin := Binary(t, "etcd"), Binary(t, "kube-apiserver")
	dir := t.TempDir() // removed after the processes are gone (cleanups run LIFO)
	s := &Server{t: t, opts: o, dir: dir, apiserver: apiBin}
	if err := s.writeCredentials(); err != nil {
		t.Fatal(err)
	}
	ports := s.freePorts(3)
	s.etcdURL = "http://127.0.0.1:" + strconv.Itoa(ports[0])
	etcd := s.command(etcdBin,
		"--data-dir", filepath.Join(dir, "etcd"),
		"--listen-client-urls", s.etcdURL, "--advertise-client-urls", s.etcdURL,
		"--listen-peer-urls", "http://127.0.0.1:"+strconv.Itoa(ports[1]),
		"--initial-advertise-peer-urls", "http://127.0.0.1:"+strconv.Itoa(ports[1]),
		"--initial-cluster", "default=http://127.0.0.1:"+strconv.Itoa(ports[1]),
		"--unsafe-no-fsync", "--log-level", "error")
	etcdDone := s.spawn(etcd, "etcd.log")
	t.Cleanup(func() { stop(etcd, etcdDone) })
	s.port = ports[2]
	s.URL = "https://" + netip.AddrPortFrom(o.Addr, uint16(s.port)).String()
	if err := s.writeKubeconfig(); err != nil {
		t.Fatal(err)
	}
	s.StartAPIServer()
	t.Cleanup(s.StopAPIServer)
	return s
}

// StartAPIServer starts kube-apiserver (again, after StopAPIServer) on the
// same port and waits until it is ready.
func (s *Server) StartAPIServer() {
	s.t.Helper()
	if s.api != nil {
		s.t.Fatal("k8stest: kube-apiserver is running")
	}
	s.api = s.apiserverCommand(s.opts.Addr, s.port)
	s.apiExited = s.spawn(s.api, "kube-apiserver.log")
	if err := s.waitReady(s.URL, s.apiExited); err != nil {
		s.StopAPIServer()
		s.t.Fatalf("k8stest: %v\n%s", err, s.logTail("kube-apiserver.log"))
	}
}

// Replica starts a second kube-apiserver on the same etcd, on the
// loopback of Options.Netns, and returns a client config for it and the
// function that stops it (the test's cleanup does too). Through it a test
// changes the cluster while the server at URL is stopped, as through
// another API server of a control plane of several.
func (s *Server) Replica() (*rest.Config, func()) {
	s.t.Helper()
	lo := netip.AddrFrom4([4]byte{127, 0, 0, 1})
	port := s.freePorts(1)[0]
	cmd := s.apiserverCommand(lo, port)
	exited := s.spawn(cmd, "kube-apiserver-replica.log")
	stopReplica := func() { stop(cmd, exited) }
	s.t.Cleanup(stopReplica)
	url := "https://" + netip.AddrPortFrom(lo, uint16(port)).String()
	if err := s.waitReady(url, exited); err != nil {
		s.t.Fatalf("k8stest: replica: %v\n%s", err, s.logTail("kube-apiserver-replica.log"))
	}
	c := s.Config()
	c.Host = url
	return c, stopReplica
}

// apiserverCommand is kube-apiserver serving on addr and port.
func (s *Server) apiserverCommand(address netip.Addr, port int) *exec.Cmd {
	d, addr := s.dir, address.String()
	return s.command(s.apiserver,
		"--etcd-servers", s.etcdURL,
		"--bind-address", addr, "--advertise-address", addr,
		"--secure-port", strconv.Itoa(port),
		// With no kubelet there is no kubernetes Service endpoint to keep.
		"--endpoint-reconciler-type", "none",
		"--tls-cert-file", filepath.Join(d, "serving.crt"), "--tls-private-key-file", filepath.Join(d, "serving.key"),
		"--token-auth-file", filepath.Join(d, "tokens.csv"), "--authorization-mode", "AlwaysAllow",
		"--service-account-issuer", "https://kubernetes.default.svc",
		"--service-account-key-file", filepath.Join(d, "sa.key"),
		"--service-account-signing-key-file", filepath.Join(d, "sa.key"),
		"--service-cluster-ip-range", "10.96.0.0/16",
		"--disable-admission-plugins", "ServiceAccount",
		"--enable-priority-and-fairness=false", "--profiling=false")
}

// StopAPIServer kills kube-apiserver (etcd and its data stay), as a lost
// API server.
func (s *Server) StopAPIServer() {
	if s.api == nil {
		return
	}
	stop(s.api, s.apiExited)
	s.api = nil
}

// Config is a client config for the server, dialing from inside
// Options.Netns.
func (s *Server) Config() *rest.Config {
	c := &rest.Config{Host: s.URL, BearerToken: Token, TLSClientConfig: rest.TLSClientConfig{CAFile: s.CAFile}}
	if s.opts.Netns != nil {
		c.Dial = s.dial
	}
	return c
}

// dial connects from inside Options.Netns (or from here without one).
func (s *Server) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	if s.opts.Netns == nil {
		return d.DialContext(ctx, network, addr)
	}
	var c net.Conn
	err := s.opts.Netns.Do(func() error {
		var err error
		c, err = d.DialContext(ctx, network, addr)
		return err
	})
	return c, err
}

// command is a command running argv in Options.Netns.
func (s *Server) command(argv ...string) *exec.Cmd {
	if s.opts.Netns == nil {
		return exec.Command(argv[0], argv[1:]...)
	}
	return s.opts.Netns.Command(context.Background(), argv...)
}

// Client is a clientset for the server.
func (s *Server) Client() *kubernetes.Clientset {
	s.t.Helper()
	c, err := kubernetes.NewForConfig(s.Config())
	if err != nil {
		s.t.Fatal(err)
	}
	return c
}

// spawn starts cmd with its output in the log file name; the channel
// closes when it has exited.
func (s *Server) spawn(cmd *exec.Cmd, name string) chan struct{} {
	s.t.Helper()
	log, err := os.Create(filepath.Join(s.dir, name))
	if err != nil {
		s.t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		log.Close()
		s.t.Fatalf("k8stest: start %s: %v", cmd.Path, err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		log.Close()
		close(done)
	}()
	return done
}

// stop kills cmd by its PID and waits for it; again, it does nothing.
func stop(cmd *exec.Cmd, done chan struct{}) {
	select {
	case <-done:
	default:
		_ = cmd.Process.Kill()
		<-done
	}
}

// waitReady polls /readyz until it answers 200. The limit is generous:
// a loaded machine makes the first start slow, and a server that cannot
// start exits, which ends the wait at once.
func (s *Server) waitReady(url string, exited chan struct{}) error {
	pool := x509.NewCertPool()
	ca, err := os.ReadFile(s.CAFile)
	if err != nil {
		return err
	}
	pool.AppendCertsFromPEM(ca)
	c := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DialContext: s.dial, TLSClientConfig: &tls.Config{RootCAs: pool}}}
	defer c.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var last error
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url+"/readyz", nil)
		req.Header.Set("Authorization", "Bearer "+Token)
		resp, err := c.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("readyz: %s", resp.Status)
		}
		last = err
		select {
		case <-exited:
			return errors.New("kube-apiserver exited before it was ready")
		case <-ctx.Done():
			return fmt.Errorf("kube-apiserver not ready: %v", last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (s *Server) logTail(name string) string {
	b, _ := os.ReadFile(filepath.Join(s.dir, name))
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// freePorts returns n distinct loopback ports of Options.Netns that were
// free a moment ago.
func (s *Server) freePorts(n int) []int {
	s.t.Helper()
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var ports []int
	listen := func() error {
		for range n {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				return err
			}
			ls = append(ls, l)
			ports = append(ports, l.Addr().(*net.TCPAddr).Port)
		}
		return nil
	}
	var err error
	if s.opts.Netns == nil {
		err = listen()
	} else {
		err = s.opts.Netns.Do(listen)
	}
	if err != nil {
		s.t.Fatal(err)
	}
	return ports
}

// writeCredentials makes a CA, a serving certificate for 127.0.0.1 signed
// by it, the service-account signing key and the token file.
func (s *Server) writeCredentials() error {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "k8stest-ca"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "kube-apiserver"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IPAddresses: []net.IP{s.opts.Addr.AsSlice(), net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return err
	}
	saKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	keyPEM := func(k *ecdsa.PrivateKey) []byte {
		b, _ := x509.MarshalECPrivateKey(k)
		return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: b})
	}
	s.CAFile = filepath.Join(s.dir, "ca.crt")
	files := map[string][]byte{
		"ca.crt":      pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		"serving.crt": pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		"serving.key": keyPEM(key),
		"sa.key":      keyPEM(saKey),
		"tokens.csv":  []byte(Token + `,admin,admin,"system:masters"` + "\n"),
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(s.dir, name), b, 0o600); err != nil {
			return err
		}
	}
	return nil
}

func (s *Server) writeKubeconfig() error {
	s.Kubeconfig = filepath.Join(s.dir, "kubeconfig")
	kc := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: k8stest
  cluster:
    server: %s
    certificate-authority: %s
users:
- name: admin
  user:
    token: %s
contexts:
- name: k8stest
  context:
    cluster: k8stest
    user: admin
current-context: k8stest
`, s.URL, s.CAFile, Token)
	return os.WriteFile(s.Kubeconfig, []byte(kc), 0o600)
}
