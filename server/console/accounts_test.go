package console_test

import (
	"encoding/json"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"net/url"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/berth-dev/berth/server/app"
	"github.com/berth-dev/berth/server/app/apptest"
)

// giteaHost is a Gitea as far as the console's pages reach it: its API (/api/v1: the token's user, a
// repository search paged by the Link header, a repository, hook creation) for the token "good-token", and
// the repository alice/app served over Git's smart HTTP, with branches main and develop and the tag v1.0.0.
type giteaHost struct {
	URL   string
	mu    sync.Mutex
	hooks []string // the URLs of the hooks created
}

func newGiteaHost(t *testing.T) *giteaHost {
	t.Helper()
	root := t.TempDir()
	git := func(dir string, args ...string) {
		t.Helper()
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		cmd.Env = append(cmd.Environ(), "GIT_AUTHOR_NAME=dev", "GIT_AUTHOR_EMAIL=dev@example.com", "GIT_COMMITTER_NAME=dev",
			"GIT_COMMITTER_EMAIL=dev@example.com")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	bare := filepath.Join(root, "alice", "app.git")
	git(root, "init", "-q", "--bare", "-b", "main", bare)
	git(root, "init", "-q", "-b", "main", "work")
	work := filepath.Join(root, "work")
	git(work, "commit", "-q", "--allow-empty", "-m", "first")
	for _, ref := range []string{"HEAD:refs/heads/main", "HEAD:refs/heads/develop", "HEAD:refs/tags/v1.0.0"} {
		git(work, "push", "-q", bare, ref)
	}
	out, err := exec.Command("git", "--exec-path").Output()
	if err != nil {
		t.Fatal(err)
	}
	gitHTTP := &cgi.Handler{Path: filepath.Join(strings.TrimSpace(string(out)), "git-http-backend"),
		Env: []string{"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1"}}
	h := &giteaHost{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, api := strings.CutPrefix(r.URL.Path, "/api/v1")
		if !api {
			gitHTTP.ServeHTTP(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		if r.Header.Get("Authorization") != "token good-token" {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"message":"invalid token"}`))
			return
		}
		repo := func(name string) map[string]any {
			return map[string]any{"full_name": name, "clone_url": h.URL + "/" + name + ".git", "default_branch": "main", "private": false}
		}
		var v any
		switch {
		case p == "/user":
			v = map[string]any{"login": "alice"}
		case p == "/repos/search": // two pages: alice/app, then alice/site
			name := "alice/app"
			if r.URL.Query().Get("page") == "2" {
				name = "alice/site"
			} else if r.URL.Query().Get("q") == "" {
				w.Header().Set("Link", `<`+h.URL+`/api/v1/repos/search?page=2>; rel="next"`)
			}
			v = map[string]any{"ok": true, "data": []any{repo(name)}}
		case r.Method == "GET" && strings.HasPrefix(p, "/repos/alice/"):
			v = repo(strings.TrimPrefix(p, "/repos/"))
		case r.Method == "POST" && strings.HasSuffix(p, "/hooks"):
			var body struct{ Config map[string]string }
			_ = json.NewDecoder(r.Body).Decode(&body)
			h.mu.Lock()
			h.hooks = append(h.hooks, body.Config["url"])
			h.mu.Unlock()
			w.WriteHeader(http.StatusCreated)
			v = map[string]any{"id": 1}
		default:
			w.WriteHeader(http.StatusNotFound)
			v = map[string]any{"message": "Not Found"}
		}
		_ = json.NewEncoder(w).Encode(v)
	}))
	t.Cleanup(srv.Close)
	h.URL = srv.URL
	return h
}

// TestConsoleCodeAccounts: the Code accounts page binds (the host's refusal of a token shown), lists and
// deletes accounts; step 2 of "Create repository" lists an account's repositories (paged as the host pages),
// chooses one with its default branch, and connects it (webhook registered at the host, a rule for the
// branch); the build page then offers the repository's real branches and tags.
func TestConsoleCodeAccounts(t *testing.T) {
	host := newGiteaHost(t)
	in := apptest.Start(t, apptest.Options{Configure: func(c *app.Config) { c.SourceAllow = []string{"127.0.0.0/8"} }})
	in.MustAdmin(t, "POST", "/api/v1/namespaces", map[string]any{"name": "team"})
	b := newBrowser(t, in)
	b.signIn("admin", apptest.AdminPassword)
	if st, body := b.get("/namespaces"); st != 200 || !strings.Contains(body, `<a href="/code-accounts">Code accounts</a>`) {
		t.Fatalf("nav: %d\n%s", st, body)
	}
	st, body := b.get("/code-accounts")
	if st != 200 || !strings.Contains(body, "No code accounts bound yet.") || !strings.Contains(body, `action="/code-accounts"`) {
		t.Fatalf("code accounts: %d\n%s", st, body)
	}
	bind := url.Values{"provider": {"gitea"}, "base_url": {host.URL + "/api/v1"}, "username": {"alice"}, "token": {"bad-token"}}
	st, _, body = b.post("/code-accounts", bind)
	if st != http.StatusUnprocessableEntity || !strings.Contains(body, "invalid token") || !strings.Contains(body, `value="alice"`) ||
		strings.Contains(body, "bad-token") {
		t.Fatalf("a refused token: %d\n%s", st, body)
	}
	bind.Set("token", "good-token")
	st, _, body = b.post("/code-accounts", bind)
	if st != 200 || !strings.Contains(body, "is bound") || !strings.Contains(body, "<td>gitea</td><td>alice</td>") || strings.Contains(body, "good-token") {
		t.Fatalf("bind: %d\n%s", st, body)
	}
	acct := in.MustAdmin(t, "GET", "/api/v1/code-accounts", nil).Items()[0]["id"].(string)

	// Step 1, then step 2 through the account.
	if st, h, body := b.post("/namespaces/team/repositories", url.Values{"name": {"app"}}); st != http.StatusSeeOther ||
		h.Get("Location") != "/repositories/team/app/connect" {
		t.Fatalf("step 1: %d %v\n%s", st, h, body)
	}
	st, body = b.get("/repositories/team/app/connect")
	if st != 200 || !strings.Contains(body, `<option value="`+acct+`">gitea: alice (`+host.URL+`/api/v1)</option>`) {
		t.Fatalf("step 2: %d\n%s", st, body)
	}
	st, body = b.get("/repositories/team/app/connect?account=" + acct)
	if st != 200 || !strings.Contains(body, "<td>alice/app</td>") || !strings.Contains(body, `href="/repositories/team/app/connect?account=`+acct+`&amp;page=2"`) {
		t.Fatalf("the account's repositories: %d\n%s", st, body)
	}
	if _, body = b.get("/repositories/team/app/connect?account=" + acct + "&page=2"); !strings.Contains(body, "<td>alice/site</td>") || strings.Contains(body, "<td>alice/app</td>") {
		t.Fatalf("page 2:\n%s", body)
	}
	st, body = b.get("/repositories/team/app/connect?account=" + acct + "&repository=alice/app")
	if st != 200 || !strings.Contains(body, `<input type="hidden" name="repository" value="alice/app">`) || !strings.Contains(body, `id="cn-branch" name="branch" value="main"`) {
		t.Fatalf("chosen: %d\n%s", st, body)
	}
	st, _, body = b.post("/repositories/team/app/connect", url.Values{"mode": {"account"}, "account": {acct}, "repository": {"alice/app"},
		"branch": {"main"}, "auto_build": {"on"}})
	if st != 200 || !strings.Contains(body, "The code source is connected.") || !strings.Contains(body, "builds branch main") ||
		!strings.Contains(body, "REGISTERED") || !strings.Contains(body, host.URL+"/alice/app.git") {
		t.Fatalf("connect: %d\n%s", st, body)
	}
	src := in.MustAdmin(t, "GET", "/api/v1/repositories/team/app/source", nil)
	if src.JSON["account_id"] != acct || src.JSON["repository"] != "alice/app" || src.JSON["webhook_registered"] != true ||
		len(host.hooks) != 1 || host.hooks[0] != src.JSON["webhook_url"] {
		t.Fatalf("source %s, hooks at the host %v", src.Body, host.hooks)
	}
	// The build page offers the Git server's branches and tags for rules (read by console.js once the page is
	// shown, from the console's JSON answer of the API's …/source/refs).
	st, body = b.get("/repositories/team/app/build")
	for _, want := range []string{`<datalist id="refs-BRANCH"></datalist><datalist id="refs-TAG"></datalist>`,
		`data-refs-url="/repositories/team/app/source/refs"`, `id="rule-ref" name="source_ref" required placeholder="main" value="" list="refs-BRANCH"`} {
		if st != 200 || !strings.Contains(body, want) {
			t.Fatalf("build page: %d, no %q\n%s", st, want, body)
		}
	}
	st, body = b.get("/repositories/team/app/source/refs")
	var refs struct{ Branches, Tags []string }
	if err := json.Unmarshal([]byte(body), &refs); st != 200 || err != nil || strings.Join(refs.Branches, ",") != "develop,main" ||
		strings.Join(refs.Tags, ",") != "v1.0.0" {
		t.Fatalf("refs: %d %v\n%s", st, err, body)
	}

	// An account in use is not deleted (the API's message); once the source is disconnected it is.
	st, _, body = b.post("/code-accounts/"+acct+"/delete", nil)
	if st != http.StatusConflict || !strings.Contains(body, "team/app") {
		t.Fatalf("delete an account in use: %d\n%s", st, body)
	}
	in.MustAdmin(t, "DELETE", "/api/v1/repositories/team/app/source", nil)
	if st, h, body := b.post("/code-accounts/"+acct+"/delete", nil); st != http.StatusSeeOther || h.Get("Location") != "/code-accounts" {
		t.Fatalf("delete: %d %v\n%s", st, h, body)
	}
	if _, body = b.get("/code-accounts"); !strings.Contains(body, "No code accounts bound yet.") {
		t.Fatalf("after delete:\n%s", body)
	}
}

// TestConsoleBindReturnsOnlyToConnect: a bind form's next sends the browser back to a step 2 page only.
func TestConsoleBindReturnsOnlyToConnect(t *testing.T) {
	host := newGiteaHost(t)
	in := apptest.Start(t, apptest.Options{Configure: func(c *app.Config) { c.SourceAllow = []string{"127.0.0.0/8"} }})
	b := newBrowser(t, in)
	b.signIn("admin", apptest.AdminPassword)
	for next, want := range map[string]string{
		"/repositories/team/app/connect": "/repositories/team/app/connect?account=",
		"//evil.example/x/y/connect":     "",
		"/repositories/../../x/connect":  "",
		"https://evil.example/":          "",
	} {
		st, h, body := b.post("/code-accounts", url.Values{"provider": {"gitea"}, "base_url": {host.URL + "/api/v1"}, "username": {"alice"},
			"token": {"good-token"}, "next": {next}})
		switch loc := h.Get("Location"); {
		case want != "" && (st != http.StatusSeeOther || !strings.HasPrefix(loc, want)):
			t.Fatalf("next %q: %d %q", next, st, loc)
		case want == "" && (st != 200 || loc != "" || !strings.Contains(body, "is bound")):
			t.Fatalf("next %q: %d %q", next, st, loc)
		}
	}
}
