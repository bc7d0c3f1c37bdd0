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
	"github.com/berth-dev/berth/policies"
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
	// Refs asks the source's Git server for its branches and tags (bounded: gitclone.MaxRefs of each).
	Refs(ctx context.Context, src *store.Source) (*gitclone.Refs, error)
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
	AccountID     string `json:"account_id,omitempty"` // the code account it was connected with (SPEC §16)
	Repository    string `json:"repository,omitempty"` // owner/name on the host, with account_id
	AutoBuild     bool   `json:"auto_build"`
	OverseasBuild bool   `json:"overseas_build"`
	NoCache       bool   `json:"no_cache"`
	WebhookURL    string `json:"webhook_url"`
	WebhookSecret string `json:"webhook_secret,omitempty"`
	// WebhookRegistered: Berth created the webhook at the host through its API, with the current secret;
	// WebhookError says why not when it tried and failed.
	WebhookRegistered bool   `json:"webhook_registered"`
	WebhookError      string `json:"webhook_error"`
}

func viewSource(c *gin.Context, s *store.Source) sourceView {
	return sourceView{Provider: s.Provider, URL: s.URL, Username: s.Username, AccountID: s.CodeAccount, Repository: s.GitRepository,
		AutoBuild: s.AutoBuild, OverseasBuild: s.OverseasBuild, NoCache: s.NoCache, WebhookURL: webhookURL(c, s),
		WebhookRegistered: s.WebhookRegistered, WebhookError: s.WebhookError}
}

func webhookURL(c *gin.Context, s *store.Source) string {
	return forwarded.PublicURL(c.Request) + "/hooks/" + s.HookID
}

func (a *api) buildsOr503(c *gin.Context) bool {
	if a.Builds == nil {
		fail(c, errf(http.StatusServiceUnavailable, CodeUnavailable, "builds are not available on this instance"))
		return false
	}
	return true
}

// sourceRequest is the body of PUT …/source: a URL and credentials, or a code account and a repository on it.
type sourceRequest struct {
	Provider        *string `json:"provider"`
	URL             *string `json:"url"`
	Username        *string `json:"username"`
	Token           *string `json:"token"`
	Password        *string `json:"password"`
	SSHKey          *string `json:"ssh_key"`
	AccountID       *string `json:"account_id"`
	Repository      *string `json:"repository"`
	AutoBuild       *bool   `json:"auto_build"`
	OverseasBuild   *bool   `json:"overseas_build"`
	NoCache         *bool   `json:"no_cache"`
	RegisterWebhook *bool   `json:"register_webhook"`
}

