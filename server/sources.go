package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"

	"github.com/gin-gonic/gin"
	"golang.org/x/crypto/ssh"

	"github.com/berth-dev/berth/pipeline"
	"github.com/berth-dev/berth/store"
	"github.com/berth-dev/berth/webhooks/inbound"
)

// BuildService is what the source, build rule, build and webhook routes need beyond the store: sealing
// secrets, starting, matching and canceling builds, asking the Git server for a ref's head. *pipeline.Builds
// implements it.
type BuildService interface {
	SealSecret(secret string) string
	OpenSecret(sealed string) (string, error)
	Start(ctx context.Context, src *store.Source, rule *store.BuildRule, ref pipeline.Ref, trigger string) (*store.Build, error)
	Push(ctx context.Context, src *store.Source, ev *inbound.PushEvent) ([]*store.Build, []pipeline.Skipped, error)
	Seen(ctx context.Context, repo, key string) bool
	Cancel(ctx context.Context, b *store.Build, who string) (*store.Build, error)
	ResolveHead(ctx context.Context, src *store.Source, refType, name string) (string, error)
	// SourceByHook finds the source of a webhook id (store.SourceByHook, remembered for a moment).
	SourceByHook(ctx context.Context, hookID string) (*store.Source, error)
	// Forget makes the next webhook of repo read its source and build rules again; call it after changing them
	// or the source, and after deleting repo.
	Forget(repo string)
}

// Source field limits.
const (
	MaxCloneURL   = 2048
	MaxGitSecret  = 4096
	MaxSSHKey     = 16 << 10
	MaxGitUser    = 255
	webhookSecret = 32 // random bytes, hex-encoded
)

// sourceView is a code source as the API shows it (SPEC §11): never its credentials; the webhook secret only
// in the answer to PUT.
type sourceView struct {
	Provider      string `json:"provider"`
	URL           string `json:"url"`
	Username      string `json:"username"`
	AutoBuild     bool   `json:"auto_build"`
	OverseasBuild bool   `json:"overseas_build"`
	NoCache       bool   `json:"no_cache"`
	WebhookURL    string `json:"webhook_url"`
	WebhookSecret string `json:"webhook_secret,omitempty"`
}

func (a *api) viewSource(s *store.Source) sourceView {
	return sourceView{Provider: s.Provider, URL: s.URL, Username: s.Username, AutoBuild: s.AutoBuild,
		OverseasBuild: s.OverseasBuild, NoCache: s.NoCache, WebhookURL: a.PublicURL + "/hooks/" + s.HookID}
}

func (a *api) buildsOr503(c *gin.Context) bool {
	if a.Builds == nil {
		fail(c, errf(http.StatusServiceUnavailable, CodeUnavailable, "builds are not available on this instance"))
		return false
	}
	return true
}

func (a *api) putSource(c *gin.Context) {
	var req struct {
		Provider      *string `json:"provider"`
		URL           *string `json:"url"`
		Username      *string `json:"username"`
		Token         *string `json:"token"`
		Password      *string `json:"password"`
		SSHKey        *string `json:"ssh_key"`
		AutoBuild     *bool   `json:"auto_build"`
		OverseasBuild *bool   `json:"overseas_build"`
		NoCache       *bool   `json:"no_cache"`
	}
	if err := bindJSON(c, &req); err != nil {
		fail(c, err)
		return
	}
	if !a.buildsOr503(c) {
		return
	}
	r, ok := a.repositoryOr404(c)
	if !ok {
		return
	}
	ctx := c.Request.Context()
	src, err := a.Store.GetSource(ctx, r.FullName)
	switch {
	case errors.Is(err, store.ErrNotFound):
		if req.Provider == nil || req.URL == nil {
			fail(c, badRequest("provider and url are required to connect a repository (provider: one of %s)", strings.Join(inbound.Providers, ", ")))
			return
		}
		src = &store.Source{Repository: r.FullName, AutoBuild: true}
		var b [webhookSecret]byte
		_, _ = rand.Read(b[:])
		src.WebhookSecret = a.Builds.SealSecret(hex.EncodeToString(b[:]))
	case err != nil:
		fail(c, err)
		return
	}
	if req.Provider != nil {
		if !slices.Contains(inbound.Providers, *req.Provider) {
			fail(c, badRequest("provider must be one of %s, got %q", strings.Join(inbound.Providers, ", "), *req.Provider))
			return
		}
		src.Provider = *req.Provider
	}
	if req.URL != nil {
		if err := checkCloneURL(*req.URL); err != nil {
			fail(c, err)
			return
		}
		if strings.HasPrefix(*req.URL, "file:") && !principal(c).Admin {
			fail(c, errf(http.StatusForbidden, CodeForbidden,
				"a file:// source reads a repository on the Berth host's own disk: only the administrator may connect one"))
			return
		}
		src.URL = *req.URL
	}
	if req.Username != nil {
		if len(*req.Username) > MaxGitUser || strings.ContainsFunc(*req.Username, isControlOrSpace) {
			fail(c, badRequest("username must be at most %d characters without spaces or control characters", MaxGitUser))
			return
		}
		src.Username = *req.Username
	}
	if req.Token != nil && req.Password != nil {
		fail(c, badRequest("give token or password, not both (a token is sent as the password)"))
		return
	}
	for _, secret := range []*string{req.Token, req.Password} {
		if secret == nil {
			continue
		}
		if len(*secret) > MaxGitSecret || strings.ContainsFunc(*secret, isControlOrSpace) {
			fail(c, badRequest("token/password must be at most %d characters without spaces or control characters", MaxGitSecret))
			return
		}
		src.Password = a.Builds.SealSecret(*secret)
	}
	if req.SSHKey != nil {
		if *req.SSHKey != "" {
			if err := checkSSHKey(*req.SSHKey); err != nil {
				fail(c, err)
				return
			}
		}
		src.SSHKey = a.Builds.SealSecret(*req.SSHKey)
	}
	if src.SSHKey != "" && !isSSHURL(src.URL) {
		fail(c, badRequest("ssh_key is only used with ssh:// or scp-style (git@host:path) URLs; clear it with \"ssh_key\": \"\" or use an ssh URL"))
		return
	}
	if req.AutoBuild != nil {
		src.AutoBuild = *req.AutoBuild
	}
	if req.OverseasBuild != nil {
		src.OverseasBuild = *req.OverseasBuild
	}
	if req.NoCache != nil {
		src.NoCache = *req.NoCache
	}
	created, err := a.Store.PutSource(ctx, src)
	a.Builds.Forget(r.FullName)
	if errors.Is(err, store.ErrNotFound) {
		fail(c, notFound("repository %s does not exist", r.FullName))
		return
	}
	if err != nil {
		fail(c, err)
		return
	}
	v := a.viewSource(src)
	// The secret to configure on the Git host; GET never shows it.
	if v.WebhookSecret, err = a.Builds.OpenSecret(src.WebhookSecret); err != nil {
		fail(c, err)
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	c.JSON(status, v)
}

func (a *api) getSource(c *gin.Context) {
	r, ok := a.repositoryOr404(c)
	if !ok {
		return
	}
	src, err := a.Store.GetSource(c.Request.Context(), r.FullName)
	if errors.Is(err, store.ErrNotFound) {
		fail(c, notFound("%s has no code source; connect one with PUT …/source", r.FullName))
		return
	}
	if err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusOK, a.viewSource(src))
}

