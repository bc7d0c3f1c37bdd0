// Package access authenticates Berth's callers and decides what they may do: the main account's
// administrator, RAM users with passwords or access keys, and temporary tokens (SPEC §9). It turns a user's
// attached policies into a compiled policies.Set and caches it briefly, so a check costs nanoseconds; any
// change to a user or policy made through this instance takes effect at once, and on other replicas within
// CacheTTL.
package access

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/berth-dev/berth/policies"
	"github.com/berth-dev/berth/server/forwarded"
	"github.com/berth-dev/berth/store"
)

// Principal is an authenticated caller.
type Principal struct {
	Name      string // user name
	AccountID string
	Admin     bool // the main account's administrator: every action is allowed
	Temporary bool // authenticated with a temporary token
	set       *policies.Set
	// cred names the credential the caller proved (passwordCred, or keyCredPrefix + key id): temporary
	// tokens and registry tokens made from it die with it.
	cred string
}

// Can reports whether p may do action on resource.
func (p *Principal) Can(action, resource string) bool {
	if p == nil {
		return false
	}
	return p.Admin || p.set.Allowed(action, resource)
}

// Errors Authenticate returns.
var (
	ErrNoCredentials  = errors.New("no credentials")
	ErrBadCredentials = errors.New("invalid credentials, or the user is disabled")
	ErrRateLimited    = errors.New("too many failed logins from this client; wait a minute and try again")
)

// Defaults.
const (
	CacheTTL          = 2 * time.Second
	DefaultTokenTTL   = time.Hour
	MaxTokenTTL       = 12 * time.Hour
	BcryptCost        = 10
	tempTokenPrefix   = "berth-tmp."
	accessKeyIDPrefix = "LTAI"
)

// Service is the identity and authorization service.
type Service struct {
	store     store.Store
	accountID string
	tokenKey  []byte
	logger    *slog.Logger
	limiter   *Limiter
	dummyHash []byte

	// logins serialises the logins of one user name from one client (striped
	// by hash), so a burst of parallel guesses cannot all pass the failed-login
	// limit before the first failure is counted, while other clients' logins
	// of the same name do not wait behind them.
	logins [64]sync.Mutex

	mu    sync.Mutex
	users map[string]cachedUser  // name → user with compiled policies
	creds map[[32]byte]time.Time // sha256(user, password, password hash) → verified until
	keys  map[string]cachedKey   // access key id → key (nil: none), for credential checks of tokens
}

type cachedKey struct {
	key     *store.AccessKey
	expires time.Time
}

type cachedUser struct {
	user    *store.User
	set     *policies.Set
	expires time.Time
}

// New makes the service. tokenKey signs temporary tokens (derive it from the master key).
func New(s store.Store, accountID string, tokenKey []byte, logger *slog.Logger) *Service {
	if logger == nil {
		logger = slog.Default()
	}
	dummy, _ := bcrypt.GenerateFromPassword([]byte("berth-timing-equaliser"), BcryptCost)
	return &Service{store: s, accountID: accountID, tokenKey: tokenKey, logger: logger, limiter: NewLimiter(),
		dummyHash: dummy, users: map[string]cachedUser{}, creds: map[[32]byte]time.Time{}, keys: map[string]cachedKey{}}
}

// HashPassword hashes a password for storage.
func HashPassword(pw string) (string, error) {
	if len(pw) < 8 || len(pw) > 72 {
		return "", fmt.Errorf("a password must be 8 to 72 characters long")
	}
	h, err := bcrypt.GenerateFromPassword([]byte(pw), BcryptCost)
	return string(h), err
}

// Invalidate drops what is cached about a user ("" = everyone), after a change to it or to a policy.
func (s *Service) Invalidate(user string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if user == "" {
		s.users = map[string]cachedUser{}
	} else {
		delete(s.users, user)
	}
	s.creds = map[[32]byte]time.Time{}
	s.keys = map[string]cachedKey{}
}

// Authenticate reads a request's credentials: HTTP Basic (user password, access key id + secret, or user name
// + temporary token) or Bearer (temporary token).
func (s *Service) Authenticate(ctx context.Context, r *http.Request) (*Principal, error) {
	if user, pass, ok := r.BasicAuth(); ok {
		return s.Login(ctx, user, pass, forwarded.ClientIP(r))
	}
	if h := r.Header.Get("Authorization"); len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		tok := strings.TrimSpace(h[7:])
		p, err := s.verifyTempToken(ctx, "", tok)
		if err != nil {
			return nil, s.failed(ctx, "", forwarded.ClientIP(r), err)
		}
		return p, nil
	}
	return nil, ErrNoCredentials
}

