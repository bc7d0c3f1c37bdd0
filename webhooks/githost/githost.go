// Package githost talks to Git hosts' REST APIs for code accounts (SPEC §16): it lists the repositories a
// token sees and creates, updates and deletes the push webhook Berth receives. One interface, Host, has one
// implementation per provider (GitHub and GitHub Enterprise, GitLab, Gitea/Forgejo, Bitbucket Cloud); New picks
// it. Every request goes through an outbound.Guard (the code sources' --source-allow-cidr), with a timeout and a
// bounded answer, and a host's refusal becomes an *Error that says what to do.
package githost

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/berth-dev/berth/webhooks/outbound"
)

// Providers are the hosts New knows (the code source providers less "generic").
var Providers = []string{"github", "gitlab", "gitea", "bitbucket"}

// Default API roots of the public hosts; Gitea has none (every Gitea is self-hosted).
var DefaultBaseURL = map[string]string{
	"github":    "https://api.github.com",
	"gitlab":    "https://gitlab.com/api/v4",
	"bitbucket": "https://api.bitbucket.org/2.0",
}

// Limits of one host API call.
const (
	Timeout     = 20 * time.Second
	MaxResponse = 4 << 20 // bytes of one answer
	PageSize    = 30      // repositories asked for per page
	MaxQuery    = 200     // characters of a repository search
)

// Repository is a repository a token sees.
type Repository struct {
	FullName      string `json:"full_name"` // owner/name (GitLab: group/subgroup/name)
	CloneURL      string `json:"clone_url"` // https
	DefaultBranch string `json:"default_branch"`
	Private       bool   `json:"private"`
}

// Page is one page of repositories as the host pages them; NextPage is 0 on the last page.
type Page struct {
	Items    []Repository `json:"items"`
	Page     int          `json:"page"`
	NextPage int          `json:"next_page,omitempty"`
}

// Hook is the webhook Berth asks a host to send: every push (branches and tags) to URL, as JSON, signed or
// authenticated with Secret.
type Hook struct {
	URL    string
	Secret string
}

// Host is one account on one Git host.
type Host interface {
	// User returns the login the token belongs to: it checks the token.
	User(ctx context.Context) (string, error)
	// Repositories lists page (from 1) of the repositories the token sees whose name contains q ("" = all).
	Repositories(ctx context.Context, q string, page int) (*Page, error)
	// Repository returns one repository by its full name (owner/name).
	Repository(ctx context.Context, fullName string) (*Repository, error)
	// CreateHook creates h on repository fullName and returns the host's id of the hook.
	CreateHook(ctx context.Context, fullName string, h Hook) (string, error)
	// UpdateHook sets the URL and secret of hook id and returns the hook's id afterwards: the same, except on
	// Gitea, whose API cannot change a hook's secret, where the hook is made again ("" when it was deleted and
	// could not be made again).
	UpdateHook(ctx context.Context, fullName, id string, h Hook) (string, error)
	// DeleteHook deletes hook id; a hook that is gone already is no error.
	DeleteHook(ctx context.Context, fullName, id string) error
}

// Account is what New needs to reach a host as one user.
type Account struct {
	Provider string
	BaseURL  string // the API root; "" = DefaultBaseURL[Provider]
	Username string // Bitbucket: the user of the app password; else informative
	Token    string
}

// Kinds of Error, for errors.Is.
var (
	ErrUnauthorized = errors.New("the host refused the token")
	ErrForbidden    = errors.New("the token lacks a permission")
	ErrNotFound     = errors.New("not found on the host")
	ErrInvalid      = errors.New("the host refused the request")
	ErrRateLimited  = errors.New("the host's rate limit is reached")
	ErrUnavailable  = errors.New("the host did not answer")
)

