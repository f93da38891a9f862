package gnmi

import (
	"reflect"
	"strings"
	"testing"

	"github.com/openconfig/ygot/ygot"
	"golang.org/x/crypto/bcrypt"

	"github.com/switchd/switchd/models/oc"
)

// TestListenFromConfig: a gNMI grpc-server entry and the AAA users
// become the listener's options; a disabled entry is left
// alone; bad values are refused at their path.
func TestListenFromConfig(t *testing.T) {
	hash, _ := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	sys := &oc.System{}
	g := sys.GetOrCreateGrpcServer("gnmi")
	g.Port = ygot.Uint16(50051)
	g.ListenAddresses = []oc.System_GrpcServer_ListenAddresses_Union{oc.UnionString("127.0.0.1"), oc.UnionString("::1")}
	g.Services = []oc.E_SystemGrpc_GRPC_SERVICE{oc.SystemGrpc_GRPC_SERVICE_GNMI}
	g.CertificateId = ygot.String("fabric")
	sys.GetOrCreateGrpcServer("off").Enable = ygot.Bool(false)
	users := sys.GetOrCreateAaa().GetOrCreateAuthentication()
	admin := users.GetOrCreateUser("ops")
	admin.PasswordHashed = ygot.String(string(hash))
	admin.Role = oc.AaaTypes_SYSTEM_DEFINED_ROLES_SYSTEM_ROLE_ADMIN
	viewer := users.GetOrCreateUser("noc")
	viewer.Password = ygot.String("cleartext")
	viewer.Role = oc.UnionString("viewer")

	lo, ok, err := ListenFromConfig(sys, TLSOptions{StateDir: "/var/lib/switchd"}, "/etc/switchd/certs")
	if err != nil || !ok {
		t.Fatalf("ListenFromConfig: %v, %v", ok, err)
	}
	if want := []string{"127.0.0.1:50051", "[::1]:50051"}; !reflect.DeepEqual(lo.Addresses, want) {
		t.Errorf("addresses %q, want %q", lo.Addresses, want)
	}
	if lo.Plaintext || lo.TLS.CertFile != "/etc/switchd/certs/fabric.crt" || lo.TLS.KeyFile != "/etc/switchd/certs/fabric.key" {
		t.Errorf("TLS %+v plaintext %v, want the fabric certificate files", lo.TLS, lo.Plaintext)
	}
	if len(lo.Users) != 2 || lo.Users[0].Name != "noc" || lo.Users[0].Role != RoleReadOnly || lo.Users[1].Role != RoleAdmin ||
		bcrypt.CompareHashAndPassword([]byte(lo.Users[0].PasswordHash), []byte("cleartext")) != nil {
		t.Errorf("users %+v, want noc (read-only, its cleartext password hashed) and ops (admin)", lo.Users)
	}

	g.TransportSecurity = ygot.Bool(false)
	g.Port, g.ListenAddresses = nil, []oc.System_GrpcServer_ListenAddresses_Union{oc.GrpcServer_ListenAddresses_Enum_ANY}
	if lo, _, _ := ListenFromConfig(sys, TLSOptions{}, ""); !lo.Plaintext || !reflect.DeepEqual(lo.Addresses, []string{":9339"}) {
		t.Errorf("transport-security false, port unset, ANY: %+v", lo)
	}

	admin.PasswordHashed = ygot.String("$6$salt$sha512crypt")
	g.NetworkInstance = ygot.String("mgmt")
	_, _, err = ListenFromConfig(sys, TLSOptions{}, "")
	for _, want := range []string{"/system/aaa/authentication/users/user[username=ops]/config/password-hashed", "/system/grpc-servers/grpc-server[name=gnmi]/config/network-instance"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v, want one naming %s", err, want)
		}
	}
	if _, ok, _ := ListenFromConfig(&oc.System{}, TLSOptions{}, ""); ok {
		t.Error("a system without grpc-servers serves gNMI")
	}
}
