package server_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/berth-dev/berth/server/app"
	"github.com/berth-dev/berth/server/app/apptest"
)

// fakeGitea answers Gitea's API for one token (Authorization: token good-token): the user, a repository
// search, repositories, and hooks it keeps, so a test sees what Berth registered there. Hooks of
// owner/broken are refused (403).
type fakeGitea struct {
	mu     sync.Mutex
	url    string
	hooks  map[string]map[string]any // id → {repo, url, secret, content_type, events}
	nextID int
	seen   []string // "METHOD path?query" of every call
	// failCreates and failUpdates make hook creation (POST) and updates (PATCH) fail (500), as a host that is
	// down for a moment.
	failCreates, failUpdates bool
}

func newFakeGitea(t *testing.T) *fakeGitea {
	f := &fakeGitea{hooks: map[string]map[string]any{}, nextID: 1}
	srv := httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(srv.Close)
	f.url = srv.URL
	return f
}

func (f *fakeGitea) repo(name string) map[string]any {
	return map[string]any{"full_name": name, "clone_url": f.url + "/" + name + ".git", "default_branch": "main", "private": true}
}

func (f *fakeGitea) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.seen = append(f.seen, r.Method+" "+r.URL.RequestURI())
	w.Header().Set("Content-Type", "application/json")
	// Gitea's token header, or GitHub's (whose repository and hook routes Gitea's mirror).
	if a := r.Header.Get("Authorization"); a != "token good-token" && a != "Bearer good-token" {
		w.WriteHeader(401)
		_, _ = w.Write([]byte(`{"message":"user does not exist [uid: 0, name: ]"}`))
		return
	}
	p := strings.TrimPrefix(r.URL.Path, "/api/v1")
	parts := strings.Split(strings.Trim(p, "/"), "/")
	answer := func(status int, v any) {
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(v)
	}
	switch {
	case r.Method == "GET" && p == "/user":
		answer(200, map[string]any{"id": 1, "login": "alice"})
	case r.Method == "GET" && p == "/repos/search":
		var data []any
		for _, n := range []string{"alice/app", "alice/broken", "alice/site"} {
			if strings.Contains(n, r.URL.Query().Get("q")) {
				data = append(data, f.repo(n))
			}
		}
		answer(200, map[string]any{"ok": true, "data": data})
	case r.Method == "GET" && len(parts) == 3 && parts[0] == "repos":
		if parts[2] == "missing" {
			answer(404, map[string]any{"message": "The target couldn't be found."})
			return
		}
		answer(200, f.repo(parts[1]+"/"+parts[2]))
	case len(parts) >= 4 && parts[0] == "repos" && parts[3] == "hooks":
		repo := parts[1] + "/" + parts[2]
		if parts[2] == "broken" {
			answer(403, map[string]any{"message": "token does not have at least one of required scope(s): [write:repository]"})
			return
		}
		var body struct {
			Config map[string]string `json:"config"`
			Events []string          `json:"events"`
			Type   string            `json:"type"`
		}
		_ = json.NewDecoder(r.Body).Decode(&body)
		switch {
		case r.Method == "POST" && f.failCreates, r.Method == "PATCH" && f.failUpdates:
			answer(500, map[string]any{"message": "internal error"})
		case r.Method == "POST" && len(parts) == 4:
			id := fmt.Sprint(f.nextID)
			f.nextID++
			f.hooks[id] = map[string]any{"repo": repo, "url": body.Config["url"], "secret": body.Config["secret"],
				"content_type": body.Config["content_type"], "events": strings.Join(body.Events, ","), "type": body.Type}
			answer(201, map[string]any{"id": f.nextID - 1})
		case r.Method == "PATCH" && len(parts) == 5 && f.hooks[parts[4]] != nil:
			f.hooks[parts[4]]["secret"] = body.Config["secret"]
			answer(200, map[string]any{"id": parts[4]})
		case r.Method == "DELETE" && len(parts) == 5 && f.hooks[parts[4]] != nil:
			delete(f.hooks, parts[4])
			w.WriteHeader(204)
		default:
			answer(404, map[string]any{"message": "Not Found"})
		}
	default:
		answer(404, map[string]any{"message": "Not Found"})
	}
}