// Error is a host's refusal of one call.
type Error struct {
	Provider string
	Op       string // what Berth asked, e.g. "create the webhook on owner/repo"
	Status   int    // the HTTP status (0 when there was no answer)
	Kind     error  // one of the Err… values
	Message  string // the host's own message, when it gave one
	Cause    error  // why there was no answer (an *outbound.RefusedError when the guard refused the host)
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s", e.Provider, e.Op)
	if e.Status != 0 {
		fmt.Fprintf(&b, ": HTTP %d", e.Status)
	}
	if e.Message != "" {
		fmt.Fprintf(&b, " (%s)", e.Message)
	}
	b.WriteString(": ")
	b.WriteString(e.Kind.Error())
	switch e.Kind {
	case ErrUnauthorized:
		b.WriteString("; check that the token is valid and not expired (Bitbucket: the username and an app password)")
	case ErrForbidden:
		b.WriteString("; give the token the scopes to read repositories and manage their webhooks (GitHub: repo or admin:repo_hook; GitLab: api; Gitea: write:repository; Bitbucket: webhooks and repositories)")
	case ErrNotFound:
		b.WriteString("; check the repository name and the base_url, and that the token can see it")
	case ErrRateLimited:
		b.WriteString("; try again later")
	case ErrUnavailable:
		b.WriteString("; check the base_url and that Berth may reach the host")
	}
	return b.String()
}

func (e *Error) Unwrap() []error {
	if e.Cause != nil {
		return []error{e.Kind, e.Cause}
	}
	return []error{e.Kind}
}