// Login checks a name/secret pair from any client (the REST API or `docker login` through the registry).
func (s *Service) Login(ctx context.Context, username, secret, client string) (*Principal, error) {
	if username == "" {
		return nil, ErrNoCredentials
	}
	h := fnv.New32a()
	h.Write([]byte(username + "\x00" + clientKey(client)))
	lock := &s.logins[h.Sum32()%uint32(len(s.logins))]
	lock.Lock()
	defer lock.Unlock()
	if s.limiter.Blocked(username, client) {
		return nil, ErrRateLimited
	}
	var p *Principal
	var err error
	switch {
	case strings.HasPrefix(secret, tempTokenPrefix):
		p, err = s.verifyTempToken(ctx, username, secret)
	case strings.HasPrefix(username, accessKeyIDPrefix):
		p, err = s.verifyAccessKey(ctx, username, secret)
	default:
		p, err = s.verifyPassword(ctx, username, secret)
	}
	if err != nil {
		return nil, s.failed(ctx, username, client, err)
	}
	return p, nil
}

func (s *Service) failed(_ context.Context, user, client string, err error) error {
	if errors.Is(err, ErrBadCredentials) {
		s.limiter.Fail(user, client)
		s.logger.Warn("failed login", "user", user, "client", client)
	}
	return err
}

func (s *Service) verifyPassword(ctx context.Context, name, pw string) (*Principal, error) {
	cu, err := s.loadUser(ctx, name)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	// The password hash is part of the key: once a replica sees a changed password (within CacheTTL), the
	// old password's cached success no longer applies.
	var key [32]byte
	var cached bool
	var until time.Time
	if cu != nil {
		key = sha256.Sum256([]byte(name + "\x00" + pw + "\x00" + cu.user.PasswordHash))
		s.mu.Lock()
		until, cached = s.creds[key]
		s.mu.Unlock()
	}
	if cached && time.Now().Before(until) && cu.user.Enabled {
		return s.principalWith(cu, passwordCred(cu.user)), nil
	}
	// Unknown users, and users without a password (access keys only), cost
	// one bcrypt comparison too, so the answer time does not tell them apart
	// from a wrong password.
	hash, known := s.dummyHash, false
	if cu != nil && cu.user.PasswordHash != "" {
		hash, known = []byte(cu.user.PasswordHash), true
	}
	if bcrypt.CompareHashAndPassword(hash, []byte(pw)) != nil || !known || !cu.user.Enabled {
		return nil, ErrBadCredentials
	}
	s.mu.Lock()
	if len(s.creds) > 10000 {
		s.creds = map[[32]byte]time.Time{}
	}
	s.creds[key] = time.Now().Add(30 * time.Second)
	s.mu.Unlock()
	return s.principalWith(cu, passwordCred(cu.user)), nil
}

func (s *Service) verifyAccessKey(ctx context.Context, id, secret string) (*Principal, error) {
	k, err := s.store.GetAccessKey(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, ErrBadCredentials
	}
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256([]byte(secret))
	if !hmac.Equal([]byte(hex.EncodeToString(sum[:])), []byte(k.SecretHash)) || !k.Enabled {
		return nil, ErrBadCredentials
	}
	cu, err := s.loadUser(ctx, k.User)
	if err != nil || !cu.user.Enabled {
		return nil, ErrBadCredentials
	}
	return s.principalWith(cu, keyCredPrefix+k.ID), nil
}

// NewPrincipal makes a principal with an explicit policy set, for callers that
// authenticate by other means (tests, internal work). A nil set allows nothing.
func NewPrincipal(name, accountID string, admin bool, set *policies.Set) *Principal {
	return &Principal{Name: name, AccountID: accountID, Admin: admin, set: set}
}

func (s *Service) principal(cu *cachedUser, temp bool) *Principal {
	return &Principal{Name: cu.user.Name, AccountID: cu.user.AccountID, Admin: cu.user.Admin, Temporary: temp, set: cu.set}
}

