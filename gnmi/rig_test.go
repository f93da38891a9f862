package gnmi

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
	"golang.org/x/crypto/bcrypt"

	"github.com/switchd/switchd/models/oc"
)

// clientBin finds a real gNMI client installed by .ci/tools-gnmi (make
// tools), or skips the test saying how to install it.
func clientBin(t testing.TB, name string) string {
	t.Helper()
	gopath, _ := exec.Command("go", "env", "GOPATH").Output()
	p := filepath.Join(strings.TrimSpace(string(gopath)), "bin", name) // where .ci/tools-gnmi puts it
	if _, err := os.Stat(p); err == nil {
		return p
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	t.Skipf("%s not found in $(go env GOPATH)/bin or PATH; install it with: bash .ci/tools-gnmi (make tools)", name)
	return ""
}

// Users of the rig's TCP listener.
const (
	adminPW  = "admin-secret"
	viewerPW = "viewer-secret"
)

// rig is a Server on 127.0.0.1 with a random port, TLS with a
// self-signed certificate made in a temporary state dir, users admin,
// viewer (read-only) and alice (client certificate only, read-only),
// and with mtls a client CA; plus a second CA that the server does not
// trust, each with a client certificate for alice.
type rig struct {
	s        *Server
	set      *fakeSet
	addr     string
	dir      string
	certFile string // the server's certificate, also the CA to verify it
	// Client certificates and keys for CN alice: one signed by the
	// trusted CA, one by a stranger CA.
	aliceCert, aliceKey, strangerCert, strangerKey string
}

// fakeSet records who asked for what.
type fakeSet struct {
	mu    sync.Mutex
	users []string
}

func (f *fakeSet) Set(_ context.Context, user string, req *gpb.SetRequest) (*gpb.SetResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.users = append(f.users, user)
	return &gpb.SetResponse{Timestamp: time.Now().UnixNano()}, nil
}

func (f *fakeSet) callers() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.users...)
}

func newRig(t *testing.T, mtls bool, o Options) *rig {
	t.Helper()
	dir := t.TempDir()
	r := &rig{dir: dir, set: &fakeSet{}}
	if o.Schema == nil {
		o.Schema = oc.LazySchemaTree()["Device"]
	}
	o.Set = r.set
	s, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	r.s = s
	hash := func(pw string) string {
		h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		return string(h)
	}
	lo := ListenOptions{
		Addresses: []string{"127.0.0.1:0"},
		TLS:       TLSOptions{StateDir: filepath.Join(dir, "state")},
		Users: []User{
			{Name: "admin", PasswordHash: hash(adminPW), Role: RoleAdmin},
			{Name: "viewer", PasswordHash: hash(viewerPW), Role: RoleReadOnly},
			{Name: "alice", Role: RoleReadOnly},
		},
	}
	caFile, caCert, caKey := writeCA(t, dir, "ca")
	_, strangerCA, strangerKey := writeCA(t, dir, "stranger")
	r.aliceCert, r.aliceKey = writeClientCert(t, dir, "alice", caCert, caKey)
	r.strangerCert, r.strangerKey = writeClientCert(t, dir, "alice-stranger", strangerCA, strangerKey)
	if mtls {
		lo.TLS.ClientCAFile = caFile
	}
	l, err := s.Listen(lo)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	r.addr = l.Addrs[0].String()
	r.certFile = filepath.Join(dir, "state", SelfSignedCert)
	return r
}

// writeCA makes a CA and writes its certificate to dir/name.pem.
func writeCA(t *testing.T, dir, name string) (string, *x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name + " CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	f := filepath.Join(dir, name+".pem")
	writePEM(t, f, "CERTIFICATE", der)
	return f, cert, key
}

// writeClientCert makes a client certificate for CN alice signed by ca.
func writeClientCert(t *testing.T, dir, name string, ca *x509.Certificate, caKey *ecdsa.PrivateKey) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "alice"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, name+"-cert.pem"), filepath.Join(dir, name+"-key.pem")
	writePEM(t, certFile, "CERTIFICATE", der)
	writePEM(t, keyFile, "EC PRIVATE KEY", kder)
	return certFile, keyFile
}

func writePEM(t *testing.T, name, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(name, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// gnmic runs gnmic against the rig with args after the connection flags
// and returns its combined output.
func (r *rig) gnmic(t *testing.T, conn []string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	all := append([]string{"-a", r.addr, "--timeout", "20s", "--config", filepath.Join(r.dir, "none.yaml")}, conn...)
	out, err := exec.CommandContext(ctx, clientBin(t, "gnmic"), append(all, args...)...).CombinedOutput()
	return string(out), err
}

// with is gnmic's connection flags for a user, verifying the server
// against its certificate.
func (r *rig) with(user, pw string) []string {
	return []string{"--tls-ca", r.certFile, "-u", user, "-p", pw}
}

// stream is a client process whose output is read as it comes.
type stream struct {
	t      *testing.T
	cmd    *exec.Cmd
	mu     sync.Mutex
	out    strings.Builder
	done   bool
	kick   chan struct{}
	cancel context.CancelFunc
}

// startGnmic starts a long-running gnmic (a subscription); the test's
// cleanup ends it (by its own process, not by name).
func (r *rig) startGnmic(t *testing.T, conn []string, args ...string) *stream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	all := append([]string{"-a", r.addr, "--timeout", "20s", "--config", filepath.Join(r.dir, "none.yaml")}, conn...)
	cmd := exec.CommandContext(ctx, clientBin(t, "gnmic"), append(all, args...)...)
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	pw.Close()
	s := &stream{t: t, cmd: cmd, kick: make(chan struct{}, 1), cancel: cancel}
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			s.mu.Lock()
			fmt.Fprintln(&s.out, sc.Text())
			s.mu.Unlock()
			s.poke()
		}
		s.mu.Lock()
		s.done = true
		s.mu.Unlock()
		s.poke()
	}()
	t.Cleanup(func() {
		cancel()
		cmd.Wait()
		pr.Close()
	})
	return s
}

func (s *stream) poke() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// waitFor waits until cond holds for the output so far. The deadline
// only keeps a broken test from hanging.
func (s *stream) waitFor(what string, cond func(out string) bool) string {
	s.t.Helper()
	deadline := time.After(60 * time.Second)
	for {
		s.mu.Lock()
		out, done := s.out.String(), s.done
		s.mu.Unlock()
		if cond(out) {
			return out
		}
		if done {
			s.t.Fatalf("waiting for %s: client exited; output:\n%s", what, out)
		}
		select {
		case <-s.kick:
		case <-deadline:
			s.t.Fatalf("waiting for %s; output:\n%s", what, out)
		}
	}
}
