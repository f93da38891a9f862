package ns_test

import (
	"context"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"

	"github.com/switchd/switchd/sim/ns"
)

func TestMain(m *testing.M) { ns.TestMain(m) }

func TestPrivilegedVethPing(t *testing.T) {
	if os.Getenv("SWITCHD_TEST_NETNS") == "" && os.Geteuid() == 0 {
		t.Fatal("ns.TestMain did not move the test into a private namespace")
	}
	a, b := ns.NewT(t, "a"), ns.NewT(t, "b")
	if !strings.HasPrefix(a.Name, ns.RunPrefix()+"-") {
		t.Fatalf("namespace %q lacks the run prefix %q", a.Name, ns.RunPrefix())
	}
	if err := ns.Veth(a, "va", b, "vb"); err != nil {
		t.Fatal(err)
	}
	if err := a.AddAddr("va", netip.MustParsePrefix("192.0.2.0/31")); err != nil {
		t.Fatal(err)
	}
	if err := b.AddAddr("vb", netip.MustParsePrefix("192.0.2.1/31")); err != nil {
		t.Fatal(err)
	}
	if err := a.AddAddr("va", netip.MustParsePrefix("2001:db8::/127")); err != nil {
		t.Fatal(err)
	}
	if err := b.AddAddr("vb", netip.MustParsePrefix("2001:db8::1/127")); err != nil {
		t.Fatal(err)
	}
	for _, dst := range []string{"192.0.2.1", "2001:db8::1"} {
		if out, err := a.Run(context.Background(), "ping", "-c1", "-W2", dst); err != nil {
			t.Fatalf("ping %s: %v\n%s", dst, err, out)
		}
	}
	names, err := ns.List(ns.RunPrefix())
	if err != nil {
		t.Fatal(err)
	}
	if len(names) < 2 {
		t.Fatalf("List(%q) = %v, want at least a and b", ns.RunPrefix(), names)
	}
}

func TestPrivilegedDoOpensSocketInNamespace(t *testing.T) {
	a := ns.NewT(t, "do")
	var links []string
	err := a.Do(func() error {
		ifs, err := net.Interfaces()
		for _, i := range ifs {
			links = append(links, i.Name)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(links) != 1 || links[0] != "lo" {
		t.Fatalf("links seen inside Do = %v, want only lo", links)
	}
}