func (s *Service) principalWith(cu *cachedUser, cred string) *Principal {
	p := s.principal(cu, false)
	p.cred = cred
	return p
}

// Credentials a token derives from. A token names the credential that was proved to get it; it is valid
// while that credential is: "p:" + a fingerprint of the password hash (changed with every password change),
// or "k:" + an access key id (the key enabled, of the same user).
const (
	passwordCredPrefix = "p:"
	keyCredPrefix      = "k:"
)

func passwordCred(u *store.User) string {
	sum := sha256.Sum256([]byte("berth-password-credential\x00" + u.PasswordHash))
	return passwordCredPrefix + base64.RawURLEncoding.EncodeToString(sum[:12])
}

// credentialActive reports whether cred, a credential of user cu, still stands. What this instance changed
// it knows at once (Invalidate); another replica's changes it sees within CacheTTL.
func (s *Service) credentialActive(ctx context.Context, cu *cachedUser, cred string) (bool, error) {
	switch {
	case strings.HasPrefix(cred, passwordCredPrefix):
		return cred == passwordCred(cu.user), nil
	case strings.HasPrefix(cred, keyCredPrefix):
		k, err := s.loadKey(ctx, strings.TrimPrefix(cred, keyCredPrefix))
		if err != nil {
			return false, err
		}
		return k != nil && k.Enabled && k.User == cu.user.Name, nil
	}
	return false, nil
}

// loadKey returns an access key (nil when there is none), from the cache when fresh.
func (s *Service) loadKey(ctx context.Context, id string) (*store.AccessKey, error) {
	s.mu.Lock()
	ck, ok := s.keys[id]
	s.mu.Unlock()
	if ok && time.Now().Before(ck.expires) {
		return ck.key, nil
	}
	k, err := s.store.GetAccessKey(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		k, err = nil, nil
	}
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	if len(s.keys) > 10000 {
		s.keys = map[string]cachedKey{}
	}
	s.keys[id] = cachedKey{key: k, expires: time.Now().Add(CacheTTL)}
	s.mu.Unlock()
	return k, nil
}

// Principal returns the principal of an existing, enabled user (used for internal work done on a user's behalf).
func (s *Service) Principal(ctx context.Context, name string) (*Principal, error) {
	cu, err := s.loadUser(ctx, name)
	if err != nil {
		return nil, err
	}
	if !cu.user.Enabled {
		return nil, ErrBadCredentials
	}
	return s.principal(cu, false), nil
}

// loadUser returns the user with its compiled policies, from the cache when fresh.
func (s *Service) loadUser(ctx context.Context, name string) (*cachedUser, error) {
	s.mu.Lock()
	cu, ok := s.users[name]
	s.mu.Unlock()
	if ok && time.Now().Before(cu.expires) {
		return &cu, nil
	}
	u, err := s.store.GetUser(ctx, name)
	if err != nil {
		return nil, err
	}
	docs := make([]*policies.Document, 0, len(u.Policies))
	for _, pn := range u.Policies {
		if sp, ok := policies.SystemPolicy(pn); ok {
			docs = append(docs, sp.Document)
			continue
		}
		cp, err := s.store.GetPolicy(ctx, pn)
		if errors.Is(err, store.ErrNotFound) {
			continue // detached by a concurrent delete
		}
		if err != nil {
			return nil, err
		}
		d, err := policies.Parse([]byte(cp.Document))
		if err != nil {
			s.logger.Error("stored policy does not parse; ignoring it", "policy", pn, "err", err)
			continue
		}
		docs = append(docs, d)
	}
	cu = cachedUser{user: u, set: policies.Compile(docs...), expires: time.Now().Add(CacheTTL)}
	s.mu.Lock()
	s.users[name] = cu
	s.mu.Unlock()
	return &cu, nil
}

// tempClaims is the payload of a temporary token.
type tempClaims struct {
	User    string `json:"u"`
	Born    int64  `json:"b"` // the user's creation time (ms): a re-created user does not inherit old tokens
	Issued  int64  `json:"i"` // ms: tokens issued before the user's TokensNotBefore are revoked
	Expires int64  `json:"e"`
	Nonce   string `json:"n"`
	Cred    string `json:"c"` // the credential it was issued for: it dies with it
}