func (a *api) deleteSource(c *gin.Context) {
	r, ok := a.repositoryOr404(c)
	if !ok {
		return
	}
	err := a.Store.DeleteSource(c.Request.Context(), r.FullName)
	if a.Builds != nil {
		a.Builds.Forget(r.FullName)
	}
	if errors.Is(err, store.ErrNotFound) {
		fail(c, notFound("%s has no code source", r.FullName))
		return
	}
	if err != nil {
		fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

var scpURL = regexp.MustCompile(`^[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:[^/\\][^\\]*$|^[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:/[^\\]*$`)

// checkCloneURL accepts https://, http://, ssh://, scp-style user@host:path, and file:// (a repository on the
// Berth host). Credentials belong in token/password/ssh_key, never in the URL, where they would be shown.
func checkCloneURL(raw string) error {
	if raw == "" || len(raw) > MaxCloneURL || strings.ContainsFunc(raw, isControlOrSpace) {
		return badRequest("url must be 1 to %d characters without spaces or control characters", MaxCloneURL)
	}
	if !strings.Contains(raw, "://") {
		if scpURL.MatchString(raw) {
			return nil
		}
		return badRequest("url %q is not a clone URL: use https://host/path, ssh://user@host/path, user@host:path or file:///path", raw)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return badRequest("url is not a valid URL: %v", err)
	}
	if _, hasPassword := u.User.Password(); hasPassword {
		return badRequest("url must not carry a password: give it as token or password, which are stored encrypted and never shown")
	}
	switch u.Scheme {
	case "https", "http", "ssh":
		if u.Host == "" || u.Path == "" || u.Path == "/" {
			return badRequest("url %q needs a host and a repository path", raw)
		}
	case "file":
		if u.Host != "" || !strings.HasPrefix(u.Path, "/") {
			return badRequest("a file URL must be file:///absolute/path on the Berth host")
		}
	default:
		return badRequest("url scheme %q is not supported: use https, http, ssh or file", u.Scheme)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return badRequest("url must not have a query or a fragment")
	}
	return nil
}

func isSSHURL(raw string) bool {
	return strings.HasPrefix(raw, "ssh://") || (!strings.Contains(raw, "://") && scpURL.MatchString(raw))
}

func checkSSHKey(key string) error {
	if len(key) > MaxSSHKey {
		return badRequest("ssh_key is %d bytes; at most %d are allowed", len(key), MaxSSHKey)
	}
	_, err := ssh.ParseRawPrivateKey([]byte(key))
	var missing *ssh.PassphraseMissingError
	switch {
	case errors.As(err, &missing):
		return badRequest("ssh_key is protected by a passphrase; give a key without one (a deploy key)")
	case err != nil:
		return badRequest("ssh_key is not a PEM or OpenSSH private key: %v", err)
	}
	return nil
}

func isControlOrSpace(r rune) bool { return r <= ' ' || r == 0x7f }
