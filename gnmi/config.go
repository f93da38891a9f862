package gnmi

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"

	"golang.org/x/crypto/bcrypt"

	"github.com/switchd/switchd/models/oc"
)

// ListenFromConfig translates the OpenConfig system tree into the TCP
// listener's options: the /system/grpc-servers/grpc-server entries that
// serve GNMI (an entry with no services listed does) and the users of
// /system/aaa/authentication/users. Errors name the OpenConfig path.
//
//   - enable: an entry without it is enabled (configuring one is the
//     point); port: 9339 if unset; listen-addresses: ANY or none means
//     every address; network-instance: only DEFAULT.
//   - transport-security: true unless set false (then plaintext).
//   - certificate-id names the files certDir/ID.crt and certDir/ID.key;
//     without it a self-signed certificate is made in tls.StateDir. The
//     client CA (mTLS) has no OpenConfig leaf: it comes in tls.
//   - metadata-authentication false: users log in by client certificate
//     only.
//   - a user's password-hashed must be a bcrypt hash ($2a$, $2b$, $2y$);
//     a cleartext password is hashed here. Role SYSTEM_ROLE_ADMIN is
//     admin; any other role is read-only.
//
// ok is false when no entry serves gNMI; the local socket is the
// caller's to add.
func ListenFromConfig(sys *oc.System, tls TLSOptions, certDir string) (lo ListenOptions, ok bool, err error) {
	var errs []error
	lo.TLS = tls
	if sys == nil {
		return lo, false, nil
	}
	passwords := true
	for _, name := range sortedKeys(sys.GrpcServer) {
		g := sys.GrpcServer[name]
		at := fmt.Sprintf("/system/grpc-servers/grpc-server[name=%s]/config", name)
		if svc := g.GetServices(); len(svc) > 0 && !slices.Contains(svc, oc.SystemGrpc_GRPC_SERVICE_GNMI) {
			continue
		}
		if g.Enable != nil && !*g.Enable {
			continue
		}
		if ok {
			errs = append(errs, fmt.Errorf("%s: a second gNMI server (one is served)", at))
			continue
		}
		ok = true
		if ni := g.GetNetworkInstance(); ni != "" && ni != "DEFAULT" {
			errs = append(errs, fmt.Errorf("%s/network-instance: %q: only DEFAULT is served", at, ni))
		}
		port := uint16(DefaultPort)
		if g.Port != nil {
			port = *g.Port
		}
		hosts := []string{""}
		for _, a := range g.GetListenAddresses() {
			switch v := a.(type) {
			case oc.E_GrpcServer_ListenAddresses_Enum: // ANY
			case oc.UnionString:
				if net.ParseIP(string(v)) == nil {
					errs = append(errs, fmt.Errorf("%s/listen-addresses: %q is not an IP address", at, v))
					continue
				}
				if hosts[0] == "" {
					hosts = hosts[:0]
				}
				hosts = append(hosts, string(v))
			}
		}
		for _, h := range hosts {
			lo.Addresses = append(lo.Addresses, net.JoinHostPort(h, strconv.Itoa(int(port))))
		}
		lo.Plaintext = g.TransportSecurity != nil && !*g.TransportSecurity
		if id := g.GetCertificateId(); id != "" {
			if certDir == "" {
				errs = append(errs, fmt.Errorf("%s/certificate-id: %q: no certificate directory", at, id))
			}
			lo.TLS.CertFile, lo.TLS.KeyFile = certDir+"/"+id+".crt", certDir+"/"+id+".key"
		}
		passwords = g.MetadataAuthentication == nil || *g.MetadataAuthentication
	}
	var users map[string]*oc.System_Aaa_Authentication_User
	if a := sys.GetAaa().GetAuthentication(); a != nil {
		users = a.User
	}
	for _, name := range sortedKeys(users) {
		u := users[name]
		at := fmt.Sprintf("/system/aaa/authentication/users/user[username=%s]/config", name)
		user := User{Name: name, Role: RoleReadOnly}
		if r, isEnum := u.Role.(oc.E_AaaTypes_SYSTEM_DEFINED_ROLES); isEnum && r == oc.AaaTypes_SYSTEM_DEFINED_ROLES_SYSTEM_ROLE_ADMIN {
			user.Role = RoleAdmin
		}
		switch {
		case !passwords:
		case u.PasswordHashed != nil:
			if _, err := bcrypt.Cost([]byte(*u.PasswordHashed)); err != nil {
				errs = append(errs, fmt.Errorf("%s/password-hashed: not a bcrypt hash ($2b$...): %v", at, err))
				continue
			}
			user.PasswordHash = *u.PasswordHashed
		case u.Password != nil:
			h, err := HashPassword(*u.Password)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s/password: %v", at, err))
				continue
			}
			user.PasswordHash = h
		}
		lo.Users = append(lo.Users, user)
	}
	return lo, ok, errors.Join(errs...)
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}
