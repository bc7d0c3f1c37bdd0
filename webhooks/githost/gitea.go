package githost

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
)

// gitea is Gitea's (and Forgejo's) API at https://host/api/v1: Authorization: token <token>; pages by the
// Link header. Its repositories and hooks live where GitHub's do.
type gitea struct{ *client }

func (c *client) giteaAuth(r *http.Request) { r.Header.Set("Authorization", "token "+c.token) }

// Repositories pages GET /repos/search?q= (the repositories the token may see, its own and its organisations'
// included), which searches on the host.
func (g *gitea) Repositories(ctx context.Context, q string, page int) (*Page, error) {
	if err := checkPage(q, page); err != nil {
		return nil, err
	}
	var out struct {
		OK   bool         `json:"ok"`
		Data []githubRepo `json:"data"`
	}
	v := url.Values{"q": {q}, "page": {strconv.Itoa(page)}, "limit": {strconv.Itoa(PageSize)}, "sort": {"alpha"}, "order": {"asc"}}
	h, err := g.do(ctx, call{op: "list repositories", method: "GET", path: "/repos/search?" + v.Encode(), out: &out})
	if err != nil {
		return nil, err
	}
	p := &Page{Items: []Repository{}, Page: page, NextPage: linkNext(h)}
	for _, r := range out.Data {
		p.Items = append(p.Items, r.repository())
	}
	return p, nil
}

// UpdateHook makes hook id again with h: Gitea's PATCH …/hooks/{id} (EditHookOption) changes the URL, the
// content type and the events, never the secret. The old hook goes first, so that no delivery is signed with
// the old secret after this returns.
func (g *gitea) UpdateHook(ctx context.Context, fullName, id string, h Hook) (string, error) {
	if err := g.DeleteHook(ctx, fullName, id); err != nil {
		return id, err
	}
	return g.CreateHook(ctx, fullName, h)
}

func (g *gitea) Repository(ctx context.Context, fullName string) (*Repository, error) {
	return repository[githubRepo](ctx, g.client, fullName)
}

// giteaHook is the body of POST /repos/{owner}/{repo}/hooks (CreateHookOption) and of PATCH …/hooks/{id}
// (EditHookOption, which has no type): a "gitea" hook on push (branches and tags), JSON, signed with
// config.secret (X-Gitea-Signature).
type giteaHook struct {
	Type   string            `json:"type,omitempty"`
	Config map[string]string `json:"config"`
	Events []string          `json:"events"`
	Active bool              `json:"active"`
}

func giteaHookBody(h Hook, create bool) any {
	b := giteaHook{Active: true, Events: []string{"push"},
		Config: map[string]string{"url": h.URL, "content_type": "json", "secret": h.Secret}}
	if create {
		b.Type = "gitea"
	}
	return b
}
