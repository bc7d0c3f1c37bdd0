package githost

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/berth-dev/berth/webhooks/outbound"
)

// fakeAPI answers a Git host's documented API shapes and records every request it gets, so that the tests
// assert what the client asked as well as what it made of the answers.
type fakeAPI struct {
	t      *testing.T
	mu     sync.Mutex
	reqs   []recorded
	routes map[string]func(w http.ResponseWriter, r *http.Request, body map[string]any)
}

type recorded struct {
	Method, Path, Query string
	Header              http.Header
	Body                map[string]any
}

func newFake(t *testing.T, routes map[string]func(w http.ResponseWriter, r *http.Request, body map[string]any)) (*fakeAPI, *httptest.Server) {
	f := &fakeAPI{t: t, routes: routes}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body map[string]any
		if raw, _ := io.ReadAll(r.Body); len(raw) > 0 {
			if r.Header.Get("Content-Type") != "application/json" {
				t.Errorf("%s %s: body sent as %q, want application/json", r.Method, r.URL.Path, r.Header.Get("Content-Type"))
			}
			if err := json.Unmarshal(raw, &body); err != nil {
				t.Errorf("%s %s: body is not JSON: %v", r.Method, r.URL.Path, err)
			}
		}
		f.mu.Lock()
		f.reqs = append(f.reqs, recorded{r.Method, r.URL.EscapedPath(), r.URL.RawQuery, r.Header.Clone(), body})
		f.mu.Unlock()
		h := f.routes[r.Method+" "+r.URL.EscapedPath()]
		if h == nil {
			w.WriteHeader(http.StatusNotFound)
			_, _ = io.WriteString(w, `{"message":"Not Found"}`)
			return
		}
		h(w, r, body)
	}))
	t.Cleanup(srv.Close)
	return f, srv
}

func (f *fakeAPI) last() recorded {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.reqs) == 0 {
		f.t.Fatal("no request was made")
	}
	return f.reqs[len(f.reqs)-1]
}

func loopbackGuard() *outbound.Guard {
	return &outbound.Guard{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}}
}

func jsonAnswer(status int, v string, headers ...string) func(http.ResponseWriter, *http.Request, map[string]any) {
	return func(w http.ResponseWriter, _ *http.Request, _ map[string]any) {
		for i := 0; i+1 < len(headers); i += 2 {
			w.Header().Set(headers[i], headers[i+1])
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, v)
	}
}

