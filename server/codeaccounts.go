package server

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/berth-dev/berth/store"
	"github.com/berth-dev/berth/webhooks/githost"
	"github.com/berth-dev/berth/webhooks/outbound"
	"github.com/berth-dev/berth/workers/gitclone"
)

// codeAccountView is a code account as the API shows it (SPEC §16): never its token.
type codeAccountView struct {
	ID        string    `json:"id"`
	Provider  string    `json:"provider"`
	BaseURL   string    `json:"base_url"`
	Username  string    `json:"username"`
	Login     string    `json:"login"` // whom the host said the token belongs to
	CreatedBy string    `json:"created_by"`
	CreatedAt time.Time `json:"created_at"`
}

func viewCodeAccount(a *store.CodeAccount) codeAccountView {
	return codeAccountView{ID: a.ID, Provider: a.Provider, BaseURL: a.BaseURL, Username: a.Username, Login: a.Login,
		CreatedBy: a.CreatedBy, CreatedAt: a.CreatedAt}
}

// hostTimeout bounds one API request's calls to a Git host (each call is bounded by githost.Timeout too).
const hostTimeout = 45 * time.Second

func (a *api) createCodeAccount(c *gin.Context) {
	var req struct {
		Provider string `json:"provider"`
		BaseURL  string `json:"base_url"`
		Username string `json:"username"`
		Token    string `json:"token"`
	}
	if err := bindJSON(c, &req); err != nil {
		fail(c, err)
		return
	}
	if !a.buildsOr503(c) {
		return
	}
	if !slices.Contains(githost.Providers, req.Provider) {
		fail(c, badRequest("provider must be one of %s, got %q", strings.Join(githost.Providers, ", "), req.Provider))
		return
	}
	base, err := githost.CheckBaseURL(req.Provider, req.BaseURL)
	if err != nil {
		fail(c, badRequest("%v", err))
		return
	}
	if len(req.Username) > MaxGitUser || strings.ContainsFunc(req.Username, isControlOrSpace) {
		fail(c, badRequest("username must be at most %d characters without spaces or control characters", MaxGitUser))
		return
	}
	if req.Token == "" || len(req.Token) > MaxGitSecret || strings.ContainsFunc(req.Token, isControlOrSpace) {
		fail(c, badRequest("token is required: at most %d characters without spaces or control characters (Bitbucket: an app password, with username)", MaxGitSecret))
		return
	}
	acct := &store.CodeAccount{AccountID: a.AccountID, Provider: req.Provider, BaseURL: base, Username: req.Username,
		Token: a.Builds.SealSecret(req.Token)}
	if p := principal(c); p != nil {
		acct.CreatedBy = p.Name
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), hostTimeout)
	defer cancel()
	host, err := a.hostFor(acct, req.Token)
	if err == nil {
		acct.Login, err = host.User(ctx) // the token is checked against the host before it is kept
	}
	if err != nil {
		fail(c, hostFailure(err))
		return
	}
	if err := a.Store.CreateCodeAccount(c.Request.Context(), acct); err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusCreated, viewCodeAccount(acct))
}

func (a *api) listCodeAccounts(c *gin.Context) {
	p, err := page(c)
	if err != nil {
		fail(c, err)
		return
	}
	items, total, err := a.Store.ListCodeAccounts(c.Request.Context(), a.AccountID, p)
	if err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusOK, list(items, total, p, viewCodeAccount))
}

// codeAccountOr404 loads the code account :id of this instance's main account.
func (a *api) codeAccountOr404(c *gin.Context) (*store.CodeAccount, bool) {
	acct, err := a.Store.GetCodeAccount(c.Request.Context(), c.Param("id"))
	if errors.Is(err, store.ErrNotFound) || (err == nil && acct.AccountID != a.AccountID) {
		fail(c, notFound("code account %q does not exist; list them with GET /api/v1/code-accounts", c.Param("id")))
		return nil, false
	}
	if err != nil {
		fail(c, err)
		return nil, false
	}
	return acct, true
}

