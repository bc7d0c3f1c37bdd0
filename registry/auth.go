package registry

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base32"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
)

// Subject is who a token is for.
type Subject struct {
	Name      string
	AccountID string
	Anonymous bool
	Internal  bool
	// Credential is the Authorizer's own name for what the login proved (opaque here); tokens carry it back
	// to SubjectActive, so revoking that credential revokes them.
	Credential string
}

// Access is one scope entry: Type "repository" (or "registry" for the
// catalog), Name "ns/repo" (or "catalog"), Actions "pull", "push", "delete", "*".
type Access struct {
	Type    string   `json:"type"`
	Name    string   `json:"name"`
	Actions []string `json:"actions"`
}

// Authorizer is implemented by Berth's access-control layer (users, access
// keys, temporary tokens, RAM policies, visibility).
type Authorizer interface {
	// Authenticate checks a username/password from Basic auth on /token (or on
	// /v2 directly); it returns ErrUnauthorized on bad credentials.
	Authenticate(ctx context.Context, username, password string) (Subject, error)
	// Grant returns, for each requested Access, the subset of actions the
	// subject may have (entries with none are dropped).
	Grant(ctx context.Context, subj Subject, requested []Access) ([]Access, error)
}

// SubjectChecker may be implemented by an Authorizer to revoke credentials
// before they expire. On every request authorized by a bearer token or a
// cached Basic decision, the registry asks whether the subject is still active
// (for Berth: not disabled, and not deleted since issued); false answers 401.
// Anonymous and internal subjects are not asked.
type SubjectChecker interface {
	SubjectActive(ctx context.Context, subj Subject, issued time.Time) bool
}

func (r *Registry) subjectActive(ctx context.Context, subj Subject, issued time.Time) bool {
	sc, ok := r.authz.(SubjectChecker)
	return !ok || subj.Anonymous || subj.Internal || sc.SubjectActive(ctx, subj, issued)
}

type clientAddrKey struct{}

// ClientAddr is the remote address ("host:port") of the request an
// Authorizer.Authenticate call serves, or "" (for per-client login limits).
func ClientAddr(ctx context.Context) string {
	s, _ := ctx.Value(clientAddrKey{}).(string)
	return s
}

type userAgentKey struct{}

// UserAgent is the User-Agent header of the registry request ctx belongs to ("" outside one). It is the
// client's word, for hooks that narrow an exemption already granted on better grounds.
func UserAgent(ctx context.Context) string {
	s, _ := ctx.Value(userAgentKey{}).(string)
	return s
}

func withClientAddr(req *http.Request) context.Context {
	return context.WithValue(req.Context(), clientAddrKey{}, req.RemoteAddr)
}

// Action names.
const (
	ActionPull   = "pull"
	ActionPush   = "push"
	ActionDelete = "delete"
	ActionAll    = "*"
)

// actionBits is a set of actions on one resource.
type actionBits uint8

const (
	bitPull actionBits = 1 << iota
	bitPush
	bitDelete
	bitAll = bitPull | bitPush | bitDelete
)

func bitsOf(actions []string) actionBits {
	var b actionBits
	for _, a := range actions {
		switch a {
		case ActionPull:
			b |= bitPull
		case ActionPush:
			b |= bitPush
		case ActionDelete:
			b |= bitDelete
		case ActionAll:
			b |= bitAll
		}
	}
	return b
}

// resourceKey identifies a resource in a grant set.
type resourceKey struct{ typ, name string }

// grant is what a credential may do on one resource, and what it asked for
// (asked but not granted means refused).
type grant struct{ granted, asked actionBits }

// grantSet is what a request may do, per resource.
type grantSet map[resourceKey]grant

func newGrantSet(granted, refused []Access) grantSet {
	g := make(grantSet, len(granted)+len(refused))
	for _, a := range granted {
		k := resourceKey{a.Type, a.Name}
		e := g[k]
		b := bitsOf(a.Actions)
		e.granted |= b
		e.asked |= b
		g[k] = e
	}
	for _, a := range refused {
		k := resourceKey{a.Type, a.Name}
		e := g[k]
		e.asked |= bitsOf(a.Actions)
		g[k] = e
	}
	return g
}

func (g grantSet) allows(a Access) bool {
	need := bitsOf(a.Actions)
	return g[resourceKey{a.Type, a.Name}].granted&need == need
}