func (a *api) putSource(c *gin.Context) {
	var req sourceRequest
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
	// The Git host's calls share hostTimeout; the store's do not, so a slow host cannot fail the save.
	ctx := c.Request.Context()
	hctx, cancel := context.WithTimeout(ctx, hostTimeout)
	defer cancel()
	var secret string // set when this request makes the webhook secret: then, and only then, it is shown
	var old *store.Source
	src, err := a.Store.GetSource(ctx, r.FullName)
	switch {
	case errors.Is(err, store.ErrNotFound):
		if (req.Provider == nil || req.URL == nil) && (req.AccountID == nil || *req.AccountID == "") {
			fail(c, badRequest("provider and url, or account_id and repository, are required to connect a repository (provider: one of %s)", strings.Join(inbound.Providers, ", ")))
			return
		}
		// The hook id is known before the source is saved: the webhook registered at the host carries it.
		src = &store.Source{Repository: r.FullName, AutoBuild: true, HookID: store.NewHookID()}
		src.WebhookSecret, secret = a.newWebhookSecret()
	case err != nil:
		fail(c, err)
		return
	default:
		o := *src
		old = &o
	}
	if err := a.applySourceRequest(hctx, c, src, &req); err != nil {
		fail(c, err)
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
	if secret == "" {
		if secret, err = a.Builds.OpenSecret(src.WebhookSecret); err != nil {
			fail(c, err)
			return
		}
	}
	registered := a.syncHostHook(hctx, c, old, src, req.RegisterWebhook, secret)
	created, err := a.Store.PutSource(ctx, src)
	a.Builds.Forget(r.FullName)
	if err != nil && registered {
		a.dropHostHookDetached(ctx, src) // the hook would lead nowhere
	}
	switch {
	case errors.Is(err, store.ErrNotFound):
		fail(c, notFound("repository %s does not exist", r.FullName))
		return
	case errors.Is(err, store.ErrNoCodeAccount):
		fail(c, badRequest("account_id %q: the code account was deleted meanwhile", src.CodeAccount))
		return
	case err != nil:
		fail(c, err)
		return
	}
	// The secret to configure on the Git host, shown once; a later PUT or GET never shows it.
	v := viewSource(c, src)
	status := http.StatusOK
	if created {
		v.WebhookSecret = secret
		status = http.StatusCreated
	}
	c.JSON(status, v)
}

// applySourceRequest changes src as req asks: the Git repository by URL and credentials, or by code account
// and repository (whose clone URL and credentials the account gives).
func (a *api) applySourceRequest(ctx context.Context, c *gin.Context, src *store.Source, req *sourceRequest) error {
	p := principal(c)
	admin := p.Admin
	if req.AccountID != nil && *req.AccountID != "" || req.Repository != nil && req.URL == nil {
		return a.applyAccountSource(ctx, src, req, p)
	}
	if src.CodeAccount != "" {
		creds := req.Username != nil || req.Token != nil || req.Password != nil || req.SSHKey != nil
		same := req.URL != nil && *req.URL == src.URL && (req.Provider == nil || *req.Provider == src.Provider)
		switch {
		case same && !creds:
			return nil // the same url and provider again (a settings form sends them): settings only
		case req.URL != nil: // connected by URL from now on: the account's credentials go with it
			src.CodeAccount, src.GitRepository, src.Username, src.Password, src.SSHKey = "", "", "", "", ""
		case req.Provider != nil || creds:
			return badRequest("this source's provider and credentials are its code account's: give url (and credentials) to connect it without the account, or account_id and repository")
		default:
			return nil // settings only
		}
	}
	if req.Provider != nil {
		if !slices.Contains(inbound.Providers, *req.Provider) {
			return badRequest("provider must be one of %s, got %q", strings.Join(inbound.Providers, ", "), *req.Provider)
		}
		src.Provider = *req.Provider
	}
	if req.URL != nil {
		if err := a.checkCloneURL(ctx, *req.URL, admin); err != nil {
			return err
		}
		src.URL, src.AdminURL = *req.URL, admin
	}
	if req.Username != nil {
		if len(*req.Username) > MaxGitUser || strings.ContainsFunc(*req.Username, isControlOrSpace) {
			return badRequest("username must be at most %d characters without spaces or control characters", MaxGitUser)
		}
		src.Username = *req.Username
	}
	if req.Token != nil && req.Password != nil {
		return badRequest("give token or password, not both (a token is sent as the password)")
	}
	for _, secret := range []*string{req.Token, req.Password} {
		if secret == nil {
			continue
		}
		if len(*secret) > MaxGitSecret || strings.ContainsFunc(*secret, isControlOrSpace) {
			return badRequest("token/password must be at most %d characters without spaces or control characters", MaxGitSecret)
		}
		src.Password = a.Builds.SealSecret(*secret)
	}
	if req.SSHKey != nil {
		if *req.SSHKey != "" {
			if err := checkSSHKey(*req.SSHKey); err != nil {
				return err
			}
		}
		src.SSHKey = a.Builds.SealSecret(*req.SSHKey)
	}
	if src.SSHKey != "" && !isSSHURL(src.URL) {
		return badRequest("ssh_key is only used with ssh:// or scp-style (git@host:path) URLs; clear it with \"ssh_key\": \"\" or use an ssh URL")
	}
	return nil
}

// applyAccountSource points src at repository req.Repository of code account req.AccountID (or of its own
// account): the host says the clone URL; the account gives the provider and the credentials.
func (a *api) applyAccountSource(ctx context.Context, src *store.Source, req *sourceRequest, p *Principal) error {
	// A source by account clones and registers hooks with the account's token: who connects one must be
	// allowed to use the account, not only to change this repository's source.
	if !p.Can(policies.ActionGetCodeAccount, "*") {
		return errf(http.StatusForbidden, CodeForbidden,
			"%s is not allowed %s on *: connecting by code account uses its token; ask an administrator to attach a policy that allows it",
			p.Name, policies.ActionGetCodeAccount)
	}
	if req.URL != nil || req.Username != nil || req.Token != nil || req.Password != nil || req.SSHKey != nil {
		return badRequest("account_id takes the url and the credentials from the code account: give repository, not url, username, token, password or ssh_key")
	}
	id := src.CodeAccount
	if req.AccountID != nil {
		id = *req.AccountID
	}
	if id == "" {
		return badRequest("repository names a repository of a code account: give account_id too (or url to connect by URL)")
	}
	name := src.GitRepository
	if req.Repository != nil {
		name = strings.Trim(*req.Repository, "/")
	} else if id != src.CodeAccount {
		name = ""
	}
	if name == "" {
		return badRequest("repository (owner/name on the Git host) is required with account_id; list them with GET /api/v1/code-accounts/%s/repositories", id)
	}
	acct, err := a.Store.GetCodeAccount(ctx, id)
	if errors.Is(err, store.ErrNotFound) || (err == nil && acct.AccountID != a.AccountID) {
		return badRequest("account_id %q: no such code account; list them with GET /api/v1/code-accounts", id)
	}
	if err != nil {
		return err
	}
	if req.Provider != nil && *req.Provider != acct.Provider {
		return badRequest("provider %q differs from the code account's %q; leave it out", *req.Provider, acct.Provider)
	}
	host, err := a.host(acct)
	if err != nil {
		return hostFailure(err)
	}
	repo, err := host.Repository(ctx, name)
	if err != nil {
		return hostFailure(err)
	}
	if repo.CloneURL == "" {
		return errf(http.StatusUnprocessableEntity, CodeInvalidArgument, "the Git host shows no https clone URL for %s", name)
	}
	// The clone URL is the Git host's word, not the administrator's: it stays confined by the source guard
	// (--source-allow-cidr), as the account's API calls are.
	if err := a.checkCloneURL(ctx, repo.CloneURL, false); err != nil {
		return err
	}
	src.Provider, src.URL, src.AdminURL = acct.Provider, repo.CloneURL, false
	src.Username, src.Password, src.SSHKey = acct.Username, acct.Token, ""
	if src.Username == "" {
		src.Username = acct.Login // Gitea and GitLab take the token's own user with it
	}
	src.CodeAccount, src.GitRepository = acct.ID, repo.FullName
	return nil
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
// signed with the old secret are refused from now on. The webhook Berth registered at the host gets the new
// secret (and one that failed to register is tried again).
func (a *api) rotateSourceSecret(c *gin.Context) {
	if !a.buildsOr503(c) {
		return
	}
	src, ok := a.sourceOr404(c)
	if !ok {
		return
	}
	hctx, cancel := context.WithTimeout(c.Request.Context(), hostTimeout)
	defer cancel()
	var secret string
	src.WebhookSecret, secret = a.newWebhookSecret()
	switch {
	case src.HostHookID != "":
		a.updateHostHook(hctx, c, src, secret)
	case src.WebhookError != "":
		a.createHostHook(hctx, c, src, secret)
	}
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

// deleteSource disconnects the repository and deletes the webhook Berth registered at the host. A host that
// refuses does not keep the source: the answer's Warning header says the hook is left there.
func (a *api) deleteSource(c *gin.Context) {
	r, ok := a.repositoryOr404(c)
	if !ok {
		return
	}
	ctx := c.Request.Context()
	src, err := a.Store.GetSource(ctx, r.FullName)
	if err == nil && src.HostHookID != "" && a.Builds != nil {
		if herr := a.dropHostHookDetached(ctx, src); herr != nil {
			c.Header("Warning", `199 berth "the webhook at the Git host was not deleted: `+strings.ReplaceAll(herr.Error(), `"`, `'`)+`"`)
		}
	}
	if err == nil {
		err = a.Store.DeleteSource(ctx, r.FullName)
	}
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

// getSourceRefs answers the source's branches and tags from its Git server (SPEC §16), for pickers.
func (a *api) getSourceRefs(c *gin.Context) {
	if !a.buildsOr503(c) {
		return
	}
	src, ok := a.sourceOr404(c)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), resolveTimeout)
	defer cancel()
	refs, err := a.Builds.Refs(ctx, src)
	if err != nil {
		fail(c, gitServerFailure(ctx, err, "the branches and tags"))
		return
	}
	c.JSON(http.StatusOK, refs)
}

// checkCloneURL applies gitclone.CheckSource, the one place that judges a source URL (on its parsed,
// normalised form), and words its refusals for the API.
func (a *api) checkCloneURL(ctx context.Context, raw string, admin bool) error {
	guard := a.hostGuard()
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