// New returns the Host of a. guard confines every connection (nil: a guard that refuses every non-public
// address).
func New(a Account, guard *outbound.Guard) (Host, error) {
	if !slices.Contains(Providers, a.Provider) {
		return nil, fmt.Errorf("provider must be one of %s, got %q", strings.Join(Providers, ", "), a.Provider)
	}
	base, err := CheckBaseURL(a.Provider, a.BaseURL)
	if err != nil {
		return nil, err
	}
	if a.Token == "" {
		return nil, errors.New("a token is required")
	}
	if guard == nil {
		guard = &outbound.Guard{}
	}
	c := &client{provider: a.Provider, base: base, username: a.Username, token: a.Token, http: &http.Client{
		Timeout: Timeout,
		// A client lives for one API request of Berth's: no idle connection outlives it (as gitclone's guarded
		// transport).
		Transport: &http.Transport{DialContext: guard.DialContext, Proxy: nil, TLSHandshakeTimeout: 10 * time.Second,
			ResponseHeaderTimeout: Timeout, DisableKeepAlives: true},
		// A redirect could carry the token's header to another host: the API roots answer without one.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
	c.repoPath, c.updateMethod = func(n string) (string, error) { return ownerRepo("/repos/", n) }, "PATCH"
	switch a.Provider {
	case "github":
		c.auth, c.hookBody = c.githubAuth, githubHookBody
		return &github{c}, nil
	case "gitlab":
		c.auth, c.hookBody, c.repoPath, c.updateMethod = c.gitlabAuth, gitlabHookBody, project, "PUT"
		return &gitlab{c}, nil
	case "gitea":
		c.auth, c.hookBody = c.giteaAuth, giteaHookBody
		return &gitea{c}, nil
	default:
		c.auth, c.hookBody, c.updateMethod = c.bitbucketAuth, bitbucketHookBody, "PUT"
		c.repoPath = func(n string) (string, error) { return ownerRepo("/repositories/", n) }
		return &bitbucket{c}, nil
	}
}

// CheckBaseURL returns the API root of provider to use for base ("" = the provider's default): an http(s) URL
// without query, fragment or credentials, with no trailing slash.
func CheckBaseURL(provider, base string) (string, error) {
	if base == "" {
		base = DefaultBaseURL[provider]
		if base == "" {
			return "", fmt.Errorf("base_url is required for %s (the API root, e.g. https://gitea.example.com/api/v1)", provider)
		}
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil ||
		u.RawQuery != "" || u.Fragment != "" || len(base) > 2048 {
		return "", fmt.Errorf("base_url must be an http(s) URL of the host's API root without credentials or query, e.g. %s, got %q",
			exampleBase(provider), base)
	}
	return strings.TrimRight(u.String(), "/"), nil
}

func exampleBase(provider string) string {
	switch provider {
	case "github":
		return "https://api.github.com or https://github.example.com/api/v3"
	case "gitlab":
		return "https://gitlab.com/api/v4"
	case "gitea":
		return "https://gitea.example.com/api/v1"
	default:
		return "https://api.bitbucket.org/2.0"
	}
}

// BaseURLFor derives the API root of the host serving cloneURL (a source's https or ssh clone URL) for a source
// that has a token but no account: the public hosts' roots, GitHub Enterprise's /api/v3, GitLab's /api/v4 and
// Gitea's /api/v1 on the clone URL's host. It also returns the repository's full name (the path without .git).
func BaseURLFor(provider, cloneURL string) (base, fullName string, err error) {
	host, path, scheme := "", "", "https"
	if u, perr := url.Parse(cloneURL); perr == nil && u.Host != "" {
		host, path = u.Host, u.Path
		if u.Scheme == "http" {
			scheme = "http"
		}
		if u.Scheme == "ssh" {
			host = u.Hostname() // the ssh port is no web port
		}
	} else if at, colon := strings.Index(cloneURL, "@"), strings.Index(cloneURL, ":"); colon > at && at >= 0 {
		host, path = cloneURL[at+1:colon], cloneURL[colon+1:] // git@host:owner/repo.git
	} else {
		return "", "", fmt.Errorf("cannot tell the host of %q", cloneURL)
	}
	fullName = strings.TrimSuffix(strings.Trim(path, "/"), ".git")
	if strings.Count(fullName, "/") < 1 {
		return "", "", fmt.Errorf("cannot tell the repository (owner/name) of %q", cloneURL)
	}
	switch {
	case provider == "github" && host == "github.com":
		base = DefaultBaseURL["github"]
	case provider == "github":
		base = scheme + "://" + host + "/api/v3"
	case provider == "gitlab":
		base = scheme + "://" + host + "/api/v4"
	case provider == "gitea":
		base = scheme + "://" + host + "/api/v1"
	case provider == "bitbucket" && host == "bitbucket.org":
		base = DefaultBaseURL["bitbucket"]
	default:
		return "", "", fmt.Errorf("no API is known for provider %q at %s", provider, host)
	}
	return base, fullName, nil
}

// client is what every provider shares: the HTTP side, and the calls that differ only in paths and bodies
// (the token check, one repository, the hook's create, update and delete).
type client struct {
	provider string
	base     string
	username string
	token    string
	http     *http.Client

	auth func(*http.Request)
	// repoPath is the API path of a repository by its full name ("/repos/owner/name").
	repoPath func(fullName string) (string, error)
	// hookBody is the JSON body that creates (create) or updates a hook.
	hookBody     func(h Hook, create bool) any
	updateMethod string // PATCH or PUT
}

// User asks GET /user: every provider's token check (login on GitHub and Gitea, username on the others).
func (c *client) User(ctx context.Context) (string, error) {
	var u struct {
		Login    string `json:"login"`
		Username string `json:"username"`
	}
	_, err := c.do(ctx, call{op: "check the token (GET /user)", method: "GET", path: "/user", out: &u})
	if u.Login == "" {
		u.Login = u.Username
	}
	return u.Login, err
}

// repository reads one repository as the provider's type T shows it.
func repository[T interface{ repository() Repository }](ctx context.Context, c *client, fullName string) (*Repository, error) {
	path, err := c.repoPath(fullName)
	if err != nil {
		return nil, err
	}
	var r T
	if _, err := c.do(ctx, call{op: "get repository " + fullName, method: "GET", path: path, out: &r}); err != nil {
		return nil, err
	}
	repo := r.repository()
	return &repo, nil
}

// CreateHook posts the provider's hook body to the repository's hooks and returns the id of the answer (a
// number, or Bitbucket's uuid).
func (c *client) CreateHook(ctx context.Context, fullName string, h Hook) (string, error) {
	path, err := c.repoPath(fullName)
	if err != nil {
		return "", err
	}
	op := "create the webhook on " + fullName
	var out struct {
		ID   json.Number `json:"id"`
		UUID string      `json:"uuid"`
	}
	if _, err := c.do(ctx, call{op: op, method: "POST", path: path + "/hooks", body: c.hookBody(h, true), out: &out}); err != nil {
		return "", err
	}
	id := out.UUID
	if id == "" && out.ID != "" && out.ID != "0" {
		id = out.ID.String()
	}
	if id == "" {
		return "", &Error{Provider: c.provider, Op: op, Kind: ErrInvalid, Message: "the answer has no hook id"}
	}
	return id, nil
}

func (c *client) UpdateHook(ctx context.Context, fullName, id string, h Hook) (string, error) {
	path, err := c.repoPath(fullName)
	if err != nil {
		return id, err
	}
	_, err = c.do(ctx, call{op: fmt.Sprintf("update webhook %s on %s", id, fullName), method: c.updateMethod,
		path: path + "/hooks/" + url.PathEscape(id), body: c.hookBody(h, false)})
	return id, err
}

func (c *client) DeleteHook(ctx context.Context, fullName, id string) error {
	path, err := c.repoPath(fullName)
	if err != nil {
		return err
	}
	_, err = c.do(ctx, call{op: fmt.Sprintf("delete webhook %s on %s", id, fullName), method: "DELETE",
		path: path + "/hooks/" + url.PathEscape(id), gone: true})
	return err
}

// call is one API request.
type call struct {
	op     string // for errors
	method string
	path   string // below base, with its query
	body   any    // sent as JSON when not nil
	out    any    // the JSON answer is decoded into it when not nil
	// gone is true when a 404 is the wanted outcome (deleting a hook that is gone).
	gone bool
}

// do makes c and returns the answer's headers.
func (c *client) do(ctx context.Context, k call) (http.Header, error) {
	var body io.Reader
	if k.body != nil {
		b, err := json.Marshal(k.body)
		if err != nil {
			return nil, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, k.method, c.base+k.path, body)
	if err != nil {
		return nil, &Error{Provider: c.provider, Op: k.op, Kind: ErrInvalid, Message: err.Error()}
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "Berth")
	if k.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	c.auth(req)
	resp, err := c.http.Do(req)
	if err != nil {
		msg := err.Error()
		var refused *outbound.RefusedError
		if errors.As(err, &refused) {
			msg = refused.Error()
		}
		return nil, &Error{Provider: c.provider, Op: k.op, Kind: ErrUnavailable, Message: msg, Cause: err}
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponse+1))
	if err != nil {
		return nil, &Error{Provider: c.provider, Op: k.op, Status: resp.StatusCode, Kind: ErrUnavailable, Message: err.Error()}
	}
	if len(raw) > MaxResponse {
		return nil, &Error{Provider: c.provider, Op: k.op, Status: resp.StatusCode, Kind: ErrInvalid,
			Message: fmt.Sprintf("the answer is larger than %d bytes", MaxResponse)}
	}
	if resp.StatusCode == http.StatusNotFound && k.gone {
		return resp.Header, nil
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, &Error{Provider: c.provider, Op: k.op, Status: resp.StatusCode, Kind: kindOf(resp), Message: hostMessage(raw)}
	}
	if k.out != nil {
		if err := json.Unmarshal(raw, k.out); err != nil {
			return nil, &Error{Provider: c.provider, Op: k.op, Status: resp.StatusCode, Kind: ErrInvalid,
				Message: "the answer is not the API's JSON (is base_url the API root?): " + err.Error()}
		}
	}
	return resp.Header, nil
}

func kindOf(resp *http.Response) error {
	switch resp.StatusCode {
	case http.StatusUnauthorized:
		return ErrUnauthorized
	case http.StatusTooManyRequests:
		return ErrRateLimited
	case http.StatusForbidden:
		if resp.Header.Get("X-RateLimit-Remaining") == "0" || resp.Header.Get("Retry-After") != "" {
			return ErrRateLimited // GitHub's primary and secondary limits
		}
		return ErrForbidden
	case http.StatusNotFound:
		return ErrNotFound
	case http.StatusBadRequest, http.StatusUnprocessableEntity, http.StatusConflict:
		return ErrInvalid
	}
	if resp.StatusCode >= 500 {
		return ErrUnavailable
	}
	return ErrInvalid
}

// hostMessage picks the host's own words out of an error answer: GitHub and Gitea "message", GitLab "message"
// or "error", Bitbucket "error.message"; at most 300 characters.
func hostMessage(raw []byte) string {
	var v struct {
		Message json.RawMessage `json:"message"`
		Error   json.RawMessage `json:"error"`
		Errors  json.RawMessage `json:"errors"`
	}
	if json.Unmarshal(raw, &v) != nil {
		return ""
	}
	var parts []string
	for _, m := range []json.RawMessage{v.Message, v.Error, v.Errors} {
		if len(m) == 0 || string(m) == "null" {
			continue
		}
		var s string
		if json.Unmarshal(m, &s) == nil {
			parts = append(parts, s)
			continue
		}
		var obj struct {
			Message string `json:"message"`
		}
		if json.Unmarshal(m, &obj) == nil && obj.Message != "" {
			parts = append(parts, obj.Message)
			continue
		}
		parts = append(parts, string(m))
	}
	msg := strings.Join(parts, "; ")
	if len(msg) > 300 {
		msg = strings.ToValidUTF8(msg[:300], "") + "…"
	}
	return msg
}

// checkName refuses a full name that is no owner/name path (it becomes part of API paths).
func checkName(fullName string) error {
	parts := strings.Split(fullName, "/")
	if len(parts) < 2 || len(fullName) > 512 {
		return fmt.Errorf("repository must be owner/name, got %q", fullName)
	}
	for _, p := range parts {
		if p == "" || p == "." || p == ".." || strings.ContainsAny(p, "?#%\\ ") || strings.ContainsFunc(p, func(r rune) bool { return r < ' ' || r == 0x7f }) {
			return fmt.Errorf("repository must be owner/name, got %q", fullName)
		}
	}
	return nil
}

// ownerRepo is the API path prefix+owner/name of a two-part name (GitHub, Gitea, Bitbucket), escaped.
func ownerRepo(prefix, fullName string) (string, error) {
	if err := checkName(fullName); err != nil {
		return "", err
	}
	parts := strings.Split(fullName, "/")
	if len(parts) != 2 {
		return "", fmt.Errorf("repository must be owner/name, got %q", fullName)
	}
	return prefix + url.PathEscape(parts[0]) + "/" + url.PathEscape(parts[1]), nil
}

// linkNext reads the page number of the rel="next" link of a Link header (GitHub, Gitea); 0 when none.
func linkNext(h http.Header) int {
	for _, link := range h.Values("Link") {
		for _, part := range strings.Split(link, ",") {
			segs := strings.Split(part, ";")
			if len(segs) < 2 {
				continue
			}
			next := false
			for _, s := range segs[1:] {
				if strings.ReplaceAll(strings.TrimSpace(s), " ", "") == `rel="next"` {
					next = true
				}
			}
			if !next {
				continue
			}
			u, err := url.Parse(strings.Trim(strings.TrimSpace(segs[0]), "<>"))
			if err != nil {
				continue
			}
			if n, err := strconv.Atoi(u.Query().Get("page")); err == nil && n > 0 {
				return n
			}
		}
	}
	return 0
}

func checkPage(q string, page int) error {
	if page < 1 {
		return fmt.Errorf("page must be at least 1, got %d", page)
	}
	if len(q) > MaxQuery {
		return fmt.Errorf("q must be at most %d characters", MaxQuery)
	}
	return nil
}