func mustHost(t *testing.T, a Account) Host {
	t.Helper()
	h, err := New(a, loopbackGuard())
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func config(t *testing.T, body map[string]any) map[string]any {
	t.Helper()
	c, ok := body["config"].(map[string]any)
	if !ok {
		t.Fatalf("body has no config object: %v", body)
	}
	return c
}

func TestGitHub(t *testing.T) {
	var srvURL string
	f, srv := newFake(t, map[string]func(http.ResponseWriter, *http.Request, map[string]any){
		"GET /api/v3/user": jsonAnswer(200, `{"login":"octocat","id":1}`),
		"GET /api/v3/user/repos": func(w http.ResponseWriter, r *http.Request, _ map[string]any) {
			// GitHub's Link header: next and last.
			w.Header().Set("Link", fmt.Sprintf(`<%s/api/v3/user/repos?page=3&per_page=30>; rel="next", <%s/api/v3/user/repos?page=5&per_page=30>; rel="last"`, srvURL, srvURL))
			jsonAnswer(200, `[{"id":1,"full_name":"octocat/Hello-World","clone_url":"https://github.com/octocat/Hello-World.git","default_branch":"main","private":false},
				{"id":2,"full_name":"octo-org/secret","clone_url":"https://github.com/octo-org/secret.git","default_branch":"dev","private":true}]`)(w, r, nil)
		},
		"GET /api/v3/repos/octocat/Hello-World":                  jsonAnswer(200, `{"full_name":"octocat/Hello-World","clone_url":"https://github.com/octocat/Hello-World.git","default_branch":"main","private":false}`),
		"POST /api/v3/repos/octocat/Hello-World/hooks":           jsonAnswer(201, `{"type":"Repository","id":12345678,"name":"web","active":true,"events":["push"],"config":{"content_type":"json","insecure_ssl":"0","url":"https://berth.example/hooks/abc"}}`),
		"PATCH /api/v3/repos/octocat/Hello-World/hooks/12345678": jsonAnswer(200, `{"id":12345678}`),
		"DELETE /api/v3/repos/octocat/Hello-World/hooks/12345678": func(w http.ResponseWriter, _ *http.Request, _ map[string]any) {
			w.WriteHeader(http.StatusNoContent)
		},
	})
	srvURL = srv.URL
	ctx := context.Background()
	h := mustHost(t, Account{Provider: "github", BaseURL: srv.URL + "/api/v3/", Token: "ghp_secret"})

	login, err := h.User(ctx)
	if err != nil || login != "octocat" {
		t.Fatalf("User = %q, %v", login, err)
	}
	req := f.last()
	if got := req.Header.Get("Authorization"); got != "Bearer ghp_secret" {
		t.Errorf("Authorization = %q, want Bearer ghp_secret", got)
	}
	if got := req.Header.Get("Accept"); got != "application/vnd.github+json" {
		t.Errorf("Accept = %q", got)
	}

	p, err := h.Repositories(ctx, "secret", 2)
	if err != nil {
		t.Fatal(err)
	}
	if req := f.last(); !strings.Contains(req.Query, "page=2") || !strings.Contains(req.Query, "per_page=30") {
		t.Errorf("list query = %q, want page=2 and per_page=30", req.Query)
	}
	want := Repository{FullName: "octo-org/secret", CloneURL: "https://github.com/octo-org/secret.git", DefaultBranch: "dev", Private: true}
	if len(p.Items) != 1 || p.Items[0] != want || p.NextPage != 3 || p.Page != 2 {
		t.Errorf("Repositories(secret, 2) = %+v, want [%+v] with next page 3", p, want)
	}

	r, err := h.Repository(ctx, "octocat/Hello-World")
	if err != nil || r.CloneURL != "https://github.com/octocat/Hello-World.git" || r.DefaultBranch != "main" {
		t.Fatalf("Repository = %+v, %v", r, err)
	}

	id, err := h.CreateHook(ctx, "octocat/Hello-World", Hook{URL: "https://berth.example/hooks/abc", Secret: "s3cret"})
	if err != nil || id != "12345678" {
		t.Fatalf("CreateHook = %q, %v", id, err)
	}
	body := f.last().Body
	if body["name"] != "web" || body["active"] != true || fmt.Sprint(body["events"]) != "[push]" {
		t.Errorf("create body = %v, want a web hook, active, on push", body)
	}
	if c := config(t, body); c["url"] != "https://berth.example/hooks/abc" || c["content_type"] != "json" || c["secret"] != "s3cret" || c["insecure_ssl"] != "0" {
		t.Errorf("create config = %v", c)
	}

	if got, err := h.UpdateHook(ctx, "octocat/Hello-World", id, Hook{URL: "https://berth.example/hooks/abc", Secret: "n3w"}); err != nil || got != id {
		t.Fatalf("UpdateHook = %q, %v", got, err)
	}
	if req := f.last(); req.Method != "PATCH" || config(t, req.Body)["secret"] != "n3w" || req.Body["name"] != nil {
		t.Errorf("update = %s %v", req.Method, req.Body)
	}
	if err := h.DeleteHook(ctx, "octocat/Hello-World", id); err != nil {
		t.Fatal(err)
	}
	if req := f.last(); req.Method != "DELETE" || req.Path != "/api/v3/repos/octocat/Hello-World/hooks/12345678" {
		t.Errorf("delete = %s %s", req.Method, req.Path)
	}
	// A hook deleted on the host already is gone, as asked.
	if err := h.DeleteHook(ctx, "octocat/Hello-World", "999"); err != nil {
		t.Errorf("deleting a missing hook: %v", err)
	}
}

func TestGitLab(t *testing.T) {
	f, srv := newFake(t, map[string]func(http.ResponseWriter, *http.Request, map[string]any){
		"GET /api/v4/user": jsonAnswer(200, `{"id":1,"username":"john_smith"}`),
		"GET /api/v4/projects": jsonAnswer(200, `[{"id":4,"path_with_namespace":"diaspora/sub/client","http_url_to_repo":"https://gitlab.example.com/diaspora/sub/client.git","default_branch":"main","visibility":"private"}]`,
			"X-Next-Page", "2", "X-Page", "1", "X-Per-Page", "30"),
		"GET /api/v4/projects/diaspora%2Fsub%2Fclient":         jsonAnswer(200, `{"id":4,"path_with_namespace":"diaspora/sub/client","http_url_to_repo":"https://gitlab.example.com/diaspora/sub/client.git","default_branch":"main","visibility":"public"}`),
		"POST /api/v4/projects/diaspora%2Fsub%2Fclient/hooks":  jsonAnswer(201, `{"id":7,"url":"https://berth.example/hooks/abc","push_events":true,"tag_push_events":true}`),
		"PUT /api/v4/projects/diaspora%2Fsub%2Fclient/hooks/7": jsonAnswer(200, `{"id":7}`),
		"DELETE /api/v4/projects/diaspora%2Fsub%2Fclient/hooks/7": func(w http.ResponseWriter, _ *http.Request, _ map[string]any) {
			w.WriteHeader(http.StatusNoContent)
		},
	})
	ctx := context.Background()
	h := mustHost(t, Account{Provider: "gitlab", BaseURL: srv.URL + "/api/v4", Token: "glpat-secret"})
	if login, err := h.User(ctx); err != nil || login != "john_smith" {
		t.Fatalf("User = %q, %v", login, err)
	}
	req := f.last()
	if req.Header.Get("PRIVATE-TOKEN") != "glpat-secret" || req.Header.Get("Authorization") != "" {
		t.Errorf("auth headers = PRIVATE-TOKEN %q, Authorization %q", req.Header.Get("PRIVATE-TOKEN"), req.Header.Get("Authorization"))
	}
	p, err := h.Repositories(ctx, "client", 1)
	if err != nil {
		t.Fatal(err)
	}
	if q := f.last().Query; !strings.Contains(q, "search=client") || !strings.Contains(q, "membership=true") || !strings.Contains(q, "page=1") {
		t.Errorf("list query = %q", q)
	}
	want := Repository{FullName: "diaspora/sub/client", CloneURL: "https://gitlab.example.com/diaspora/sub/client.git", DefaultBranch: "main", Private: true}
	if len(p.Items) != 1 || p.Items[0] != want || p.NextPage != 2 {
		t.Errorf("Repositories = %+v", p)
	}
	if r, err := h.Repository(ctx, "diaspora/sub/client"); err != nil || r.Private {
		t.Errorf("Repository = %+v, %v (a public project)", r, err)
	}
	id, err := h.CreateHook(ctx, "diaspora/sub/client", Hook{URL: "https://berth.example/hooks/abc", Secret: "tok"})
	if err != nil || id != "7" {
		t.Fatalf("CreateHook = %q, %v", id, err)
	}
	body := f.last().Body
	if body["url"] != "https://berth.example/hooks/abc" || body["token"] != "tok" || body["push_events"] != true ||
		body["tag_push_events"] != true || body["enable_ssl_verification"] != true {
		t.Errorf("create body = %v", body)
	}
	if got, err := h.UpdateHook(ctx, "diaspora/sub/client", id, Hook{URL: "https://berth.example/hooks/abc", Secret: "tok2"}); err != nil || got != id {
		t.Fatalf("UpdateHook = %q, %v", got, err)
	}
	if req := f.last(); req.Method != "PUT" || req.Body["token"] != "tok2" {
		t.Errorf("update = %s %v", req.Method, req.Body)
	}
	if err := h.DeleteHook(ctx, "diaspora/sub/client", id); err != nil {
		t.Fatal(err)
	}
}

func TestGitea(t *testing.T) {
	var srvURL string
	f, srv := newFake(t, map[string]func(http.ResponseWriter, *http.Request, map[string]any){
		"GET /api/v1/user": jsonAnswer(200, `{"id":1,"login":"gitea-admin"}`),
		"GET /api/v1/repos/search": func(w http.ResponseWriter, r *http.Request, _ map[string]any) {
			w.Header().Set("X-Total-Count", "1")
			w.Header().Set("Link", fmt.Sprintf(`<%s/api/v1/repos/search?limit=30&page=1&q=app>; rel="prev",<%s/api/v1/repos/search?limit=30&page=1&q=app>; rel="first"`, srvURL, srvURL))
			jsonAnswer(200, `{"ok":true,"data":[{"id":3,"full_name":"gitea-admin/app","clone_url":"http://127.0.0.1:3000/gitea-admin/app.git","default_branch":"main","private":true}]}`)(w, r, nil)
		},
		"POST /api/v1/repos/gitea-admin/app/hooks":     jsonAnswer(201, `{"id":5,"type":"gitea","active":true,"events":["push"]}`),
		"DELETE /api/v1/repos/gitea-admin/app/hooks/5": func(w http.ResponseWriter, _ *http.Request, _ map[string]any) { w.WriteHeader(204) },
	})
	srvURL = srv.URL
	ctx := context.Background()
	if _, err := New(Account{Provider: "gitea", Token: "x"}, nil); err == nil || !strings.Contains(err.Error(), "base_url is required") {
		t.Errorf("gitea without base_url: %v", err)
	}
	h := mustHost(t, Account{Provider: "gitea", BaseURL: srv.URL + "/api/v1", Token: "gtok"})
	if login, err := h.User(ctx); err != nil || login != "gitea-admin" {
		t.Fatalf("User = %q, %v", login, err)
	}
	if got := f.last().Header.Get("Authorization"); got != "token gtok" {
		t.Errorf("Authorization = %q, want token gtok", got)
	}
	p, err := h.Repositories(ctx, "app", 2)
	if err != nil {
		t.Fatal(err)
	}
	if q := f.last().Query; !strings.Contains(q, "q=app") || !strings.Contains(q, "page=2") || !strings.Contains(q, "limit=30") {
		t.Errorf("search query = %q", q)
	}
	if len(p.Items) != 1 || p.Items[0].FullName != "gitea-admin/app" || !p.Items[0].Private || p.NextPage != 0 {
		t.Errorf("Repositories = %+v (no rel=next: the last page)", p)
	}
	id, err := h.CreateHook(ctx, "gitea-admin/app", Hook{URL: "http://127.0.0.1:9/hooks/h", Secret: "sec"})
	if err != nil || id != "5" {
		t.Fatalf("CreateHook = %q, %v", id, err)
	}
	body := f.last().Body
	if body["type"] != "gitea" || body["active"] != true || fmt.Sprint(body["events"]) != "[push]" {
		t.Errorf("create body = %v", body)
	}
	if c := config(t, body); c["url"] != "http://127.0.0.1:9/hooks/h" || c["content_type"] != "json" || c["secret"] != "sec" {
		t.Errorf("create config = %v", c)
	}
	// Gitea's API cannot change a hook's secret: the hook is deleted and made again.
	n := len(f.reqs)
	got, err := h.UpdateHook(ctx, "gitea-admin/app", id, Hook{URL: "http://127.0.0.1:9/hooks/h", Secret: "sec2"})
	if err != nil || got != "5" {
		t.Fatalf("UpdateHook = %q, %v", got, err)
	}
	if del, post := f.reqs[n], f.reqs[n+1]; del.Method != "DELETE" || del.Path != "/api/v1/repos/gitea-admin/app/hooks/5" ||
		post.Method != "POST" || config(t, post.Body)["secret"] != "sec2" || post.Body["type"] != "gitea" {
		t.Errorf("update = %s %s, then %s %v", del.Method, del.Path, post.Method, post.Body)
	}
	if err := h.DeleteHook(ctx, "gitea-admin/app", id); err != nil {
		t.Fatal(err)
	}
}

func TestBitbucket(t *testing.T) {
	f, srv := newFake(t, map[string]func(http.ResponseWriter, *http.Request, map[string]any){
		"GET /2.0/user": jsonAnswer(200, `{"username":"evzijst","type":"user"}`),
		"GET /2.0/repositories": jsonAnswer(200, `{"pagelen":30,"page":1,"next":"https://api.bitbucket.org/2.0/repositories?role=member&page=2","values":[
			{"full_name":"atlassian/app","is_private":true,"mainbranch":{"name":"master","type":"branch"},
			 "links":{"clone":[{"name":"https","href":"https://evzijst@bitbucket.org/atlassian/app.git"},{"name":"ssh","href":"git@bitbucket.org:atlassian/app.git"}]}}]}`),
		"POST /2.0/repositories/atlassian/app/hooks":                                           jsonAnswer(201, `{"uuid":"{8bc4e7e4-2d3b-4b9a-9f5c-1b2c3d4e5f60}","url":"https://berth.example/hooks/abc","events":["repo:push"]}`),
		"PUT /2.0/repositories/atlassian/app/hooks/%7B8bc4e7e4-2d3b-4b9a-9f5c-1b2c3d4e5f60%7D": jsonAnswer(200, `{}`),
		"DELETE /2.0/repositories/atlassian/app/hooks/%7B8bc4e7e4-2d3b-4b9a-9f5c-1b2c3d4e5f60%7D": func(w http.ResponseWriter, _ *http.Request, _ map[string]any) {
			w.WriteHeader(204)
		},
	})
	ctx := context.Background()
	h := mustHost(t, Account{Provider: "bitbucket", BaseURL: srv.URL + "/2.0", Username: "evzijst", Token: "app-pass"})
	if login, err := h.User(ctx); err != nil || login != "evzijst" {
		t.Fatalf("User = %q, %v", login, err)
	}
	req := f.last()
	r, _ := http.NewRequest("GET", "/", nil)
	r.Header = req.Header
	if u, p, ok := r.BasicAuth(); !ok || u != "evzijst" || p != "app-pass" {
		t.Errorf("basic auth = %q %q %v", u, p, ok)
	}
	p, err := h.Repositories(ctx, `ap"p`, 1)
	if err != nil {
		t.Fatal(err)
	}
	if q := f.last().Query; !strings.Contains(q, "role=member") || !strings.Contains(q, "q=name~%22ap%5C%22p%22") {
		t.Errorf("list query = %q", q)
	}
	want := Repository{FullName: "atlassian/app", CloneURL: "https://bitbucket.org/atlassian/app.git", DefaultBranch: "master", Private: true}
	if len(p.Items) != 1 || p.Items[0] != want || p.NextPage != 2 {
		t.Errorf("Repositories = %+v, want %+v with next page 2", p, want)
	}
	id, err := h.CreateHook(ctx, "atlassian/app", Hook{URL: "https://berth.example/hooks/abc", Secret: "sec"})
	if err != nil || id != "{8bc4e7e4-2d3b-4b9a-9f5c-1b2c3d4e5f60}" {
		t.Fatalf("CreateHook = %q, %v", id, err)
	}
	body := f.last().Body
	if body["url"] != "https://berth.example/hooks/abc" || body["secret"] != "sec" || body["active"] != true || fmt.Sprint(body["events"]) != "[repo:push]" {
		t.Errorf("create body = %v", body)
	}
	if got, err := h.UpdateHook(ctx, "atlassian/app", id, Hook{URL: "https://berth.example/hooks/abc", Secret: "sec2"}); err != nil || got != id {
		t.Fatalf("UpdateHook = %q, %v", got, err)
	}
	if req := f.last(); req.Method != "PUT" || req.Body["secret"] != "sec2" {
		t.Errorf("update = %s %v", req.Method, req.Body)
	}
	if err := h.DeleteHook(ctx, "atlassian/app", id); err != nil {
		t.Fatal(err)
	}
}

func TestErrors(t *testing.T) {
	_, srv := newFake(t, map[string]func(http.ResponseWriter, *http.Request, map[string]any){
		"GET /bad/user":     jsonAnswer(401, `{"message":"Bad credentials","documentation_url":"https://docs.github.com/rest"}`),
		"GET /scope/user":   jsonAnswer(403, `{"message":"Resource not accessible by personal access token"}`),
		"GET /limit/user":   jsonAnswer(403, `{"message":"API rate limit exceeded"}`, "X-RateLimit-Remaining", "0"),
		"GET /limit2/user":  jsonAnswer(429, `{"message":"slow down"}`),
		"GET /invalid/user": jsonAnswer(422, `{"message":"Validation Failed","errors":[{"message":"Hook already exists on this repository"}]}`),
		"GET /gitlab/user":  jsonAnswer(401, `{"message":"401 Unauthorized"}`),
		"GET /bb/user":      jsonAnswer(401, `{"type":"error","error":{"message":"Invalid credentials"}}`),
		"GET /html/user":    func(w http.ResponseWriter, _ *http.Request, _ map[string]any) { _, _ = io.WriteString(w, "<html>") },
		"GET /huge/user": func(w http.ResponseWriter, _ *http.Request, _ map[string]any) {
			_, _ = io.WriteString(w, `{"login":"`+strings.Repeat("a", MaxResponse)+`"}`)
		},
		"GET /redirect/user": func(w http.ResponseWriter, r *http.Request, _ map[string]any) {
			http.Redirect(w, r, "http://example.invalid/user", http.StatusFound)
		},
	})
	for _, tc := range []struct {
		path string
		kind error
		msg  string
	}{
		{"/bad", ErrUnauthorized, "HTTP 401 (Bad credentials)"},
		{"/scope", ErrForbidden, "scopes"},
		{"/limit", ErrRateLimited, "try again later"},
		{"/limit2", ErrRateLimited, "HTTP 429"},
		{"/invalid", ErrInvalid, "Hook already exists"},
		{"/gitlab", ErrUnauthorized, "401 Unauthorized"},
		{"/bb", ErrUnauthorized, "Invalid credentials"},
		{"/html", ErrInvalid, "is base_url the API root?"},
		{"/huge", ErrInvalid, "larger than"},
		{"/redirect", ErrInvalid, "HTTP 302"},
		{"/missing", ErrNotFound, "check the repository name and the base_url"},
	} {
		h := mustHost(t, Account{Provider: "github", BaseURL: srv.URL + tc.path, Token: "t"})
		_, err := h.User(context.Background())
		var he *Error
		if !errors.Is(err, tc.kind) || !errors.As(err, &he) || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: %v, want %v saying %q", tc.path, err, tc.kind, tc.msg)
		}
		if err != nil && strings.Contains(err.Error(), "Bearer t") {
			t.Errorf("%s: the error shows the token: %v", tc.path, err)
		}
	}
}