func (f *fakeGitea) hooksOf(repo string) []map[string]any {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []map[string]any
	for _, h := range f.hooks {
		if h["repo"] == repo {
			out = append(out, h)
		}
	}
	return out
}

// TestCodeAccountAPI: binding a Git host account, listing what its token sees, connecting sources by account,
// and the webhook Berth registers, updates and deletes at the host (a fake Gitea that keeps its hooks).
func TestCodeAccountAPI(t *testing.T) {
	host := newFakeGitea(t)
	in := apptest.Start(t, apptest.Options{Configure: func(c *app.Config) { c.SourceAllow = []string{"127.0.0.0/8"} }})
	in.Admin(t, "POST", "/api/v1/namespaces", map[string]any{"name": "team"})
	for _, name := range []string{"app", "other", "manual"} {
		if r := in.Admin(t, "POST", "/api/v1/namespaces/team/repositories", map[string]any{"name": name}); r.Status != 201 {
			t.Fatalf("repository: %s", r.Body)
		}
	}
	base := host.url + "/api/v1"

	for _, c := range []struct {
		name   string
		body   map[string]any
		status int
		says   string
	}{
		{"unknown provider", map[string]any{"provider": "svn", "base_url": base, "token": "x"}, 400, "provider must be one of"},
		{"gitea needs base_url", map[string]any{"provider": "gitea", "token": "x"}, 400, "base_url is required"},
		{"bad base_url", map[string]any{"provider": "gitea", "base_url": "ftp://x/api/v1", "token": "x"}, 400, "base_url must be"},
		{"no token", map[string]any{"provider": "gitea", "base_url": base}, 400, "token is required"},
		{"token the host refuses", map[string]any{"provider": "gitea", "base_url": base, "token": "bad-token"}, 422, "HTTP 401 (user does not exist"},
	} {
		r := in.Admin(t, "POST", "/api/v1/code-accounts", c.body)
		if r.Status != c.status || !strings.Contains(string(r.Body), c.says) {
			t.Errorf("%s: %d %s, want %d saying %q", c.name, r.Status, r.Body, c.status, c.says)
		}
	}
	r := in.Admin(t, "POST", "/api/v1/code-accounts", map[string]any{"provider": "gitea", "base_url": base + "/", "token": "good-token"})
	if r.Status != 201 || r.JSON["login"] != "alice" || r.JSON["base_url"] != base || strings.Contains(string(r.Body), "good-token") {
		t.Fatalf("create: %d %s", r.Status, r.Body)
	}
	id := r.JSON["id"].(string)
	if r := in.Admin(t, "GET", "/api/v1/code-accounts", nil); r.Status != 200 || len(r.Items()) != 1 || r.JSON["total"] != 1.0 ||
		strings.Contains(string(r.Body), "good-token") {
		t.Fatalf("list: %d %s", r.Status, r.Body)
	}
	if r := in.Admin(t, "GET", "/api/v1/code-accounts/"+id, nil); r.Status != 200 || r.JSON["provider"] != "gitea" {
		t.Fatalf("get: %d %s", r.Status, r.Body)
	}
	if r := in.Admin(t, "GET", "/api/v1/code-accounts/nope", nil); r.Status != 404 {
		t.Fatalf("get missing: %d", r.Status)
	}
	r = in.Admin(t, "GET", "/api/v1/code-accounts/"+id+"/repositories?q=app&page=1", nil)
	if r.Status != 200 || len(r.Items()) != 1 || r.Items()[0]["full_name"] != "alice/app" || r.Items()[0]["clone_url"] != host.url+"/alice/app.git" ||
		r.Items()[0]["private"] != true || r.Items()[0]["default_branch"] != "main" {
		t.Fatalf("repositories: %d %s", r.Status, r.Body)
	}
	if last := host.seen[len(host.seen)-1]; !strings.Contains(last, "/api/v1/repos/search?") || !strings.Contains(last, "q=app") {
		t.Errorf("the host was asked %q", last)
	}
	if r := in.Admin(t, "GET", "/api/v1/code-accounts/"+id+"/repositories?page=0", nil); r.Status != 400 {
		t.Errorf("page 0: %d", r.Status)
	}

	src := "/api/v1/repositories/team/app/source"
	for _, c := range []struct {
		name string
		body map[string]any
		says string
	}{
		{"no repository", map[string]any{"account_id": id}, "repository (owner/name on the Git host) is required"},
		{"account and url", map[string]any{"account_id": id, "repository": "alice/app", "url": "https://x/a.git"}, "give repository, not url"},
		{"missing account", map[string]any{"account_id": "nope", "repository": "alice/app"}, "no such code account"},
		{"other provider", map[string]any{"account_id": id, "repository": "alice/app", "provider": "github"}, "differs from the code account"},
	} {
		if r := in.Admin(t, "PUT", src, c.body); r.Status != 400 || !strings.Contains(string(r.Body), c.says) {
			t.Errorf("%s: %d %s", c.name, r.Status, r.Body)
		}
	}
	if r := in.Admin(t, "PUT", src, map[string]any{"account_id": id, "repository": "alice/missing"}); r.Status != 422 || !strings.Contains(string(r.Body), "HTTP 404") {
		t.Errorf("a repository the host does not have: %d %s", r.Status, r.Body)
	}

	// A user who may change this repository's source but not use code accounts cannot borrow the account's
	// token; with cr:GetCodeAccount added, the same request connects.
	devPass := newUser(t, in, "dev", []string{`{"Version":"1","Statement":[{"Effect":"Allow","Action":"cr:*","Resource":"acs:cr:*:*:repository/team/manual"}]}`})
	manual := "/api/v1/repositories/team/manual/source"
	if r := in.Call(t, "dev", devPass, "PUT", manual, map[string]any{"account_id": id, "repository": "alice/app"}); r.Status != 403 ||
		!strings.Contains(string(r.Body), "cr:GetCodeAccount") {
		t.Fatalf("connect by an account the user may not use: %d %s", r.Status, r.Body)
	}
	if r := in.Admin(t, "GET", manual, nil); r.Status != 404 {
		t.Fatalf("the refused connect left a source: %d %s", r.Status, r.Body)
	}
	expect(t, "allow cr:GetCodeAccount", in.Admin(t, "POST", "/api/v1/policies", map[string]any{"name": "use-accounts",
		"document": rawJSON(`{"Version":"1","Statement":[{"Effect":"Allow","Action":"cr:GetCodeAccount","Resource":"*"}]}`)}), 201)
	expect(t, "attach use-accounts", in.Admin(t, "PUT", "/api/v1/users/dev/policies/use-accounts", nil), 200)
	if r := in.Call(t, "dev", devPass, "PUT", manual, map[string]any{"account_id": id, "repository": "alice/app", "register_webhook": false}); r.Status != 201 {
		t.Fatalf("connect by account with cr:GetCodeAccount: %d %s", r.Status, r.Body)
	}
	if r := in.Admin(t, "DELETE", manual, nil); r.Status != 204 {
		t.Fatalf("disconnect: %d %s", r.Status, r.Body)
	}

	// Connected by account: the clone URL is the host's, the hook is registered with the webhook URL and secret.
	r = in.Admin(t, "PUT", src, map[string]any{"account_id": id, "repository": "alice/app"})
	if r.Status != 201 || r.JSON["webhook_registered"] != true || r.JSON["webhook_error"] != "" || r.JSON["provider"] != "gitea" ||
		r.JSON["url"] != host.url+"/alice/app.git" || r.JSON["account_id"] != id || r.JSON["repository"] != "alice/app" {
		t.Fatalf("connect by account: %d %s", r.Status, r.Body)
	}
	secret, hookURL := r.JSON["webhook_secret"].(string), r.JSON["webhook_url"].(string)
	hooks := host.hooksOf("alice/app")
	if len(hooks) != 1 || hooks[0]["url"] != hookURL || hooks[0]["secret"] != secret || hooks[0]["content_type"] != "json" ||
		hooks[0]["events"] != "push" || hooks[0]["type"] != "gitea" {
		t.Fatalf("hooks at the host: %v (webhook %s)", hooks, hookURL)
	}
	if r := in.Admin(t, "GET", src, nil); r.JSON["webhook_registered"] != true || r.JSON["repository"] != "alice/app" || r.JSON["webhook_secret"] != nil {
		t.Fatalf("get source: %s", r.Body)
	}
	// Changing a setting leaves the hook and the account alone, also when the same url and provider come again
	// (as a settings form sends them).
	if r := in.Admin(t, "PUT", src, map[string]any{"no_cache": true}); r.Status != 200 || len(host.hooksOf("alice/app")) != 1 {
		t.Fatalf("put no_cache: %d %s; hooks %v", r.Status, r.Body, host.hooksOf("alice/app"))
	}
	r = in.Admin(t, "PUT", src, map[string]any{"provider": "gitea", "url": host.url + "/alice/app.git", "auto_build": true})
	if r.Status != 200 || r.JSON["account_id"] != id || r.JSON["webhook_registered"] != true || len(host.hooksOf("alice/app")) != 1 {
		t.Fatalf("put the same url again: %d %s; hooks %v", r.Status, r.Body, host.hooksOf("alice/app"))
	}
	if r := in.Admin(t, "PUT", src, map[string]any{"token": "other"}); r.Status != 400 || !strings.Contains(string(r.Body), "code account's") {
		t.Fatalf("a token for an account source: %d %s", r.Status, r.Body)
	}

	// Rotation gives the hook the new secret.
	r = in.Admin(t, "POST", src+"/rotate-secret", nil)
	if r.Status != 200 || r.JSON["webhook_registered"] != true {
		t.Fatalf("rotate: %d %s", r.Status, r.Body)
	}
	if hooks := host.hooksOf("alice/app"); len(hooks) != 1 || hooks[0]["secret"] != r.JSON["webhook_secret"] || hooks[0]["secret"] == secret {
		t.Fatalf("hook after rotation: %v", hooks)
	}

	// A rotation the host fails half-way (Gitea's update deletes the hook, then creating it again fails):
	// register_webhook true then makes the one hook again, with the new secret.
	host.mu.Lock()
	host.failCreates = true
	host.mu.Unlock()
	r = in.Admin(t, "POST", src+"/rotate-secret", nil)
	if r.Status != 200 || r.JSON["webhook_registered"] != false || !strings.Contains(fmt.Sprint(r.JSON["webhook_error"]), "500") {
		t.Fatalf("rotate while the host fails: %d %s", r.Status, r.Body)
	}
	host.mu.Lock()
	host.failCreates = false
	host.mu.Unlock()
	newSecret := r.JSON["webhook_secret"].(string)
	r = in.Admin(t, "PUT", src, map[string]any{"register_webhook": true})
	if hooks := host.hooksOf("alice/app"); r.Status != 200 || r.JSON["webhook_registered"] != true || len(hooks) != 1 || hooks[0]["secret"] != newSecret {
		t.Fatalf("register again after a failed rotation: %d %s; hooks %v", r.Status, r.Body, hooks)
	}

	// The same on a host that updates a hook in place (GitHub's PATCH): the failed rotation keeps the hook's id,
	// and register_webhook true updates that hook instead of adding a second one.
	r = in.Admin(t, "POST", "/api/v1/code-accounts", map[string]any{"provider": "github", "base_url": base, "token": "good-token"})
	if r.Status != 201 {
		t.Fatalf("a GitHub-shaped account: %d %s", r.Status, r.Body)
	}
	ghSrc := "/api/v1/repositories/team/manual/source"
	if r := in.Admin(t, "PUT", ghSrc, map[string]any{"account_id": r.JSON["id"], "repository": "alice/site"}); r.Status != 201 ||
		r.JSON["webhook_registered"] != true || len(host.hooksOf("alice/site")) != 1 {
		t.Fatalf("connect by the GitHub-shaped account: %d %s", r.Status, r.Body)
	}
	host.mu.Lock()
	host.failUpdates = true
	host.mu.Unlock()
	r = in.Admin(t, "POST", ghSrc+"/rotate-secret", nil)
	if r.Status != 200 || r.JSON["webhook_registered"] != false {
		t.Fatalf("rotate while updates fail: %d %s", r.Status, r.Body)
	}
	host.mu.Lock()
	host.failUpdates = false
	host.mu.Unlock()
	newSecret = r.JSON["webhook_secret"].(string)
	r = in.Admin(t, "PUT", ghSrc, map[string]any{"register_webhook": true})
	if hooks := host.hooksOf("alice/site"); r.Status != 200 || r.JSON["webhook_registered"] != true || len(hooks) != 1 || hooks[0]["secret"] != newSecret {
		t.Fatalf("register again after a failed update: %d %s; hooks %v", r.Status, r.Body, hooks)
	}
	if r := in.Admin(t, "DELETE", ghSrc, nil); r.Status != 204 || len(host.hooksOf("alice/site")) != 0 {
		t.Fatalf("disconnect: %d; hooks %v", r.Status, host.hooksOf("alice/site"))
	}

	// The account is in use.
	if r := in.Admin(t, "DELETE", "/api/v1/code-accounts/"+id, nil); r.Status != 409 || !strings.Contains(string(r.Body), "team/app") {
		t.Fatalf("delete an account in use: %d %s", r.Status, r.Body)
	}

	// A host that refuses the hook does not lose the source.
	other := "/api/v1/repositories/team/other/source"
	r = in.Admin(t, "PUT", other, map[string]any{"account_id": id, "repository": "alice/broken"})
	if r.Status != 201 || r.JSON["webhook_registered"] != false || !strings.Contains(r.JSON["webhook_error"].(string), "HTTP 403") ||
		!strings.Contains(r.JSON["webhook_error"].(string), "write:repository") {
		t.Fatalf("connect with a refused hook: %d %s", r.Status, r.Body)
	}
	if r := in.Admin(t, "GET", other, nil); r.Status != 200 || r.JSON["webhook_registered"] != false || r.JSON["webhook_error"] == "" {
		t.Fatalf("the source is kept: %d %s", r.Status, r.Body)
	}
	// Moving it to another repository of the account registers there; register_webhook false deletes it.
	if r := in.Admin(t, "PUT", other, map[string]any{"repository": "alice/site"}); r.Status != 200 || r.JSON["webhook_registered"] != true ||
		len(host.hooksOf("alice/site")) != 1 {
		t.Fatalf("move to alice/site: %d %s", r.Status, r.Body)
	}
	if r := in.Admin(t, "PUT", other, map[string]any{"register_webhook": false}); r.Status != 200 || r.JSON["webhook_registered"] != false ||
		len(host.hooksOf("alice/site")) != 0 {
		t.Fatalf("register_webhook false: %d %s; hooks %v", r.Status, r.Body, host.hooksOf("alice/site"))
	}

	// A url instead detaches the source from the account (and from its credentials).
	if r := in.Admin(t, "PUT", other, map[string]any{"provider": "generic", "url": host.url + "/alice/site.git"}); r.Status != 200 ||
		r.JSON["account_id"] != nil || r.JSON["repository"] != nil || r.JSON["username"] != "" {
		t.Fatalf("detach: %d %s", r.Status, r.Body)
	}

	// A token on a provider other than generic registers too (the API root from the clone URL).
	manual = "/api/v1/repositories/team/manual/source"
	r = in.Admin(t, "PUT", manual, map[string]any{"provider": "gitea", "url": host.url + "/alice/site.git", "token": "good-token"})
	if r.Status != 201 || r.JSON["webhook_registered"] != true || len(host.hooksOf("alice/site")) != 1 {
		t.Fatalf("token source: %d %s", r.Status, r.Body)
	}
	if r := in.Admin(t, "DELETE", manual, nil); r.Status != 204 || len(host.hooksOf("alice/site")) != 0 {
		t.Fatalf("disconnect the token source: %d; hooks %v", r.Status, host.hooksOf("alice/site"))
	}
	// Generic sources register nothing unless asked, and then say why they cannot.
	r = in.Admin(t, "PUT", manual, map[string]any{"provider": "generic", "url": host.url + "/alice/site.git", "token": "good-token"})
	if r.Status != 201 || r.JSON["webhook_registered"] != false || r.JSON["webhook_error"] != "" {
		t.Fatalf("generic source: %d %s", r.Status, r.Body)
	}
	if r := in.Admin(t, "PUT", manual, map[string]any{"register_webhook": true}); r.JSON["webhook_registered"] != false ||
		!strings.Contains(r.JSON["webhook_error"].(string), "no credentials for the Git host's API") {
		t.Fatalf("generic source asked to register: %s", r.Body)
	}

	// Disconnecting deletes the hook; then the account may go.
	for _, p := range []string{src, other} {
		if r := in.Admin(t, "DELETE", p, nil); r.Status != 204 {
			t.Fatalf("delete %s: %d %s", p, r.Status, r.Body)
		}
	}
	if hooks := host.hooksOf("alice/app"); len(hooks) != 0 {
		t.Fatalf("hooks after disconnecting: %v", hooks)
	}
	if r := in.Admin(t, "DELETE", "/api/v1/code-accounts/"+id, nil); r.Status != 204 {
		t.Fatalf("delete the account: %d %s", r.Status, r.Body)
	}
}

