package gnmi

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"sync"

	"golang.org/x/crypto/bcrypt"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// Role is what a user may do: an admin may Set, a read-only user may
// only Get, Subscribe and ask Capabilities. They are the roles of
// openconfig-aaa's SYSTEM_ROLE_ADMIN and of any other role name.
type Role int

const (
	RoleReadOnly Role = iota
	RoleAdmin
)

func (r Role) String() string {
	if r == RoleAdmin {
		return "admin"
	}
	return "read-only"
}

func (r Role) canSet() bool { return r == RoleAdmin }

// User is an account the TCP listener accepts.
type User struct {
	Name string
	// PasswordHash is a bcrypt hash in crypt(3) form ("$2a$", "$2b$" or
	// "$2y$", e.g. from `mkpasswd -m bcrypt` or HashPassword): what
	// openconfig-aaa's password-hashed holds for this user. bcrypt rather
	// than sha512-crypt because golang.org/x/crypto implements it, with a
	// cost factor that makes offline guessing slow. Empty: the user can
	// log in only by client certificate.
	PasswordHash string
	Role         Role
}

// HashPassword is the bcrypt hash of password for User.PasswordHash.
func HashPassword(password string) (string, error) {
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.DefaultCost)
	return string(h), err
}

// caller is the authenticated user of an RPC.
type caller struct {
	Name  string
	Role  Role
	local bool // came over the local socket
}

type callerKey struct{}

// UserFrom is the user an RPC runs as: the one the TCP listener
// authenticated, "root" (admin) on the local socket, or an anonymous
// read-only caller when the Server is served some other way.
func UserFrom(ctx context.Context) caller {
	if c, ok := ctx.Value(callerKey{}).(caller); ok {
		return c
	}
	return caller{Name: "", Role: RoleReadOnly}
}

// localRoot marks every RPC of the local socket as root's.
func localRoot(ctx context.Context) context.Context {
	return context.WithValue(ctx, callerKey{}, caller{Name: "root", Role: RoleAdmin, local: true})
}

// authenticator checks each RPC of the TCP listener: a client
// certificate whose CN names a user (verified by TLS against the client
// CA), else username and password in the metadata.
type authenticator struct {
	users map[string]User

	mu sync.Mutex // guards ok
	// ok remembers (user, SHA-256 of password) pairs bcrypt accepted, so a
	// client making many RPCs pays the deliberately slow check once.
	ok map[[sha256.Size]byte]string
}

func newAuthenticator(users []User) (*authenticator, error) {
	a := &authenticator{users: make(map[string]User, len(users)), ok: map[[sha256.Size]byte]string{}}
	for _, u := range users {
		if u.Name == "" {
			return nil, errors.New("user without a name")
		}
		if u.PasswordHash != "" {
			if _, err := bcrypt.Cost([]byte(u.PasswordHash)); err != nil {
				return nil, fmt.Errorf("user %s: password hash: %w (want bcrypt, $2b$...)", u.Name, err)
			}
		}
		a.users[u.Name] = u
	}
	return a, nil
}

// dummyHash is a bcrypt hash at the default cost that no password matches.
var dummyHash = []byte("$2a$10$CwTycUXWue0Thq9StjUM0uJ8ZcUJ1r6wWnQZKJHgDvbb0fG9IOGfS")

var errUnauthenticated = status.Error(codes.Unauthenticated, "authentication required: a client certificate naming a user, or username and password metadata")

func (a *authenticator) authenticate(ctx context.Context) (caller, error) {
	if p, ok := peer.FromContext(ctx); ok {
		if ti, ok := p.AuthInfo.(credentials.TLSInfo); ok && len(ti.State.VerifiedChains) > 0 && len(ti.State.VerifiedChains[0]) > 0 {
			cn := ti.State.VerifiedChains[0][0].Subject.CommonName
			if u, ok := a.users[cn]; ok {
				return caller{Name: u.Name, Role: u.Role}, nil
			}
		}
	}
	md, _ := metadata.FromIncomingContext(ctx)
	name, pw := first(md, "username"), first(md, "password")
	if name == "" {
		return caller{}, errUnauthenticated
	}
	u, ok := a.users[name]
	if !ok || u.PasswordHash == "" {
		// As slow as a wrong password, so timing does not tell which
		// names are users.
		bcrypt.CompareHashAndPassword(dummyHash, []byte(pw))
		return caller{}, status.Errorf(codes.Unauthenticated, "wrong username or password for %q", name)
	}
	if !a.check(u, pw) {
		return caller{}, status.Errorf(codes.Unauthenticated, "wrong username or password for %q", name)
	}
	return caller{Name: u.Name, Role: u.Role}, nil
}

func (a *authenticator) check(u User, pw string) bool {
	k := sha256.Sum256([]byte(u.Name + "\x00" + pw))
	a.mu.Lock()
	h, hit := a.ok[k]
	a.mu.Unlock()
	if hit {
		return subtle.ConstantTimeCompare([]byte(h), []byte(u.PasswordHash)) == 1
	}
	if bcrypt.CompareHashAndPassword([]byte(u.PasswordHash), []byte(pw)) != nil {
		return false
	}
	a.mu.Lock()
	if len(a.ok) > 1024 { // bounded: a new password per RPC cannot grow it
		clear(a.ok)
	}
	a.ok[k] = u.PasswordHash
	a.mu.Unlock()
	return true
}

func first(md metadata.MD, k string) string {
	if v := md.Get(k); len(v) > 0 {
		return v[0]
	}
	return ""
}

func (a *authenticator) unary(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	c, err := a.authenticate(ctx)
	if err != nil {
		return nil, err
	}
	return h(context.WithValue(ctx, callerKey{}, c), req)
}

func (a *authenticator) stream(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	c, err := a.authenticate(ss.Context())
	if err != nil {
		return err
	}
	return h(srv, &ctxStream{ServerStream: ss, ctx: context.WithValue(ss.Context(), callerKey{}, c)})
}

// ctxStream is a ServerStream with a context of ours.
type ctxStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *ctxStream) Context() context.Context { return s.ctx }