// IssueTemporary makes a temporary password for user, valid for ttl (default 1 h, at most 12 h), for a
// caller that proved the user's password: it dies when the password changes. IssueTemporaryFor ties it to
// whatever credential a principal proved.
func (s *Service) IssueTemporary(ctx context.Context, user string, ttl time.Duration) (token string, expires time.Time, err error) {
	return s.issueTemporary(ctx, user, "", ttl)
}

// IssueTemporaryFor makes a temporary password for p (which must not be temporary itself), valid while the
// credential p authenticated with stands: a password change, or disabling or deleting the access key, ends
// it; so does disabling or deleting the user.
func (s *Service) IssueTemporaryFor(ctx context.Context, p *Principal, ttl time.Duration) (token string, expires time.Time, err error) {
	if p.Temporary {
		return "", time.Time{}, fmt.Errorf("a temporary token cannot issue another")
	}
	return s.issueTemporary(ctx, p.Name, p.cred, ttl)
}

func (s *Service) issueTemporary(ctx context.Context, user, cred string, ttl time.Duration) (token string, expires time.Time, err error) {
	if ttl <= 0 {
		ttl = DefaultTokenTTL
	}
	if ttl > MaxTokenTTL {
		return "", time.Time{}, fmt.Errorf("a temporary token lives at most %s", MaxTokenTTL)
	}
	u, err := s.store.GetUser(ctx, user)
	if err != nil {
		return "", time.Time{}, err
	}
	if cred == "" {
		cred = passwordCred(u)
	}
	var n [9]byte
	_, _ = rand.Read(n[:])
	expires = time.Now().Add(ttl).UTC().Truncate(time.Second)
	payload, _ := json.Marshal(tempClaims{User: u.Name, Born: u.CreatedAt.UnixMilli(), Issued: time.Now().UnixMilli(), Expires: expires.Unix(),
		Nonce: base64.RawURLEncoding.EncodeToString(n[:]), Cred: cred})
	body := base64.RawURLEncoding.EncodeToString(payload)
	return tempTokenPrefix + body + "." + s.sign(body), expires, nil
}

func (s *Service) sign(body string) string {
	m := hmac.New(sha256.New, s.tokenKey)
	m.Write([]byte(body))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func (s *Service) verifyTempToken(ctx context.Context, username, tok string) (*Principal, error) {
	rest, ok := strings.CutPrefix(tok, tempTokenPrefix)
	if !ok {
		return nil, ErrBadCredentials
	}
	body, sig, ok := strings.Cut(rest, ".")
	if !ok || !hmac.Equal([]byte(sig), []byte(s.sign(body))) {
		return nil, ErrBadCredentials
	}
	raw, err := base64.RawURLEncoding.DecodeString(body)
	if err != nil {
		return nil, ErrBadCredentials
	}
	var c tempClaims
	if json.Unmarshal(raw, &c) != nil || time.Now().Unix() >= c.Expires || (username != "" && username != c.User) {
		return nil, ErrBadCredentials
	}
	cu, err := s.loadUser(ctx, c.User)
	if errors.Is(err, store.ErrNotFound) {
		return nil, ErrBadCredentials
	}
	if err != nil {
		return nil, err
	}
	if !cu.user.Enabled || cu.user.CreatedAt.UnixMilli() != c.Born || c.Issued < cu.user.TokensNotBefore.UnixMilli() {
		return nil, ErrBadCredentials
	}
	if ok, err := s.credentialActive(ctx, cu, c.Cred); err != nil {
		return nil, err
	} else if !ok {
		return nil, ErrBadCredentials
	}
	p := s.principal(cu, true)
	p.cred = c.Cred
	return p, nil
}

// NewAccessKey creates an access key for user and returns its id and secret (the secret is shown once).
func (s *Service) NewAccessKey(ctx context.Context, user string) (id, secret string, err error) {
	id = accessKeyIDPrefix + randomString(16)
	secret = randomString(30)
	sum := sha256.Sum256([]byte(secret))
	err = s.store.CreateAccessKey(ctx, &store.AccessKey{ID: id, User: user, SecretHash: hex.EncodeToString(sum[:]), Enabled: true})
	return id, secret, err
}

const alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

func randomString(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alnum[int(b[i])%len(alnum)]
	}
	return string(b)
}

// RandomPassword makes a strong random password.
func RandomPassword() string { return randomString(20) }
