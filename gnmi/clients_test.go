package gnmi

import (
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Tests with the real clients, gnmic and gnmi_cli, against a Server on
// loopback with TLS on. They skip only when a client is not installed
// (make tools installs both).

// TestClientsCapabilitiesAndGet: gnmic lists the generated schema's
// models with their versions; Get returns a published leaf in JSON_IETF.
func TestClientsCapabilitiesAndGet(t *testing.T) {
	r := newRig(t, false, Options{})
	publish(t, r.s, time.Now().UnixNano(), eth0Oper, str("UP"))
	publish(t, r.s, time.Now().UnixNano(), eth1Oper, str("DOWN"))

	out, err := r.gnmic(t, r.with("viewer", viewerPW), "capabilities")
	if err != nil {
		t.Fatalf("gnmic capabilities: %v\n%s", err, out)
	}
	for _, want := range []string{"openconfig-interfaces, OpenConfig working group, 3.8.1", "openconfig-system-grpc", "JSON_IETF", "PROTO"} {
		if !strings.Contains(out, want) {
			t.Errorf("gnmic capabilities lacks %q:\n%s", want, out)
		}
	}

	out, err = r.gnmic(t, r.with("viewer", viewerPW), "get", "-e", "json_ietf", "--path", "/interfaces/interface[name=*]/state/oper-status")
	if err != nil {
		t.Fatalf("gnmic get: %v\n%s", err, out)
	}
	for _, want := range []string{`"interfaces/interface[name=eth0]/state/oper-status"`, `"UP"`, `"interfaces/interface[name=eth1]/state/oper-status"`, `"DOWN"`} {
		if !strings.Contains(out, want) {
			t.Errorf("gnmic get lacks %s:\n%s", want, out)
		}
	}

	publish(t, r.s, time.Now().UnixNano(), eth0MTU, uint(9000))
	out, err = r.gnmic(t, r.with("viewer", viewerPW), "get", "-e", "json_ietf", "--type", "config", "--path", "/interfaces/interface[name=eth0]")
	if err != nil || !strings.Contains(out, `"mtu": 9000`) || strings.Contains(out, "oper-status") {
		t.Errorf("gnmic get --type config: %v, want config/mtu and no oper-status:\n%s", err, out)
	}
}

// TestClientsGnmiCLI: gnmi_cli, authenticated by a client certificate
// whose CN (alice) is a user, lists the models and gets a leaf in
// JSON_IETF over mTLS; in plaintext it is refused.
func TestClientsGnmiCLI(t *testing.T) {
	rm := newRig(t, true, Options{})
	publish(t, rm.s, time.Now().UnixNano(), eth0Oper, str("UP"))
	cli := func(cert, key string, args ...string) (string, error) {
		all := append([]string{"-logtostderr", "-a", rm.addr, "-ca_crt", rm.certFile, "-client_crt", cert, "-client_key", key, "-timeout", "20s"}, args...)
		b, err := exec.Command(clientBin(t, "gnmi_cli"), all...).CombinedOutput()
		return string(b), err
	}
	out, err := cli(rm.aliceCert, rm.aliceKey, "-capabilities")
	if err != nil || !strings.Contains(out, `name: "openconfig-network-instance"`) {
		t.Errorf("gnmi_cli -capabilities with alice's certificate: %v\n%s", err, out)
	}
	out, err = cli(rm.aliceCert, rm.aliceKey, "-get", "-proto",
		`path: <elem: <name: "interfaces"> elem: <name: "interface" key: <key: "name" value: "eth0">> elem: <name: "state"> elem: <name: "oper-status">> encoding: JSON_IETF`)
	if err != nil || !strings.Contains(out, `json_ietf_val: "\"UP\""`) {
		t.Errorf("gnmi_cli -get with alice's certificate: %v\n%s", err, out)
	}
	if out, err := exec.Command(clientBin(t, "gnmi_cli"), "-logtostderr", "-a", rm.addr, "-insecure", "-timeout", "5s", "-capabilities").CombinedOutput(); err == nil {
		t.Errorf("gnmi_cli -insecure (plaintext) got an answer from the TLS listener:\n%s", out)
	}
}

// TestClientsSecurity: TLS is on, so a plaintext client is refused; with
// mTLS a certificate from a CA the server does not trust is refused; a
// wrong password is refused; a read-only user gets PermissionDenied on
// Set and can Subscribe, while an admin's Set reaches the SetHandler
// under the admin's name.
func TestClientsSecurity(t *testing.T) {
	r := newRig(t, false, Options{})
	publish(t, r.s, time.Now().UnixNano(), eth0Oper, str("UP"))

	if out, err := r.gnmic(t, []string{"--insecure", "-u", "viewer", "-p", viewerPW, "--timeout", "5s"}, "capabilities"); err == nil {
		t.Errorf("gnmic --insecure (plaintext) got an answer from the TLS listener:\n%s", out)
	}
	out, err := r.gnmic(t, r.with("viewer", "wrong"), "capabilities")
	if err == nil || !strings.Contains(out, "Unauthenticated") {
		t.Errorf("wrong password: %v, want Unauthenticated:\n%s", err, out)
	}
	out, err = r.gnmic(t, []string{"--tls-ca", r.certFile, "-u", "nobody", "-p", "x"}, "capabilities")
	if err == nil || !strings.Contains(out, "Unauthenticated") {
		t.Errorf("unknown user: %v, want Unauthenticated:\n%s", err, out)
	}

	setArgs := []string{"set", "--update-path", "/system/config/hostname", "--update-value", "leaf9", "-e", "json_ietf"}
	out, err = r.gnmic(t, r.with("viewer", viewerPW), setArgs...)
	if err == nil || !strings.Contains(out, "PermissionDenied") {
		t.Errorf("read-only Set: %v, want PermissionDenied:\n%s", err, out)
	}
	if got := r.set.callers(); len(got) != 0 {
		t.Errorf("the SetHandler was called for %v after a read-only Set", got)
	}
	out, err = r.gnmic(t, r.with("viewer", viewerPW), "subscribe", "--mode", "once", "--path", "/interfaces")
	if err != nil || !strings.Contains(out, `"UP"`) {
		t.Errorf("read-only Subscribe ONCE: %v, want oper-status UP:\n%s", err, out)
	}
	out, err = r.gnmic(t, r.with("admin", adminPW), setArgs...)
	if err != nil {
		t.Errorf("admin Set: %v\n%s", err, out)
	}
	if got := r.set.callers(); len(got) != 1 || got[0] != "admin" {
		t.Errorf("SetHandler callers %v, want [admin]", got)
	}

	rm := newRig(t, true, Options{})
	for _, c := range []struct {
		name      string
		cert, key string
		ok        bool
	}{{"trusted CA", rm.aliceCert, rm.aliceKey, true}, {"stranger CA", rm.strangerCert, rm.strangerKey, false}} {
		// gnmic dials blocking: a refused handshake shows as its dial
		// timing out, shortened here; the trusted CA's success on the same
		// listener shows the listener is up.
		out, err := rm.gnmic(t, []string{"--tls-ca", rm.certFile, "--tls-cert", c.cert, "--tls-key", c.key, "-u", "alice", "-p", "-", "--timeout", "5s"}, "capabilities")
		if (err == nil) != c.ok {
			t.Errorf("mTLS with a client certificate from the %s: error %v, want success %v:\n%s", c.name, err, c.ok, out)
		}
	}
}

// TestClientsSubscribeOnChange: gnmic subscribed on change sees the
// initial value, an update after a publish and a delete after a delete.
func TestClientsSubscribeOnChange(t *testing.T) {
	r := newRig(t, false, Options{})
	publish(t, r.s, time.Now().UnixNano(), eth0Oper, str("UP"))
	s := r.startGnmic(t, r.with("viewer", viewerPW), "subscribe", "--mode", "stream", "--stream-mode", "on-change",
		"--path", "/interfaces/interface/state/oper-status", "--format", "json")
	s.waitFor("UP", func(out string) bool { return strings.Contains(out, `"UP"`) })
	publish(t, r.s, time.Now().UnixNano(), eth0Oper, str("DOWN"))
	s.waitFor("DOWN", func(out string) bool { return strings.Contains(out, `"DOWN"`) })
	if err := r.s.Delete(time.Now(), mustPath(t, eth0Oper)); err != nil {
		t.Fatal(err)
	}
	s.waitFor("the delete", func(out string) bool {
		return regexp.MustCompile(`"deletes":\s*\[\s*"interfaces/interface\[name=eth0\]/state/oper-status"`).MatchString(out)
	})
}

// TestClientsSubscribeSample: SAMPLE at 1 s delivers an unchanged value
// again and again; with suppress_redundant an unchanged leaf comes once
// while a changing one keeps coming (each new value seen proves a sample
// was taken); with a heartbeat the unchanged leaf is resent.
func TestClientsSubscribeSample(t *testing.T) {
	r := newRig(t, false, Options{})
	const mtuPath = "/interfaces/interface[name=eth0]/state/mtu"
	publish(t, r.s, time.Now().UnixNano(), mtuPath, uint(1500))
	publish(t, r.s, time.Now().UnixNano(), eth0InPkt, uint(100))
	// Flat output: one "path: value" line per leaf, whatever prefix the
	// server put the leaves under.
	mtuLine := regexp.MustCompile(`(?m)^interfaces/interface\[name=eth0\]/state/mtu: 1500$`)
	pktsLine := regexp.MustCompile(`(?m)^interfaces/interface\[name=eth0\]/state/counters/in-pkts: (\d+)$`)
	sample := func(extra ...string) *stream {
		args := append([]string{"subscribe", "--mode", "stream", "--stream-mode", "sample", "-i", "1s", "--format", "flat",
			"--path", "/interfaces/interface[name=eth0]/state/mtu", "--path", "/interfaces/interface[name=eth0]/state/counters/in-pkts"}, extra...)
		return r.startGnmic(t, r.with("viewer", viewerPW), args...)
	}

	plain := sample()
	plain.waitFor("mtu three times", func(out string) bool { return len(mtuLine.FindAllString(out, -1)) >= 3 })

	// Bump in-pkts each time its last value shows up: each new value
	// seen came with a sample taken after the bump.
	lastPkts := func(out string) string {
		m := pktsLine.FindAllStringSubmatch(out, -1)
		if len(m) == 0 {
			return ""
		}
		return m[len(m)-1][1]
	}
	driveCounter := func(s *stream, samples int) string {
		for v := 101; v <= 100+samples; v++ {
			s.waitFor("in-pkts sampled", func(out string) bool { return lastPkts(out) == strconv.Itoa(v-1) })
			publish(t, r.s, time.Now().UnixNano(), eth0InPkt, uint(uint64(v)))
		}
		return s.waitFor("last in-pkts", func(out string) bool { return lastPkts(out) == strconv.Itoa(100+samples) })
	}
	suppressed := sample("--suppress-redundant")
	out := driveCounter(suppressed, 3)
	if n := len(mtuLine.FindAllString(out, -1)); n != 1 {
		t.Errorf("with suppress_redundant, the unchanged mtu came %d times over 4 samples, want once:\n%s", n, out)
	}

	hb := sample("--suppress-redundant", "--heartbeat-interval", "1s")
	hb.waitFor("mtu resent by the heartbeat", func(out string) bool { return len(mtuLine.FindAllString(out, -1)) >= 3 })
}

// TestClientsSubscribeTargetDefined: gnmic's target-defined stream, with
// CountersSampled as the server's rule, gets an unchanged counter again
// and again and oper-status once.
func TestClientsSubscribeTargetDefined(t *testing.T) {
	r := newRig(t, false, Options{TargetDefined: CountersSampled, TargetDefinedInterval: time.Second})
	publish(t, r.s, time.Now().UnixNano(), eth0Oper, str("UP"))
	publish(t, r.s, time.Now().UnixNano(), eth0InPkt, uint(100))
	s := r.startGnmic(t, r.with("viewer", viewerPW), "subscribe", "--mode", "stream", "--stream-mode", "target-defined",
		"--path", "/interfaces/interface[name=eth0]", "--format", "flat")
	out := s.waitFor("in-pkts three times", func(out string) bool {
		return strings.Count(out, "interfaces/interface[name=eth0]/state/counters/in-pkts: 100\n") >= 3
	})
	if n := strings.Count(out, "interfaces/interface[name=eth0]/state/oper-status: UP\n"); n != 1 {
		t.Errorf("oper-status came %d times, want once (on change):\n%s", n, out)
	}
}