// TestSourceRefs: the branches and tags of a source, read from the Git server (a file:// repository the
// administrator connected).
func TestSourceRefs(t *testing.T) {
	dir := t.TempDir()
	work, bare := filepath.Join(dir, "work"), filepath.Join(dir, "bare.git")
	for _, args := range [][]string{
		{"init", "-q", "-b", "main", work},
		{"-C", work, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "--allow-empty", "-m", "one"},
		{"-C", work, "tag", "v1.0"},
		{"-C", work, "branch", "dev"},
		{"clone", "-q", "--bare", work, bare},
	} {
		if out, err := exec.Command("git", args...).CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v %s", args, err, out)
		}
	}
	in := apptest.Start(t, apptest.Options{})
	in.Admin(t, "POST", "/api/v1/namespaces", map[string]any{"name": "team"})
	in.Admin(t, "POST", "/api/v1/namespaces/team/repositories", map[string]any{"name": "app"})
	api := "/api/v1/repositories/team/app/source"
	if r := in.Admin(t, "GET", api+"/refs", nil); r.Status != 404 {
		t.Fatalf("refs without a source: %d", r.Status)
	}
	if r := in.Admin(t, "PUT", api, map[string]any{"provider": "generic", "url": "file://" + bare}); r.Status != 201 {
		t.Fatalf("connect: %d %s", r.Status, r.Body)
	}
	r := in.Admin(t, "GET", api+"/refs", nil)
	if r.Status != 200 || fmt.Sprint(r.JSON["branches"]) != "[dev main]" || fmt.Sprint(r.JSON["tags"]) != "[v1.0]" || r.JSON["truncated"] != false {
		t.Fatalf("refs: %d %s", r.Status, r.Body)
	}
}
