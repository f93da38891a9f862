package config

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/openconfig/ygot/ygot"

	"github.com/switchd/switchd/gnmi"
	"github.com/switchd/switchd/models/oc"
)

// DefaultStateDir is where switchd keeps its state when neither the config
// (/switchd/config/state-dir) nor `switchd run --state-dir` says otherwise.
const DefaultStateDir = "/var/lib/switchd"

// GNMI is the gNMI TCP listener the config asks for: the grpc-server of
// /system/grpc-servers that serves gNMI and the users of
// /system/aaa/authentication/users (gnmi.ListenFromConfig reads them).
type GNMI struct {
	// Served is true when a grpc-server entry serves gNMI; Listen is then
	// its listener, without the local socket (the daemon's flag).
	Served bool
	Listen gnmi.ListenOptions
	// Port is the served TCP port (0: none), which the failsafe rules keep
	// open.
	Port uint16
	// CertDir holds the files a certificate-id names: ID.crt and ID.key.
	CertDir string
	// Key identifies the config Listen was made from: equal Keys, the
	// same listener. Listen itself differs each time for a user with a
	// cleartext password (hashed with a new salt).
	Key string
}

// CertDir is where a grpc-server's certificate-id is looked up: the certs
// folder of the config's state dir, or of DefaultStateDir. `switchd check`
// and the daemon look in the same place whatever --state-dir says.
func CertDir(stateDir string) string {
	if stateDir == "" {
		stateDir = DefaultStateDir
	}
	return filepath.Join(stateDir, "certs")
}

// grpc translates /system/grpc-servers and /system/aaa/authentication:
// gnmi.ListenFromConfig's checks (one gNMI server, listen addresses,
// bcrypt hashes) plus the ones it leaves to its caller: port 0, a
// certificate-id naming files that are not there, a user given twice.
// The self-signed certificate's directory is the daemon's to set.
func (t *translator) grpc(sys *oc.System, in *Intent) {
	if sys == nil {
		return
	}
	g := &in.GNMI
	g.CertDir = CertDir(in.Workloads.StateDir)
	for _, name := range sortedKeys(sys.GrpcServer) {
		s := sys.GrpcServer[name]
		at := path{{name: "system"}, {name: "grpc-servers"}}.entry("grpc-server", []kv{{"name", name}}).child("config")
		if s.Port != nil && *s.Port == 0 {
			t.add(at.child("port"), "port 0 is not a port a server listens on (1-65535)")
		}
		if id := s.GetCertificateId(); id != "" {
			for _, f := range []string{id + ".crt", id + ".key"} {
				if strings.ContainsRune(id, '/') {
					t.add(at.child("certificate-id"), fmt.Sprintf("%q: a certificate id is a file name in %s, not a path", id, g.CertDir))
					break
				}
				if _, err := os.Stat(filepath.Join(g.CertDir, f)); err != nil {
					t.add(at.child("certificate-id"), fmt.Sprintf("unknown certificate %q: %v", id, err))
					break
				}
			}
		}
	}
	if a := sys.GetAaa().GetAuthentication(); a != nil {
		seen := map[string]string{}
		for _, key := range sortedKeys(a.User) {
			u := a.User[key]
			// The list key is the entry's username: two keys spelled alike
			// but for case would be two logins nobody can tell apart.
			l := strings.ToLower(key)
			if other, dup := seen[l]; dup {
				at := path{{name: "system"}, {name: "aaa"}, {name: "authentication"}, {name: "users"}}.entry("user", []kv{{"username", key}})
				t.add(at, fmt.Sprintf("duplicate user: %q is %q already", key, other))
			}
			seen[l] = key
			if u.Password != nil && u.PasswordHashed != nil {
				at := path{{name: "system"}, {name: "aaa"}, {name: "authentication"}, {name: "users"}}.entry("user", []kv{{"username", key}}).child("config")
				t.add(at.child("password"), "give password or password-hashed, not both")
			}
		}
	}
	g.Key = listenerKey(sys, g.CertDir)
	lo, ok, err := gnmi.ListenFromConfig(sys, gnmi.TLSOptions{}, g.CertDir)
	t.pathErrors(err)
	g.Served, g.Listen = ok, lo
	if ok {
		g.Port = gnmi.DefaultPort
		for _, s := range sys.GrpcServer {
			if served(s) && s.Port != nil {
				g.Port = *s.Port
			}
		}
	}
}

// served says whether a grpc-server entry serves gNMI, as
// gnmi.ListenFromConfig decides.
func served(s *oc.System_GrpcServer) bool {
	if s.Enable != nil && !*s.Enable {
		return false
	}
	svc := s.GetServices()
	if len(svc) == 0 {
		return true
	}
	for _, x := range svc {
		if x == oc.SystemGrpc_GRPC_SERVICE_GNMI {
			return true
		}
	}
	return false
}

// pathErrors files errors of the form "PATH: reason" (as the gnmi
// package words them) at their path.
func (t *translator) pathErrors(err error) {
	if err == nil {
		return
	}
	list := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		list = j.Unwrap()
	}
	for _, e := range list {
		msg := e.Error()
		if p, reason, ok := strings.Cut(msg, ": "); ok && strings.HasPrefix(p, "/") {
			t.list = append(t.list, Error{Path: p, Reason: reason})
			continue
		}
		t.list = append(t.list, Error{Path: "/system", Reason: msg})
	}
}

// listenerKey digests what the listener is made from: the grpc servers,
// the users and the certificate directory.
func listenerKey(sys *oc.System, certDir string) string {
	// ygot's JSON has its maps in key order.
	s, err := ygot.EmitJSON(&oc.System{GrpcServer: sys.GrpcServer, Aaa: sys.Aaa}, &ygot.EmitJSONConfig{Format: ygot.Internal})
	if err != nil {
		return "" // never equal to a digest: the listener restarts
	}
	sum := sha256.Sum256([]byte(certDir + "\x00" + s))
	return hex.EncodeToString(sum[:])
}
