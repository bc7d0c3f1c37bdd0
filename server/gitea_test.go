package server_test

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/server/app"
	"github.com/berth-dev/berth/server/app/apptest"
)

// giteaServer is a real Gitea (bin/gitea, built by scripts/install-gitea.sh) on loopback, with an
// administrator and an API token.
type giteaServer struct {
	URL, User, Password, Token string
}

// startGitea runs bin/gitea in a temporary directory until the test ends. It skips without bin/gitea, and
// fails when CI is set.
func startGitea(t *testing.T) *giteaServer {
	t.Helper()
	bin, err := filepath.Abs(filepath.Join("..", "bin", "gitea"))
	if err != nil {
		t.Fatal(err)
	}
	if v := os.Getenv("BERTH_TEST_GITEA"); v != "" {
		bin = v
	}
	_, err = os.Stat(bin)
	need(t, "bin/gitea (scripts/install-gitea.sh builds it, about 12 minutes the first time)", err)
	static := filepath.Join(filepath.Dir(bin), "gitea-data")
	_, err = os.Stat(filepath.Join(static, "templates"))
	need(t, "bin/gitea-data (scripts/install-gitea.sh)", err)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	dir := t.TempDir()
	var key [16]byte
	_, _ = rand.Read(key[:])
	ini := filepath.Join(dir, "app.ini")
	conf := fmt.Sprintf(`I_AM_BEING_UNSAFE_RUNNING_AS_ROOT = true
APP_NAME = berth-test
RUN_MODE = prod
WORK_PATH = %[1]s

[server]
PROTOCOL = http
HTTP_ADDR = 127.0.0.1
HTTP_PORT = %[2]d
ROOT_URL = http://127.0.0.1:%[2]d/
STATIC_ROOT_PATH = %[3]s
APP_DATA_PATH = %[1]s/data
DISABLE_SSH = true
OFFLINE_MODE = true
LFS_START_SERVER = false

[database]
DB_TYPE = sqlite3
PATH = %[1]s/gitea.db

[repository]
ROOT = %[1]s/repositories

[security]
INSTALL_LOCK = true
SECRET_KEY = %[4]s

[service]
DISABLE_REGISTRATION = true

[webhook]
ALLOWED_HOST_LIST = loopback
DELIVER_TIMEOUT = 20

[indexer]
REPO_INDEXER_ENABLED = false

[log]
MODE = console
LEVEL = Warn
ROOT_PATH = %[1]s/log
`, dir, port, static, hex.EncodeToString(key[:]))
	if err := os.WriteFile(ini, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), "GITEA_WORK_DIR="+dir, "HOME="+dir, "USER=root")
	gitea := func(args ...string) {
		t.Helper()
		cmd := exec.Command(bin, append(args, "--config", ini, "--work-path", dir)...)
		cmd.Env, cmd.Dir = env, dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("gitea %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	gitea("migrate")
	g := &giteaServer{URL: fmt.Sprintf("http://127.0.0.1:%d", port), User: "berth-admin", Password: "Berth-test-1234"}
	gitea("admin", "user", "create", "--admin", "--username", g.User, "--password", g.Password,
		"--email", "admin@example.com", "--must-change-password=false")

	logf, err := os.Create(filepath.Join(dir, "web.log"))
	if err != nil {
		t.Fatal(err)
	}
	web := exec.Command(bin, "web", "--config", ini, "--work-path", dir)
	web.Env, web.Dir, web.Stdout, web.Stderr = env, dir, logf, logf
	if err := web.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = web.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = web.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			_ = web.Process.Kill()
			<-exited
		}
		logf.Close()
		if t.Failed() {
			if b, err := os.ReadFile(filepath.Join(dir, "web.log")); err == nil {
				t.Logf("gitea web log:\n%s", b)
			}
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(g.URL + "/api/v1/version")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		select {
		case <-exited:
			b, _ := os.ReadFile(filepath.Join(dir, "web.log"))
			t.Fatalf("gitea web exited:\n%s", b)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("gitea did not answer on %s: %v", g.URL, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	var tok struct {
		Sha1 string `json:"sha1"`
	}
	if st := g.call(t, "POST", "/api/v1/users/"+g.User+"/tokens", map[string]any{"name": "berth",
		"scopes": []string{"write:repository", "write:user"}}, &tok, true); st != 201 || tok.Sha1 == "" {
		t.Fatalf("gitea token: %d", st)
	}
	g.Token = tok.Sha1
	return g
}

// call makes a Gitea API call (as the administrator, by password when basic, else by token) and decodes the
// answer into out; it returns the status.
func (g *giteaServer) call(t *testing.T, method, path string, body, out any, basic bool) int {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, g.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if basic {
		req.SetBasicAuth(g.User, g.Password)
	} else {
		req.Header.Set("Authorization", "token "+g.Token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if out != nil && json.Unmarshal(data, out) != nil && resp.StatusCode < 300 {
		t.Fatalf("gitea %s %s: %d %s", method, path, resp.StatusCode, data)
	}
	return resp.StatusCode
}

// hookURLs lists the URLs of a repository's webhooks, from Gitea's own list.
func (g *giteaServer) hookURLs(t *testing.T, repo string) []string {
	t.Helper()
	var hooks []struct {
		Config map[string]string `json:"config"`
		Active bool              `json:"active"`
		Events []string          `json:"events"`
	}
	if st := g.call(t, "GET", "/api/v1/repos/"+repo+"/hooks", nil, &hooks, false); st != 200 {
		t.Fatalf("gitea hooks of %s: %d", repo, st)
	}
	var urls []string
	for _, h := range hooks {
		urls = append(urls, h.Config["url"])
	}
	return urls
}

// TestGiteaAccount runs SPEC §16 against a real Gitea: bind a code account, list its repositories, connect a
// source by account (Berth registers the webhook: Gitea's own hook list shows it), push and build, rotate the
// secret and push again (the delivery still verifies), disconnect (the hook is gone from Gitea).
func TestGiteaAccount(t *testing.T) {
	g := startGitea(t)
	bk := buildkitAddr(t)
	in := apptest.Start(t, apptest.Options{Configure: func(c *app.Config) {
		c.BuildkitAddr = bk
		c.SourceAllow = []string{"127.0.0.0/8"}
	}})
	allowBuilds(t, in.Host)
	if r := in.Admin(t, "POST", "/api/v1/namespaces", map[string]any{"name": "library", "default_visibility": "PUBLIC"}); r.Status != 201 {
		t.Fatalf("namespace: %s", r.Body)
	}
	base := pushBusybox(t, in)
	in.Admin(t, "POST", "/api/v1/namespaces", map[string]any{"name": "team"})
	if r := in.Admin(t, "POST", "/api/v1/namespaces/team/repositories", map[string]any{"name": "app"}); r.Status != 201 {
		t.Fatalf("repository: %s", r.Body)
	}
	const repo = "team/app"
	api := "/api/v1/repositories/" + repo

	// A repository on Gitea (its first commit made by Gitea itself: a push made just before the webhook exists
	// may still be delivered to it, as Gitea handles pushes from a queue), cloned, with a Dockerfile pushed later.
	var created struct {
		FullName string `json:"full_name"`
		CloneURL string `json:"clone_url"`
	}
	if st := g.call(t, "POST", "/api/v1/user/repos", map[string]any{"name": "webapp", "private": true, "default_branch": "main", "auto_init": true, "readme": "Default"}, &created, false); st != 201 {
		t.Fatalf("gitea repository: %d", st)
	}
	work := filepath.Join(t.TempDir(), "work")
	pushURL := strings.Replace(created.CloneURL, "http://", "http://"+g.User+":"+g.Token+"@", 1)
	run(t, "", "git", "clone", "-q", pushURL, work)
	run(t, work, "git", "config", "user.email", "dev@example.com")
	run(t, work, "git", "config", "user.name", "Dev")
	commit := func(content string) string {
		t.Helper()
		files := map[string]string{"Dockerfile": "FROM " + base + "\nCOPY hello.txt /hello.txt\n", "hello.txt": content}
		for p, c := range files {
			if err := os.WriteFile(filepath.Join(work, p), []byte(c), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		run(t, work, "git", "add", "-A")
		run(t, work, "git", "commit", "-q", "-m", content)
		run(t, work, "git", "push", "-q", pushURL, "HEAD:refs/heads/main")
		return run(t, work, "git", "rev-parse", "HEAD")
	}

	// Bind the account; a wrong token is refused with Gitea's answer.
	if r := in.Admin(t, "POST", "/api/v1/code-accounts", map[string]any{"provider": "gitea", "base_url": g.URL + "/api/v1", "token": "0123456789abcdef"}); r.Status != 422 ||
		!strings.Contains(string(r.Body), "HTTP 401") {
		t.Fatalf("a wrong token: %d %s", r.Status, r.Body)
	}
	r := in.Admin(t, "POST", "/api/v1/code-accounts", map[string]any{"provider": "gitea", "base_url": g.URL + "/api/v1", "token": g.Token})
	if r.Status != 201 || r.JSON["login"] != g.User {
		t.Fatalf("code account: %d %s", r.Status, r.Body)
	}
	account := r.JSON["id"].(string)
	r = in.Admin(t, "GET", "/api/v1/code-accounts/"+account+"/repositories?q=webapp", nil)
	if r.Status != 200 || len(r.Items()) != 1 || r.Items()[0]["full_name"] != created.FullName || r.Items()[0]["clone_url"] != created.CloneURL ||
		r.Items()[0]["private"] != true || r.Items()[0]["default_branch"] != "main" {
		t.Fatalf("repositories: %d %s", r.Status, r.Body)
	}

	// Connect by account: Berth registers the hook at Gitea.
	r = in.Admin(t, "PUT", api+"/source", map[string]any{"account_id": account, "repository": created.FullName})
	if r.Status != 201 || r.JSON["webhook_registered"] != true || r.JSON["url"] != created.CloneURL {
		t.Fatalf("connect: %d %s", r.Status, r.Body)
	}
	hookURL := r.JSON["webhook_url"].(string)
	if urls := g.hookURLs(t, created.FullName); len(urls) != 1 || urls[0] != hookURL {
		t.Fatalf("Gitea's hooks: %v, want [%s]", urls, hookURL)
	}
	if r := in.Admin(t, "GET", api+"/source/refs", nil); r.Status != 200 || fmt.Sprint(r.JSON["branches"]) != "[main]" {
		t.Fatalf("refs: %d %s", r.Status, r.Body)
	}
	if r := in.Admin(t, "POST", api+"/build-rules", map[string]any{"source_type": "BRANCH", "source_ref": "main", "image_tag": "latest"}); r.Status != 201 {
		t.Fatalf("rule: %d %s", r.Status, r.Body)
	}

	// pushAndBuild pushes a commit to Gitea and waits for the build Gitea's webhook starts.
	pushAndBuild := func(content string, builds int) {
		t.Helper()
		sha := commit(content)
		deadline := time.Now().Add(60 * time.Second)
		for {
			r := in.Admin(t, "GET", api+"/builds", nil)
			if items := r.Items(); len(items) >= builds && items[0]["commit"] == sha {
				b := waitBuild(t, in, repo, items[0]["id"].(string), 5*time.Minute)
				requireSuccess(t, in, repo, b)
				if b["trigger"] != "webhook" {
					t.Fatalf("build %v was started by %v, not Gitea's webhook", b["id"], b["trigger"])
				}
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("no build of %s %s (%q) after a minute: builds %s", repo, sha, content, r.Body)
			}
			time.Sleep(300 * time.Millisecond)
		}
	}
	pushAndBuild("second\n", 1)

	// Rotate: Gitea's hook gets the new secret, so the next delivery still verifies.
	r = in.Admin(t, "POST", api+"/source/rotate-secret", nil)
	if r.Status != 200 || r.JSON["webhook_registered"] != true {
		t.Fatalf("rotate: %d %s", r.Status, r.Body)
	}
	pushAndBuild("third\n", 2)
	if r := in.Admin(t, "GET", api+"/builds", nil); r.JSON["total"] != 2.0 {
		t.Fatalf("builds after two pushes: %s", r.Body)
	}

	// Disconnect: the hook is gone from Gitea; the account may go too.
	if r := in.Admin(t, "DELETE", api+"/source", nil); r.Status != 204 || r.Header.Get("Warning") != "" {
		t.Fatalf("disconnect: %d %v", r.Status, r.Header)
	}
	if urls := g.hookURLs(t, created.FullName); len(urls) != 0 {
		t.Fatalf("Gitea's hooks after disconnecting: %v", urls)
	}
	if r := in.Admin(t, "DELETE", "/api/v1/code-accounts/"+account, nil); r.Status != 204 {
		t.Fatalf("delete the account: %d %s", r.Status, r.Body)
	}
}
