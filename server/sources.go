package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"golang.org/x/crypto/ssh"

	"github.com/berth-dev/berth/pipeline"
	"github.com/berth-dev/berth/server/forwarded"
	"github.com/berth-dev/berth/store"
	"github.com/berth-dev/berth/webhooks/inbound"
	"github.com/berth-dev/berth/webhooks/outbound"
	"github.com/berth-dev/berth/workers/gitclone"
)

// BuildService is what the source, build rule, build and webhook routes need beyond the store: sealing
// secrets, starting, matching and canceling builds, asking the Git server for a ref's head. *pipeline.Builds
// implements it.
type BuildService interface {
	SealSecret(secret string) string
	OpenSecret(sealed string) (string, error)
	Start(ctx context.Context, src *store.Source, rule *store.BuildRule, ref pipeline.Ref, trigger string) (*store.Build, error)
	Seen(ctx context.Context, repo, key string) bool
	// Push starts the builds of a delivery Seen let through under keys; Failed lets its retry through after a
	// failure.
	Push(ctx context.Context, src *store.Source, ev *inbound.PushEvent, keys []string) ([]*store.Build, []pipeline.Skipped, error)
	Failed(ctx context.Context, repo string, keys ...string)
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
	MaxCloneURL   = gitclone.MaxSourceURL
	MaxGitSecret  = 4096
	MaxSSHKey     = 16 << 10
	MaxGitUser    = 255
	webhookSecret = 32 // random bytes, hex-encoded
)

// sourceView is a code source as the API shows it (SPEC §11, §13): never its credentials; the webhook secret
// only in the answer that made it (the PUT that connected the source, or rotate-secret).
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

func viewSource(c *gin.Context, s *store.Source) sourceView {
	return sourceView{Provider: s.Provider, URL: s.URL, Username: s.Username, AutoBuild: s.AutoBuild,
		OverseasBuild: s.OverseasBuild, NoCache: s.NoCache, WebhookURL: forwarded.PublicURL(c.Request) + "/hooks/" + s.HookID}
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
	var secret string // set when this request makes the webhook secret: then, and only then, it is shown
	src, err := a.Store.GetSource(ctx, r.FullName)
	switch {
	case errors.Is(err, store.ErrNotFound):
		if req.Provider == nil || req.URL == nil {
			fail(c, badRequest("provider and url are required to connect a repository (provider: one of %s)", strings.Join(inbound.Providers, ", ")))
			return
		}
		src = &store.Source{Repository: r.FullName, AutoBuild: true}
		src.WebhookSecret, secret = a.newWebhookSecret()
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
		admin := principal(c).Admin
		if err := a.checkCloneURL(ctx, *req.URL, admin); err != nil {
			fail(c, err)
			return
		}
		src.URL, src.AdminURL = *req.URL, admin
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
	// The secret to configure on the Git host, shown once; a later PUT or GET never shows it.
	v := viewSource(c, src)
	v.WebhookSecret = secret
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	c.JSON(status, v)
}

// newWebhookSecret makes a webhook secret: sealed for the store, and in the clear to show once.
func (a *api) newWebhookSecret() (sealed, secret string) {
	var b [webhookSecret]byte
	_, _ = rand.Read(b[:])
	secret = hex.EncodeToString(b[:])
	return a.Builds.SealSecret(secret), secret
}

// sourceOr404 is the code source of the route's repository; else the answer is written.
func (a *api) sourceOr404(c *gin.Context) (*store.Source, bool) {
	r, ok := a.repositoryOr404(c)
	if !ok {
		return nil, false
	}
	src, err := a.Store.GetSource(c.Request.Context(), r.FullName)
	if errors.Is(err, store.ErrNotFound) {
		fail(c, notFound("%s has no code source; connect one with PUT …/source", r.FullName))
		return nil, false
	}
	if err != nil {
		fail(c, err)
		return nil, false
	}
	return src, true
}

func (a *api) getSource(c *gin.Context) {
	if src, ok := a.sourceOr404(c); ok {
		c.JSON(http.StatusOK, viewSource(c, src))
	}
}

// rotateSourceSecret replaces the webhook secret and answers the new one, this once (SPEC §13, §16). Deliveries
// signed with the old secret are refused from now on.
func (a *api) rotateSourceSecret(c *gin.Context) {
	if !a.buildsOr503(c) {
		return
	}
	src, ok := a.sourceOr404(c)
	if !ok {
		return
	}
	var secret string
	src.WebhookSecret, secret = a.newWebhookSecret()
	_, err := a.Store.PutSource(c.Request.Context(), src)
	a.Builds.Forget(src.Repository)
	if err != nil {
		fail(c, err)
		return
	}
	v := viewSource(c, src)
	v.WebhookSecret = secret
	c.JSON(http.StatusOK, v)
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

// checkCloneURL applies gitclone.CheckSource, the one place that judges a source URL (on its parsed,
// normalised form), and words its refusals for the API.
func (a *api) checkCloneURL(ctx context.Context, raw string, admin bool) error {
	guard := a.SourceGuard
	if guard == nil {
		guard = &outbound.Guard{Flag: gitclone.SourceAllowFlag}
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second) // a name that does not resolve by then is checked at clone time
	defer cancel()
	_, err := gitclone.CheckSource(ctx, raw, admin, guard)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, gitclone.ErrLocalSource):
		return errf(http.StatusForbidden, CodeForbidden,
			"a file:// source reads a repository on the Berth host's own disk: only the administrator may connect one")
	case errors.Is(err, outbound.ErrRefused):
		return errf(http.StatusForbidden, CodeForbidden,
			"url: Berth does not connect to this host for you: %v; ask the operator to start Berth with %s for a self-hosted Git server on a private network",
			strings.TrimPrefix(err.Error(), "refused: "), gitclone.SourceAllowFlag)
	default:
		return badRequest("%s", strings.TrimPrefix(err.Error(), gitclone.ErrInvalidURL.Error()+": "))
	}
}

func isSSHURL(raw string) bool {
	r, err := gitclone.ParseRemote(raw)
	return err == nil && r.Scheme == "ssh"
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