// TestGuard: the host API is reached only where the guard allows, as code sources are (--source-allow-cidr).
func TestGuard(t *testing.T) {
	_, srv := newFake(t, map[string]func(http.ResponseWriter, *http.Request, map[string]any){
		"GET /api/v1/user": jsonAnswer(200, `{"login":"x"}`),
	})
	h, err := New(Account{Provider: "gitea", BaseURL: srv.URL + "/api/v1", Token: "t"}, &outbound.Guard{Flag: "--source-allow-cidr"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = h.User(context.Background())
	if !errors.Is(err, ErrUnavailable) || !errors.Is(err, outbound.ErrRefused) || !strings.Contains(err.Error(), "--source-allow-cidr") {
		t.Fatalf("User through a guard that refuses loopback: %v, want a refusal naming --source-allow-cidr", err)
	}
}

func TestBaseURL(t *testing.T) {
	for _, tc := range []struct{ provider, base, want, err string }{
		{"github", "", "https://api.github.com", ""},
		{"gitlab", "", "https://gitlab.com/api/v4", ""},
		{"bitbucket", "", "https://api.bitbucket.org/2.0", ""},
		{"gitea", "", "", "base_url is required"},
		{"gitea", "https://git.example.com/api/v1/", "https://git.example.com/api/v1", ""},
		{"github", "ftp://x/api/v3", "", "must be an http(s) URL"},
		{"github", "https://user:pw@x/api/v3", "", "without credentials"},
		{"gitlab", "https://x/api/v4?a=b", "", "without credentials or query"},
	} {
		got, err := CheckBaseURL(tc.provider, tc.base)
		if got != tc.want || (err == nil) != (tc.err == "") || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("CheckBaseURL(%s, %q) = %q, %v; want %q, %q", tc.provider, tc.base, got, err, tc.want, tc.err)
		}
	}
	for _, tc := range []struct{ provider, clone, base, name string }{
		{"github", "https://github.com/octocat/Hello-World.git", "https://api.github.com", "octocat/Hello-World"},
		{"github", "https://ghe.example.com/org/app", "https://ghe.example.com/api/v3", "org/app"},
		{"gitlab", "git@gitlab.example.com:group/sub/app.git", "https://gitlab.example.com/api/v4", "group/sub/app"},
		{"gitea", "http://127.0.0.1:3000/admin/app.git", "http://127.0.0.1:3000/api/v1", "admin/app"},
		{"bitbucket", "https://bitbucket.org/ws/app.git", "https://api.bitbucket.org/2.0", "ws/app"},
		{"gitea", "ssh://git@git.example.com:2222/admin/app.git", "https://git.example.com/api/v1", "admin/app"},
	} {
		base, name, err := BaseURLFor(tc.provider, tc.clone)
		if err != nil || base != tc.base || name != tc.name {
			t.Errorf("BaseURLFor(%s, %s) = %q, %q, %v; want %q, %q", tc.provider, tc.clone, base, name, err, tc.base, tc.name)
		}
	}
	if _, err := ownerRepo("/", "../x"); err == nil {
		t.Error("ownerRepo(../x) accepted")
	}
	if _, err := ownerRepo("/", "a/b?c"); err == nil {
		t.Error("ownerRepo(a/b?c) accepted")
	}
}