// asked reports whether every action of a was requested (granted or not)
// when the credential was issued.
func (g grantSet) asked(a Access) bool {
	need := bitsOf(a.Actions)
	return g[resourceKey{a.Type, a.Name}].asked&need == need
}

// refusedOf lists, per requested entry, the actions not granted.
func refusedOf(requested []Access, g grantSet) []Access {
	var out []Access
	for _, a := range requested {
		have := g[resourceKey{a.Type, a.Name}].granted
		var acts []string
		for _, act := range a.Actions {
			if have&bitsOf([]string{act}) != bitsOf([]string{act}) {
				acts = append(acts, act)
			}
		}
		if len(acts) > 0 {
			out = append(out, Access{Type: a.Type, Name: a.Name, Actions: acts})
		}
	}
	return out
}

// scopeString renders access entries as a token scope ("type:name:a,b" joined by spaces).
func scopeString(access []Access) string {
	var b strings.Builder
	for i, a := range access {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(a.Type)
		b.WriteByte(':')
		b.WriteString(a.Name)
		b.WriteByte(':')
		b.WriteString(strings.Join(a.Actions, ","))
	}
	return b.String()
}

// parseScopes parses scope parameters ("repository:ns/repo:pull,push", several
// per parameter separated by spaces), merging actions per resource.
func parseScopes(params []string) []Access {
	var out []Access
	idx := map[resourceKey]int{}
	for _, p := range params {
		for s := range strings.FieldsSeq(p) {
			i := strings.IndexByte(s, ':')
			j := strings.LastIndexByte(s, ':')
			if i <= 0 || j <= i {
				continue
			}
			typ, name, acts := s[:i], s[i+1:j], s[j+1:]
			if k := strings.IndexByte(typ, '('); k > 0 { // "repository(plugin)"
				typ = typ[:k]
			}
			if name == "" {
				continue
			}
			key := resourceKey{typ, name}
			n, ok := idx[key]
			if !ok {
				n = len(out)
				idx[key] = n
				out = append(out, Access{Type: typ, Name: name})
			}
			for a := range strings.SplitSeq(acts, ",") {
				if a = strings.TrimSpace(a); a != "" && !slices.Contains(out[n].Actions, a) {
					out[n].Actions = append(out[n].Actions, a)
				}
			}
		}
	}
	return out
}

// tokenClaims are the JWT claims of a registry token.
type tokenClaims struct {
	jwt.RegisteredClaims
	Access    []Access `json:"access"`
	Refused   []Access `json:"refused,omitempty"` // requested but not granted
	AccountID string   `json:"acct,omitempty"`
	Anonymous bool     `json:"anon,omitempty"`
	Internal  bool     `json:"internal,omitempty"`
	Cred      string   `json:"cred,omitempty"`
}

// signer signs and verifies registry tokens.
type signer struct {
	key     crypto.Signer
	method  jwt.SigningMethod
	kid     string
	issuer  string
	service string

	mu    sync.RWMutex
	cache map[string]*verifiedToken // token string -> verification result
}

type verifiedToken struct {
	subj     Subject
	grants   grantSet
	iat, exp time.Time
}

const tokenCacheMax = 16384

