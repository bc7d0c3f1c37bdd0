package server

import (
	"context"
	"errors"

	"github.com/gin-gonic/gin"

	"github.com/berth-dev/berth/store"
	"github.com/berth-dev/berth/webhooks/githost"
)

// The webhook Berth registers at a Git host for a source (SPEC §16). Failures never lose the source: they are
// kept in the source's webhook_error, webhook_registered false, and the source is saved all the same.

// errNoHostCredentials: the source has no account and no token on a known provider.
var errNoHostCredentials = errors.New("no credentials for the Git host's API: connect with account_id, or give a token with a provider other than generic")

// sourceHost is the host API that manages src's webhook and the repository's full name there: the code
// account's, or, for a token on a provider other than generic, the host the clone URL names. nil when the
// source has neither.
func (a *api) sourceHost(ctx context.Context, src *store.Source) (githost.Host, string, error) {
	if src.CodeAccount != "" {
		acct, err := a.Store.GetCodeAccount(ctx, src.CodeAccount)
		if err != nil {
			return nil, "", err
		}
		h, err := a.host(acct)
		return h, src.GitRepository, err
	}
	if src.Provider == "generic" || src.Password == "" {
		return nil, "", nil
	}
	base, name, err := githost.BaseURLFor(src.Provider, src.URL)
	if err != nil {
		return nil, "", err
	}
	token, err := a.Builds.OpenSecret(src.Password)
	if err != nil {
		return nil, "", err
	}
	h, err := githost.New(githost.Account{Provider: src.Provider, BaseURL: base, Username: src.Username, Token: token}, a.hostGuard())
	return h, name, err
}

// syncHostHook makes the host's webhook follow a PUT of the source: old is the source before it (nil when the
// PUT connects it), src after; register is the request's register_webhook. A new source, or one whose Git
// repository changed, gets a hook when register allows it (by default when Berth has host credentials), and
// the old repository's hook is deleted; register false deletes the hook; register true on a source without
// one tries again (updating the hook it still names, which is created again when the host lost it). It
// reports whether it created a hook.
func (a *api) syncHostHook(ctx context.Context, c *gin.Context, old, src *store.Source, register *bool, secret string) bool {
	moved := old == nil || old.URL != src.URL || old.CodeAccount != src.CodeAccount || old.GitRepository != src.GitRepository ||
		old.Provider != src.Provider
	switch {
	case register != nil && !*register:
		if old != nil && old.HostHookID != "" {
			_ = a.dropHostHook(ctx, old)
		}
		src.HostHookID, src.WebhookRegistered, src.WebhookError = "", false, ""
		return false
	case moved:
		if old != nil && old.HostHookID != "" {
			_ = a.dropHostHook(ctx, old) // best effort: it would deliver pushes of the old repository
		}
		src.HostHookID, src.WebhookRegistered, src.WebhookError = "", false, ""
	case register != nil && *register && !src.WebhookRegistered:
	default:
		return false
	}
	host, name, err := a.sourceHost(ctx, src)
	if register == nil && host == nil && err == nil {
		return false // no host credentials: the webhook is configured by hand, as before
	}
	if src.HostHookID != "" { // a hook a failed rotation left with the old secret: give it the new one
		before := src.HostHookID
		a.updateHook(ctx, c, src, secret, host, name, err)
		return src.WebhookRegistered && src.HostHookID != before
	}
	return a.createHook(ctx, c, src, secret, host, name, err)
}

// createHostHook creates src's webhook at the host and records the outcome in src.
func (a *api) createHostHook(ctx context.Context, c *gin.Context, src *store.Source, secret string) bool {
	host, name, err := a.sourceHost(ctx, src)
	return a.createHook(ctx, c, src, secret, host, name, err)
}

// createHook is createHostHook on the host (and its error) sourceHost answered.
func (a *api) createHook(ctx context.Context, c *gin.Context, src *store.Source, secret string, host githost.Host, name string, err error) bool {
	if err == nil && host == nil {
		err = errNoHostCredentials
	}
	var id string
	if err == nil {
		id, err = host.CreateHook(ctx, name, githost.Hook{URL: webhookURL(c, src), Secret: secret})
	}
	if err != nil {
		a.Logger.Warn("registering the webhook at the Git host failed", "repository", src.Repository, "err", err)
		src.HostHookID, src.WebhookRegistered, src.WebhookError = "", false, err.Error()
		return false
	}
	src.HostHookID, src.WebhookRegistered, src.WebhookError = id, true, ""
	return true
}

// updateHostHook gives src's webhook at the host the new secret; a hook deleted at the host is created again.
// A failure keeps the hook's id, so that a later try updates that hook rather than adding another.
func (a *api) updateHostHook(ctx context.Context, c *gin.Context, src *store.Source, secret string) {
	host, name, err := a.sourceHost(ctx, src)
	a.updateHook(ctx, c, src, secret, host, name, err)
}

// updateHook is updateHostHook on the host (and its error) sourceHost answered.
func (a *api) updateHook(ctx context.Context, c *gin.Context, src *store.Source, secret string, host githost.Host, name string, err error) {
	if err == nil && host == nil {
		err = errNoHostCredentials
	}
	var id string
	if err == nil {
		id, err = host.UpdateHook(ctx, name, src.HostHookID, githost.Hook{URL: webhookURL(c, src), Secret: secret})
	}
	if errors.Is(err, githost.ErrNotFound) {
		a.createHook(ctx, c, src, secret, host, name, nil)
		return
	}
	if err != nil {
		a.Logger.Warn("updating the webhook at the Git host failed", "repository", src.Repository, "err", err)
		src.WebhookRegistered, src.WebhookError = false, err.Error()
		return
	}
	src.HostHookID, src.WebhookRegistered, src.WebhookError = id, id != "", ""
}

// dropHostHookDetached is dropHostHook with a deadline of its own, that neither the caller's deadline nor a
// client gone away cuts short: it undoes or finishes what the host was told.
func (a *api) dropHostHookDetached(ctx context.Context, src *store.Source) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), hostTimeout)
	defer cancel()
	return a.dropHostHook(ctx, src)
}

func (a *api) dropHostHook(ctx context.Context, src *store.Source) error {
	host, name, err := a.sourceHost(ctx, src)
	if err == nil && host == nil {
		err = errNoHostCredentials
	}
	if err == nil {
		err = host.DeleteHook(ctx, name, src.HostHookID)
	}
	if err != nil {
		a.Logger.Warn("deleting the webhook at the Git host failed", "repository", src.Repository, "hook", src.HostHookID, "err", err)
	}
	return err
}
