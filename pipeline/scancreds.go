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

// ScannerUser is the registry login of the vulnerability scanner. Like BuilderUser it is not a valid user name.
const ScannerUser = "$berth-scanner"

// ScanCredentials issues and checks the short-lived logins the scanner pulls an image with. The scanner (Trivy's
// registry client) trades them for a token at /token like any client, so they are a login: user ScannerUser,
// password "<repo>.<expiry>.<HMAC>", which grants pull on that one repository and nothing else. The key is
// derived from the instance's master key, so every process of the instance shares it.
type ScanCredentials struct {
	key []byte
}

// NewScanCredentials returns credentials signed with key (e.g. secretbox.Box.Derive("scan-credentials")).
func NewScanCredentials(key []byte) *ScanCredentials { return &ScanCredentials{key: key} }

// Issue returns a pull login for repo (namespace/name) valid for ttl.
func (c *ScanCredentials) Issue(repo string, ttl time.Duration) (username, password string) {
	body := base64.RawURLEncoding.EncodeToString([]byte(repo)) + "." + strconv.FormatInt(time.Now().Add(ttl).Unix(), 10)
	return ScannerUser, body + "." + c.sign(body)
}

// Verify returns the repository a login was issued for, if it is one of ours and has not expired.
func (c *ScanCredentials) Verify(username, password string) (repo string, ok bool) {
	if username != ScannerUser || len(password) > 1024 {
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

func (c *ScanCredentials) sign(body string) string {
	m := hmac.New(sha256.New, c.key)
	m.Write([]byte("berth scan credentials\n" + body))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// ScannerSubject is the registry subject of the scanner pulling from repo.
func ScannerSubject(repo, accountID string) registry.Subject {
	return registry.Subject{Name: ScannerUser + ":" + repo, AccountID: accountID, Internal: true}
}

// ScannerRepo returns the repository a scanner subject may pull from.
func ScannerRepo(subj registry.Subject) (string, bool) {
	if !subj.Internal {
		return "", false
	}
	return strings.CutPrefix(subj.Name, ScannerUser+":")
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
