package githost

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// bitbucket is Bitbucket Cloud's API 2.0 (api.bitbucket.org/2.0): HTTP Basic with the username and an app
// password (a token without a username is sent as Bearer: an access token); pages by the answer's "next" URL.
type bitbucket struct{ *client }

func (c *client) bitbucketAuth(r *http.Request) {
	if c.username == "" {
		r.Header.Set("Authorization", "Bearer "+c.token)
		return
	}
	r.SetBasicAuth(c.username, c.token)
}

type bitbucketRepo struct {
	FullName   string `json:"full_name"`
	IsPrivate  bool   `json:"is_private"`
	MainBranch *struct {
		Name string `json:"name"`
	} `json:"mainbranch"`
	Links struct {
		Clone []struct {
			Name string `json:"name"`
			Href string `json:"href"`
		} `json:"clone"`
	} `json:"links"`
}

func (r bitbucketRepo) repository() Repository {
	out := Repository{FullName: r.FullName, Private: r.IsPrivate}
	if r.MainBranch != nil {
		out.DefaultBranch = r.MainBranch.Name
	}
	for _, c := range r.Links.Clone {
		if c.Name != "https" {
			continue
		}
		if u, err := url.Parse(c.Href); err == nil {
			u.User = nil // https://user@bitbucket.org/…: the account's username is sent apart
			out.CloneURL = u.String()
		}
	}
	return out
}

// Repositories pages GET /repositories?role=member&q=name~"q": the repositories the user is a member of.
func (b *bitbucket) Repositories(ctx context.Context, q string, page int) (*Page, error) {
	if err := checkPage(q, page); err != nil {
		return nil, err
	}
	v := url.Values{"role": {"member"}, "sort": {"full_name"}, "page": {strconv.Itoa(page)}, "pagelen": {strconv.Itoa(PageSize)}}
	if q != "" {
		v.Set("q", `name~"`+strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(q)+`"`)
	}
	var out struct {
		Values []bitbucketRepo `json:"values"`
		Next   string          `json:"next"`
	}
	if _, err := b.do(ctx, call{op: "list repositories", method: "GET", path: "/repositories?" + v.Encode(), out: &out}); err != nil {
		return nil, err
	}
	p := &Page{Items: []Repository{}, Page: page}
	if u, err := url.Parse(out.Next); err == nil && out.Next != "" {
		if n, err := strconv.Atoi(u.Query().Get("page")); err == nil && n > 0 {
			p.NextPage = n
		}
	}
	for _, r := range out.Values {
		p.Items = append(p.Items, r.repository())
	}
	return p, nil
}

func (b *bitbucket) Repository(ctx context.Context, fullName string) (*Repository, error) {
	return repository[bitbucketRepo](ctx, b.client, fullName)
}

// bitbucketHook is the body of POST /repositories/{workspace}/{repo_slug}/hooks and of PUT …/hooks/{uid}:
// repo:push (branches and tags), signed with secret (X-Hub-Signature). Bitbucket always sends JSON.
type bitbucketHook struct {
	Description string   `json:"description"`
	URL         string   `json:"url"`
	Active      bool     `json:"active"`
	Events      []string `json:"events"`
	Secret      string   `json:"secret"`
}

func bitbucketHookBody(h Hook, _ bool) any {
	return bitbucketHook{Description: "Berth", URL: h.URL, Active: true, Events: []string{"repo:push"}, Secret: h.Secret}
}
