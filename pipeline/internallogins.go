package pipeline

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"strconv"
	"strings"
	"time"

	"github.com/berth-dev/berth/registry"
)

// The registry logins of Berth's own clients. Neither is a valid user name, so neither shadows a user.
const (
	BuilderUser = "$berth-builder"
	ScannerUser = "$berth-scanner"
)

// InternalLogins issues and checks the short-lived registry logins of one of Berth's own clients: builds
// (BuildKit pushes with them) or the scanner (Trivy pulls with them). Both clients trade credentials for tokens
// at /token like any other, so these are logins, not bearer tokens: user User, password
// "<repo>.<expiry>.<HMAC>", good for that one repository. The key is derived from the instance's master key,
// so every process of the instance (serve replicas, remote workers) shares it.
type InternalLogins struct {
	User  string
	key   []byte
	grant func(repo string, requested []registry.Access, public func(name string) bool) []registry.Access
}

// BuildCredentials and ScanCredentials name the two kinds by their use.
type (
	BuildCredentials = InternalLogins
	ScanCredentials  = InternalLogins
)

// NewBuildCredentials returns build logins signed with key (secretbox.Box.Derive("build-credentials")):
// pull and push on the build's repository, pull on PUBLIC ones (base images).
func NewBuildCredentials(key []byte) *InternalLogins {
	return &InternalLogins{User: BuilderUser, key: key, grant: BuilderGrant}
}

// NewScanCredentials returns scanner logins signed with key (secretbox.Box.Derive("scan-credentials")):
// pull on the one repository, nothing else.
func NewScanCredentials(key []byte) *InternalLogins {
	return &InternalLogins{User: ScannerUser, key: key, grant: func(repo string, req []registry.Access, _ func(string) bool) []registry.Access {
		return ScannerGrant(repo, req)
	}}
}

// Issue returns a login for repo (namespace/name) valid for ttl.
func (c *InternalLogins) Issue(repo string, ttl time.Duration) (username, password string) {
	body := base64.RawURLEncoding.EncodeToString([]byte(repo)) + "." + strconv.FormatInt(time.Now().Add(ttl).Unix(), 10)
	return c.User, body + "." + c.sign(body)
}

// Verify returns the repository a login was issued for, if it is one of ours and has not expired.
func (c *InternalLogins) Verify(username, password string) (repo string, ok bool) {
	if username != c.User || len(password) > 1024 {
		return "", false
	}
	i := strings.LastIndexByte(password, '.')
	if i < 0 {
		return "", false
	}
	body, sig := password[:i], password[i+1:]
	if !hmac.Equal([]byte(sig), []byte(c.sign(body))) {
		return "", false
	}
	enc, exp, ok := strings.Cut(body, ".")
	if !ok {
		return "", false
	}
	until, err := strconv.ParseInt(exp, 10, 64)
	if err != nil || time.Now().Unix() > until {
		return "", false
	}
	name, err := base64.RawURLEncoding.DecodeString(enc)
	if err != nil {
		return "", false
	}
	return string(name), true
}

func (c *InternalLogins) sign(body string) string {
	m := hmac.New(sha256.New, c.key)
	m.Write([]byte("berth internal login " + c.User + "\n" + body))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// Subject is the registry subject of a login for repo.
func (c *InternalLogins) Subject(repo, accountID string) registry.Subject {
	return internalSubject(c.User, repo, accountID)
}

// RepoOf returns the repository of a subject made by Subject.
func (c *InternalLogins) RepoOf(subj registry.Subject) (string, bool) {
	return internalRepo(c.User, subj)
}

// Grant is what a login for repo may do of what it asks.
func (c *InternalLogins) Grant(repo string, requested []registry.Access, public func(name string) bool) []registry.Access {
	return c.grant(repo, requested, public)
}

func internalSubject(user, repo, accountID string) registry.Subject {
	return registry.Subject{Name: user + ":" + repo, AccountID: accountID, Internal: true}
}

func internalRepo(user string, subj registry.Subject) (string, bool) {
	if !subj.Internal {
		return "", false
	}
	return strings.CutPrefix(subj.Name, user+":")
}

// BuilderSubject is the registry subject of a build of repo.
func BuilderSubject(repo, accountID string) registry.Subject {
	return internalSubject(BuilderUser, repo, accountID)
}

// BuilderRepo returns the repository a builder subject may push to.
func BuilderRepo(subj registry.Subject) (string, bool) { return internalRepo(BuilderUser, subj) }

// ScannerSubject is the registry subject of the scanner pulling repo.
func ScannerSubject(repo, accountID string) registry.Subject {
	return internalSubject(ScannerUser, repo, accountID)
}

// ScannerRepo returns the repository a scanner subject may pull.
func ScannerRepo(subj registry.Subject) (string, bool) { return internalRepo(ScannerUser, subj) }

// BuilderGrant is what a build of repo may do: pull and push repo, pull PUBLIC repositories.
func BuilderGrant(repo string, requested []registry.Access, public func(name string) bool) []registry.Access {
	var out []registry.Access
	for _, req := range requested {
		if req.Type != "repository" {
			continue
		}
		var acts []string
		for _, a := range req.Actions {
			switch {
			case req.Name == repo && (a == registry.ActionPull || a == registry.ActionPush):
				acts = append(acts, a)
			case req.Name == repo && a == registry.ActionAll:
				acts = append(acts, registry.ActionPull, registry.ActionPush)
			case a == registry.ActionPull && public(req.Name):
				acts = append(acts, a)
			}
		}
		if len(acts) > 0 {
			out = append(out, registry.Access{Type: req.Type, Name: req.Name, Actions: acts})
		}
	}
	return out
}

// ScannerGrant is what the scanner may do: pull repo, nothing else.
func ScannerGrant(repo string, requested []registry.Access) []registry.Access {
	var out []registry.Access
	for _, req := range requested {
		if req.Type != "repository" || req.Name != repo {
			continue
		}
		for _, a := range req.Actions {
			if a == registry.ActionPull || a == registry.ActionAll {
				out = append(out, registry.Access{Type: req.Type, Name: req.Name, Actions: []string{registry.ActionPull}})
				break
			}
		}
	}
	return out
}
