package githost

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// github is GitHub's REST API (api.github.com, or GitHub Enterprise Server's https://host/api/v3):
// Authorization: Bearer <token>; pages by the Link header.
type github struct{ *client }

func (c *client) githubAuth(r *http.Request) {
	r.Header.Set("Authorization", "Bearer "+c.token)
	r.Header.Set("Accept", "application/vnd.github+json")
	r.Header.Set("X-GitHub-Api-Version", "2022-11-28")
}

// githubRepo is a repository as GitHub shows it (Gitea's has the same field names).
type githubRepo struct {
	FullName      string `json:"full_name"`
	CloneURL      string `json:"clone_url"`
	DefaultBranch string `json:"default_branch"`
	Private       bool   `json:"private"`
}

func (r githubRepo) repository() Repository {
	return Repository{FullName: r.FullName, CloneURL: r.CloneURL, DefaultBranch: r.DefaultBranch, Private: r.Private}
}

// Repositories pages GET /user/repos (the repositories the token may use: owned, collaborator, organisation
// member). That list has no search; q keeps, of each page, the repositories whose full name contains it.
func (g *github) Repositories(ctx context.Context, q string, page int) (*Page, error) {
	if err := checkPage(q, page); err != nil {
		return nil, err
	}
	var list []githubRepo
	v := url.Values{"per_page": {strconv.Itoa(PageSize)}, "page": {strconv.Itoa(page)}, "sort": {"full_name"},
		"affiliation": {"owner,collaborator,organization_member"}}
	h, err := g.do(ctx, call{op: "list repositories", method: "GET", path: "/user/repos?" + v.Encode(), out: &list})
	if err != nil {
		return nil, err
	}
	p := &Page{Items: []Repository{}, Page: page, NextPage: linkNext(h)}
	for _, r := range list {
		if q == "" || strings.Contains(strings.ToLower(r.FullName), strings.ToLower(q)) {
			p.Items = append(p.Items, r.repository())
		}
	}
	return p, nil
}

func (g *github) Repository(ctx context.Context, fullName string) (*Repository, error) {
	return repository[githubRepo](ctx, g.client, fullName)
}

// githubHook is the body of POST and PATCH /repos/{owner}/{repo}/hooks[/{id}]: a "web" hook on push (tag
// pushes are push events too), JSON, signed with the secret (X-Hub-Signature-256).
type githubHook struct {
	Name   string           `json:"name,omitempty"` // PATCH takes none
	Active bool             `json:"active"`
	Events []string         `json:"events"`
	Config githubHookConfig `json:"config"`
}

type githubHookConfig struct {
	URL         string `json:"url"`
	ContentType string `json:"content_type"`
	Secret      string `json:"secret"`
	InsecureSSL string `json:"insecure_ssl"`
}

func githubHookBody(h Hook, create bool) any {
	b := githubHook{Active: true, Events: []string{"push"},
		Config: githubHookConfig{URL: h.URL, ContentType: "json", Secret: h.Secret, InsecureSSL: "0"}}
	if create {
		b.Name = "web"
	}
	return b
}
