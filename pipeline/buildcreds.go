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

// BuilderUser is the registry login of builds. It is not a valid user name, so it never shadows a user.
const BuilderUser = "$berth-builder"

// BuildCredentials issues and checks the short-lived registry credentials a build pushes with. BuildKit asks
// for credentials per registry host and fetches tokens from /token with them (Basic auth), so they are a
// login, not a bearer token: user BuilderUser, password "<repo>.<expiry>.<HMAC>". The key is derived from the
// instance's master key, so every process of the instance (serve replicas, remote workers) shares it.
type BuildCredentials struct {
	key []byte
}

// NewBuildCredentials returns credentials signed with key (e.g. secretbox.Box.Derive("build-credentials")).
func NewBuildCredentials(key []byte) *BuildCredentials { return &BuildCredentials{key: key} }

// Issue returns a login for repo (namespace/name) valid for ttl.
func (c *BuildCredentials) Issue(repo string, ttl time.Duration) (username, password string) {
	body := base64.RawURLEncoding.EncodeToString([]byte(repo)) + "." + strconv.FormatInt(time.Now().Add(ttl).Unix(), 10)
	return BuilderUser, body + "." + c.sign(body)
}

// Verify returns the repository a login was issued for, if it is one of ours and has not expired.
func (c *BuildCredentials) Verify(username, password string) (repo string, ok bool) {
	if username != BuilderUser || len(password) > 1024 {
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

func (c *BuildCredentials) sign(body string) string {
	m := hmac.New(sha256.New, c.key)
	m.Write([]byte("berth build credentials\n" + body))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// BuilderSubject is the registry subject of a build of repo.
func BuilderSubject(repo, accountID string) registry.Subject {
	return registry.Subject{Name: BuilderUser + ":" + repo, AccountID: accountID, Internal: true}
}

// BuilderRepo returns the repository a builder subject may push to.
func BuilderRepo(subj registry.Subject) (string, bool) {
	if !subj.Internal {
		return "", false
	}
	return strings.CutPrefix(subj.Name, BuilderUser+":")
}

// BuilderGrant is what a build of repo may do in the registry: pull and push its own repository (the image
// and its build cache), and pull public repositories (base images). Private images of other repositories
// stay out of reach, whoever wrote the Dockerfile.
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
