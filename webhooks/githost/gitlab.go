package githost

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
)

// gitlab is GitLab's REST API v4 (gitlab.com/api/v4 or a self-hosted https://host/api/v4): PRIVATE-TOKEN
// header; pages by X-Next-Page. A project is named by its URL-encoded path (group/subgroup/name).
type gitlab struct{ *client }

func (c *client) gitlabAuth(r *http.Request) { r.Header.Set("PRIVATE-TOKEN", c.token) }

type gitlabProject struct {
	PathWithNamespace string `json:"path_with_namespace"`
	HTTPURLToRepo     string `json:"http_url_to_repo"`
	DefaultBranch     string `json:"default_branch"`
	Visibility        string `json:"visibility"`
}

func (p gitlabProject) repository() Repository {
	return Repository{FullName: p.PathWithNamespace, CloneURL: p.HTTPURLToRepo, DefaultBranch: p.DefaultBranch,
		Private: p.Visibility != "public"}
}

// Repositories pages GET /projects?membership=true&search=q: the projects the token's user is a member of.
func (g *gitlab) Repositories(ctx context.Context, q string, page int) (*Page, error) {
	if err := checkPage(q, page); err != nil {
		return nil, err
	}
	v := url.Values{"membership": {"true"}, "order_by": {"path"}, "sort": {"asc"}, "page": {strconv.Itoa(page)},
		"per_page": {strconv.Itoa(PageSize)}}
	if q != "" {
		v.Set("search", q)
	}
	var list []gitlabProject
	h, err := g.do(ctx, call{op: "list repositories", method: "GET", path: "/projects?" + v.Encode(), out: &list})
	if err != nil {
		return nil, err
	}
	p := &Page{Items: []Repository{}, Page: page}
	if n, err := strconv.Atoi(h.Get("X-Next-Page")); err == nil && n > 0 {
		p.NextPage = n
	}
	for _, r := range list {
		p.Items = append(p.Items, r.repository())
	}
	return p, nil
}

// project is the API path of a project: /projects/ and its URL-encoded full path as the :id.
func project(fullName string) (string, error) {
	if err := checkName(fullName); err != nil {
		return "", err
	}
	return "/projects/" + url.PathEscape(fullName), nil
}

func (g *gitlab) Repository(ctx context.Context, fullName string) (*Repository, error) {
	return repository[gitlabProject](ctx, g.client, fullName)
}

// gitlabHook is the body of POST /projects/:id/hooks and PUT /projects/:id/hooks/:hook_id: push and tag push
// events, authenticated by token (X-Gitlab-Token). GitLab always sends JSON.
type gitlabHook struct {
	URL                   string `json:"url"`
	Token                 string `json:"token"`
	PushEvents            bool   `json:"push_events"`
	TagPushEvents         bool   `json:"tag_push_events"`
	EnableSSLVerification bool   `json:"enable_ssl_verification"`
}

func gitlabHookBody(h Hook, _ bool) any {
	return gitlabHook{URL: h.URL, Token: h.Secret, PushEvents: true, TagPushEvents: true, EnableSSLVerification: true}
}