func (a *api) getCodeAccount(c *gin.Context) {
	if acct, ok := a.codeAccountOr404(c); ok {
		c.JSON(http.StatusOK, viewCodeAccount(acct))
	}
}

func (a *api) deleteCodeAccount(c *gin.Context) {
	acct, ok := a.codeAccountOr404(c)
	if !ok {
		return
	}
	err := a.Store.DeleteCodeAccount(c.Request.Context(), acct.ID)
	var inUse *store.InUseError
	switch {
	case errors.As(err, &inUse):
		fail(c, errf(http.StatusConflict, CodeConflict, "%v", inUse))
	case errors.Is(err, store.ErrNotFound):
		fail(c, notFound("code account %q does not exist", acct.ID))
	case err != nil:
		fail(c, err)
	default:
		c.Status(http.StatusNoContent)
	}
}

// listCodeAccountRepositories answers one page of the repositories the account's token sees, as the host
// pages them: {"items": [{full_name, clone_url, default_branch, private}], "page", "next_page"}.
func (a *api) listCodeAccountRepositories(c *gin.Context) {
	if !a.buildsOr503(c) {
		return
	}
	acct, ok := a.codeAccountOr404(c)
	if !ok {
		return
	}
	pg := 1
	if v := c.Query("page"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 100_000 {
			fail(c, badRequest("page must be a whole number from 1 to 100000, got %q", v))
			return
		}
		pg = n
	}
	q := c.Query("q")
	if len(q) > githost.MaxQuery || strings.ContainsFunc(q, func(r rune) bool { return r < ' ' || r == 0x7f }) {
		fail(c, badRequest("q must be at most %d characters without control characters", githost.MaxQuery))
		return
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), hostTimeout)
	defer cancel()
	host, err := a.host(acct)
	if err != nil {
		fail(c, hostFailure(err))
		return
	}
	p, err := host.Repositories(ctx, q, pg)
	if err != nil {
		fail(c, hostFailure(err))
		return
	}
	c.JSON(http.StatusOK, p)
}

// host is the Git host API of a code account, reached through the source guard (--source-allow-cidr).
func (a *api) host(acct *store.CodeAccount) (githost.Host, error) {
	token, err := a.Builds.OpenSecret(acct.Token)
	if err != nil {
		return nil, err
	}
	return a.hostFor(acct, token)
}

// hostFor is the host API of acct with its token in the clear.
func (a *api) hostFor(acct *store.CodeAccount, token string) (githost.Host, error) {
	return githost.New(githost.Account{Provider: acct.Provider, BaseURL: acct.BaseURL, Username: acct.Username, Token: token}, a.hostGuard())
}

// hostGuard confines what Berth connects to for users (Git hosts' APIs, code sources): --source-allow-cidr.
func (a *api) hostGuard() *outbound.Guard {
	if a.SourceGuard != nil {
		return a.SourceGuard
	}
	return &outbound.Guard{Flag: gitclone.SourceAllowFlag}
}

// hostFailure words a Git host's refusal for the API: the host's answer, and what to do.
func hostFailure(err error) error {
	if !errors.As(err, new(*githost.Error)) {
		var ae *apiError
		if errors.As(err, &ae) {
			return ae
		}
		return badRequest("%v", err) // githost's own checks of names and URLs
	}
	switch {
	case errors.Is(err, githost.ErrRateLimited):
		return errf(http.StatusTooManyRequests, CodeTooManyRequests, "the Git host answered: %v", err)
	case errors.Is(err, outbound.ErrRefused):
		return errf(http.StatusForbidden, CodeForbidden, "Berth does not connect to this host for you: %v; ask the operator to start Berth with %s for a Git host on a private network",
			err, gitclone.SourceAllowFlag)
	case errors.Is(err, githost.ErrUnavailable):
		return errf(http.StatusBadGateway, CodeUnavailable, "the Git host did not answer: %v", err)
	}
	return errf(http.StatusUnprocessableEntity, CodeInvalidArgument, "the Git host answered: %v", err)
}
