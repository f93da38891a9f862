package kubernetes

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRESTConfig reads kubeconfigs as cluster mode does: the current
// context's server, CA and token, paths relative to the file; a
// credential plugin or a missing context is an error naming it.
func TestRESTConfig(t *testing.T) {
	dir := t.TempDir()
	write := func(body string) string {
		p := filepath.Join(dir, "kubeconfig")
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	const base = `apiVersion: v1
kind: Config
current-context: c2
clusters:
- name: k1
  cluster: {server: "https://192.0.2.1:6443"}
- name: k2
  cluster: {server: "https://192.0.2.2:6443", certificate-authority: ca.crt}
contexts:
- {name: c1, context: {cluster: k1, user: u1}}
- {name: c2, context: {cluster: k2, user: u2}}
users:
- {name: u1, user: {token: one}}
`
	rc, err := RESTConfig(write(base + "- {name: u2, user: {tokenFile: tok, client-key-data: a2V5}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if rc.Host != "https://192.0.2.2:6443" || rc.CAFile != filepath.Join(dir, "ca.crt") ||
		rc.BearerTokenFile != filepath.Join(dir, "tok") || string(rc.KeyData) != "key" {
		t.Errorf("config %+v", rc)
	}
	for _, tc := range []struct{ body, want string }{
		{base + "- {name: u2, user: {exec: {command: aws}}}\n", "credential plugin"},
		{strings.Replace(base, "current-context: c2", "current-context: c3", 1), `"c3" is not among its contexts`},
	} {
		if _, err := RESTConfig(write(tc.body)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("error %v, want one containing %q", err, tc.want)
		}
	}
}