// loadOrCreateKey reads a PEM private key (EC or RSA; PKCS#8, SEC1 or
// PKCS#1) or generates an ECDSA P-256 key there when the file is missing.
func loadOrCreateKey(path string) (crypto.Signer, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		pemBytes, err := NewSigningKeyPEM()
		if err != nil {
			return nil, err
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, err
		}
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, pemBytes, 0o600); err != nil {
			return nil, err
		}
		if err := os.Rename(tmp, path); err != nil {
			return nil, err
		}
		return ParseSigningKey(pemBytes)
	}
	if err != nil {
		return nil, err
	}
	k, err := ParseSigningKey(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

// NewSigningKeyPEM makes a new token signing key (ECDSA P-256) as a PKCS#8 PEM block.
func NewSigningKeyPEM() ([]byte, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// ParseSigningKey reads a token signing key from PEM: ECDSA P-256 or RSA, PKCS#8, SEC 1 or PKCS#1.
func ParseSigningKey(b []byte) (crypto.Signer, error) {
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, errors.New("registry: signing key: no PEM block")
	}
	switch blk.Type {
	case "EC PRIVATE KEY":
		return x509.ParseECPrivateKey(blk.Bytes)
	case "RSA PRIVATE KEY":
		return x509.ParsePKCS1PrivateKey(blk.Bytes)
	case "PRIVATE KEY":
		k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
		if err != nil {
			return nil, err
		}
		switch s := k.(type) {
		case *ecdsa.PrivateKey:
			return s, nil
		case *rsa.PrivateKey:
			return s, nil
		}
		return nil, fmt.Errorf("registry: signing key: unsupported key type %T", k)
	}
	return nil, fmt.Errorf("registry: signing key: unsupported PEM block %q", blk.Type)
}

func newSigner(key crypto.Signer, issuer, service string) (*signer, error) {
	s := &signer{key: key, issuer: issuer, service: service, cache: map[string]*verifiedToken{}}
	switch k := key.(type) {
	case *ecdsa.PrivateKey:
		if k.Curve != elliptic.P256() {
			return nil, fmt.Errorf("registry: ECDSA signing key must use P-256")
		}
		s.method = jwt.SigningMethodES256
	case *rsa.PrivateKey:
		s.method = jwt.SigningMethodRS256
	default:
		return nil, fmt.Errorf("registry: unsupported signing key %T", key)
	}
	der, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(der)
	// libtrust-style key id: base32 of the first 30 bytes, in 12 groups of 4.
	enc := base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(sum[:30])
	var groups []string
	for i := 0; i < len(enc); i += 4 {
		groups = append(groups, enc[i:min(i+4, len(enc))])
	}
	s.kid = strings.Join(groups, ":")
	return s, nil
}

// issue signs a token for subj with the given access; refused records what
// was asked for and not granted.
func (s *signer) issue(subj Subject, access, refused []Access, ttl time.Duration) (string, time.Time, error) {
	now := time.Now()
	exp := now.Add(ttl)
	if access == nil {
		access = []Access{}
	}
	for i := range access {
		if access[i].Actions == nil {
			access[i].Actions = []string{}
		}
	}
	claims := tokenClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    s.issuer,
			Subject:   subj.Name,
			Audience:  jwt.ClaimStrings{s.service},
			ExpiresAt: jwt.NewNumericDate(exp),
			NotBefore: jwt.NewNumericDate(now.Add(-time.Second)),
			IssuedAt:  jwt.NewNumericDate(now),
			ID:        uuid.NewString(),
		},
		Access:    access,
		Refused:   refused,
		AccountID: subj.AccountID,
		Anonymous: subj.Anonymous,
		Internal:  subj.Internal,
		Cred:      subj.Credential,
	}
	t := jwt.NewWithClaims(s.method, claims)
	t.Header["kid"] = s.kid
	str, err := t.SignedString(s.key)
	return str, now, err
}

var errInvalidToken = errors.New("invalid token")

// verify checks a token, remembering good ones until they expire so the
// signature is checked once per token, not once per request.
func (s *signer) verify(tok string) (*verifiedToken, error) {
	now := time.Now()
	s.mu.RLock()
	v, ok := s.cache[tok]
	s.mu.RUnlock()
	if ok {
		if now.Before(v.exp) {
			return v, nil
		}
		s.mu.Lock()
		delete(s.cache, tok)
		s.mu.Unlock()
		return nil, errInvalidToken
	}
	var claims tokenClaims
	_, err := jwt.ParseWithClaims(tok, &claims, func(t *jwt.Token) (any, error) {
		if kid, _ := t.Header["kid"].(string); kid != s.kid {
			return nil, errInvalidToken
		}
		return s.key.Public(), nil
	},
		jwt.WithValidMethods([]string{s.method.Alg()}),
		jwt.WithAudience(s.service),
		jwt.WithIssuer(s.issuer),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(5*time.Second),
	)
	if err != nil {
		return nil, errInvalidToken
	}
	v = &verifiedToken{
		subj: Subject{Name: claims.Subject, AccountID: claims.AccountID, Anonymous: claims.Anonymous, Internal: claims.Internal,
			Credential: claims.Cred},
		grants: newGrantSet(claims.Access, claims.Refused),
		exp:    claims.ExpiresAt.Time,
	}
	if claims.IssuedAt != nil {
		v.iat = claims.IssuedAt.Time
	}
	s.mu.Lock()
	if len(s.cache) >= tokenCacheMax {
		for k, e := range s.cache { // drop expired first, then arbitrary entries
			if !now.Before(e.exp) || len(s.cache) >= tokenCacheMax {
				delete(s.cache, k)
			}
			if len(s.cache) < tokenCacheMax/2 {
				break
			}
		}
	}
	s.cache[tok] = v
	s.mu.Unlock()
	return v, nil
}
