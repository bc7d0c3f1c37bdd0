package server_test

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/server/app"
	"github.com/berth-dev/berth/server/app/apptest"
)

// TestConsoleGuideFlowsInBrowser walks, in headless Chromium, the flows of the guide's console (SPEC §12) that
// need no builder: "Create repository" in two steps (by a code account on a fake Gitea), a build rule's branch
// picked from a real Git server's refs and a rule edited in place, a TAGS trigger's tags
// picked from the versions and a record that did not fire, and SPEC §9 worked case 1 without and with the
// list grant. It writes docs/console-connect.png, docs/console-rule-edit.png and docs/console-repositories.png.
func TestConsoleGuideFlowsInBrowser(t *testing.T) {
	in := apptest.Start(t, apptest.Options{Configure: func(c *app.Config) {
		c.TriggerAllow = []string{"127.0.0.0/8"}
		c.SourceAllow = []string{"127.0.0.0/8"}
	}})
	admin := func(method, path string, body any) *apptest.Response {
		t.Helper()
		return in.MustAdmin(t, method, path, body)
	}
	for _, ns := range []string{"juzhong", "other"} {
		admin("POST", "/api/v1/namespaces", map[string]any{"name": ns})
	}
	admin("POST", "/api/v1/namespaces/juzhong/repositories", map[string]any{"name": "redis", "summary": "cache", "description": xss})
	admin("POST", "/api/v1/namespaces/other/repositories", map[string]any{"name": "app", "summary": "not juzhong's"})
	docs := filepath.Join(sourceRoot(t), "docs")

	c := newChrome(t, in.URL)
	c.open("/")
	c.submit(`form[action="/login"]`, map[string]string{"#username": "admin", "#password": apptest.AdminPassword})

	// Create repository, step 1 from the Repositories page; step 2 binds a code account (a fake Gitea) in place,
	// chooses one of its repositories, whose default branch becomes the branch to build, and connects it: Berth
	// registers the webhook at the host.
	host := newFakeGitea(t)
	c.open("/repositories")
	c.click(`a[href="/repositories/new"]`)
	c.submit(`form[action="/repositories/new"]`, map[string]string{"#repo-ns": "juzhong", "#repo-name": "nginx",
		"#repo-summary": "web", "#repo-desc": xss, "#repo-vis": "PRIVATE"})
	if s := c.text(`.steps [aria-current]`); s != "Code source" {
		t.Fatalf("step 2: %q\n%s", s, c.text("main"))
	}
	c.submit(`form.bind-account`, map[string]string{"#ca-provider": "gitea", "#ca-base": host.url + "/api/v1", "#ca-user": "alice",
		"#ca-token": "good-token"})
	if l := c.text("table.host-repos"); !strings.Contains(l, "alice/app") || !strings.Contains(l, "alice/site") {
		t.Fatalf("the account's repositories: %q\n%s", l, c.text("main"))
	}
	c.submit(`#by-account form.search[role="search"]`, map[string]string{"#cn-q": "app"})
	if l := c.text("table.host-repos"); !strings.Contains(l, "alice/app") || strings.Contains(l, "alice/site") {
		t.Fatalf("search app: %q", l)
	}
	c.click(`a[aria-label="Choose alice/app"]`)
	var branch string
	c.eval(`document.getElementById("cn-branch").value`, &branch)
	if branch != "main" {
		t.Fatalf("branch to build: %q, want the default branch main", branch)
	}
	c.eval(`document.getElementById("connect-h").scrollIntoView(); true`, nil)
	c.screenshot(filepath.Join(docs, "console-connect.png"))
	c.submit(`form.connect-account`, nil)
	if s := c.text(".panel.secret"); !strings.Contains(s, "shown only now") || !strings.Contains(c.text(".alert.ok"), "builds branch main") ||
		!strings.Contains(c.text("dl.facts"), "alice/app") || !strings.Contains(c.text("dl.facts"), "REGISTERED") {
		t.Fatalf("after step 2: %q\n%s", s, c.text("main"))
	}
	src := admin("GET", "/api/v1/repositories/juzhong/nginx/source", nil)
	if hooks := host.hooksOf("alice/app"); len(hooks) != 1 || hooks[0]["url"] != src.JSON["webhook_url"] {
		t.Fatalf("hooks at the host: %v (source %s)", hooks, src.Body)
	}
	if r := admin("GET", "/api/v1/repositories/juzhong/nginx/build-rules", nil); len(r.Items()) != 1 || r.Items()[0]["source_ref"] != "main" {
		t.Fatalf("rule from step 2: %s", r.Body)
	}
	c.open("/code-accounts")
	if l := c.text("table.accounts"); !strings.Contains(l, "gitea") || !strings.Contains(l, "alice") {
		t.Fatalf("code accounts: %q", l)
	}

	// A repository connected by URL to a real Git server: the rule form offers its branches, or its tags when
	// the type is TAG; a name typed outside them still works.
	g := newGitRepo(t)
	g.commit(t, map[string]string{"Dockerfile": "FROM scratch\n"}, "first")
	g.push(t, "HEAD:refs/heads/develop")
	g.push(t, "HEAD:refs/tags/v1.0.0")
	c.open("/repositories/juzhong/redis/connect")
	c.eval(`document.querySelector("#by-url details").open = true; true`, nil)
	c.submit(`form.connect-url`, map[string]string{"#provider": "generic", "#src-url": g.URL})
	c.waitJS(`document.getElementById("refs-state").getAttribute("data-loaded") === "true"`, 20*time.Second)
	var opts []string
	c.eval(`Array.from(document.querySelectorAll("#refs-BRANCH option")).map(function(o){return o.value}).concat(
		Array.from(document.querySelectorAll("#refs-TAG option")).map(function(o){return "tag:" + o.value}))`, &opts)
	if strings.Join(opts, " ") != "develop main tag:v1.0.0" {
		t.Fatalf("refs offered: %v\n%s", opts, c.text("main"))
	}
	var list string
	c.eval(`var s = document.getElementById("rule-type"); s.value = "TAG"; s.dispatchEvent(new Event("change"));
		document.getElementById("rule-ref").getAttribute("list")`, &list)
	if list != "refs-TAG" {
		t.Fatalf("the TAG rule's ref list: %q", list)
	}
	c.submit(`form.rule-new`, map[string]string{"#rule-type": "BRANCH", "#rule-ref": "develop", "#rule-tag": "dev"})
	if r := admin("GET", "/api/v1/repositories/juzhong/redis/build-rules", nil); len(r.Items()) != 1 || r.Items()[0]["source_ref"] != "develop" {
		t.Fatalf("rule on a picked branch: %s", r.Body)
	}
	c.open("/repositories/juzhong/nginx/build")

	// Edit the rule in place: the row becomes a form; saving shows the row again with the new values.
	c.click(`table.rules a[href*="?edit="]`)
	if !c.has(`tr.editing form.rule-edit`) {
		t.Fatalf("no edit form in the row:\n%s", c.text("main"))
	}
	c.screenshot(filepath.Join(docs, "console-rule-edit.png"))
	c.submit(`tr.editing form.rule-edit`, map[string]string{`select[name="source_type"]`: "TAG", `input[name="source_ref"]`: "release-v(?<version>.*)",
		`input[name="image_tag"]`: "${version}"})
	if row := c.text("table.rules tbody tr"); !strings.Contains(row, "TAG release-v(?<version>.*)") || !strings.Contains(row, "${version}") || c.has("tr.editing") {
		t.Fatalf("rule row after the edit: %q", row)
	}

	// A TAGS trigger whose tags are picked from the versions; a version outside them is recorded NOT_TRIGGERED,
	// shown as "Not triggered".
	for _, tg := range []string{"v1", "v2", "v3"} {
		pushImage(t, in, "juzhong/nginx:"+tg)
	}
	c.open("/repositories/juzhong/nginx/triggers")
	c.eval(`var s = document.getElementById("tr-filter"); s.value = "TAGS"; s.dispatchEvent(new Event("change")); true`, nil)
	if !c.has(`#tr-tag-pick option[value="v1"]`) {
		t.Fatalf("no versions to pick:\n%s", c.text("main"))
	}
	c.eval(`Array.from(document.querySelectorAll("#tr-tag-pick option")).forEach(function(o){ o.selected = o.value !== "v3" });
		document.getElementById("tr-tag-pick").dispatchEvent(new Event("change")); true`, nil)
	if n := c.text("#tr-tag-count"); n != "2 picked" {
		t.Fatalf("picked count: %q", n)
	}
	c.submit(`form[action="/repositories/juzhong/nginx/triggers"]`, map[string]string{"#tr-name": "deploy", "#tr-url": "http://127.0.0.1:18080/hook"})
	r := admin("GET", "/api/v1/repositories/juzhong/nginx/triggers", nil)
	if items := r.Items(); len(items) != 1 || strings.Join(toStrings(items[0]["tags"]), ",") != "v2,v1" && strings.Join(toStrings(items[0]["tags"]), ",") != "v1,v2" {
		t.Fatalf("trigger tags: %s", r.Body)
	}
	pushImage(t, in, "juzhong/nginx:v4")
	c.click(`table a[href*="/triggers/"]`)
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(c.text("table.records"), "Not triggered") {
		if time.Now().After(deadline) {
			t.Fatalf("no Not triggered record:\n%s", c.text("main"))
		}
		time.Sleep(300 * time.Millisecond)
		c.open("/repositories/juzhong/nginx/triggers/" + r.Items()[0]["id"].(string))
	}

	// Worked case 1: the user reads and pulls juzhong's repositories.
	admin("POST", "/api/v1/policies", map[string]any{"name": "juzhong-read", "document": map[string]any{"Version": "1",
		"Statement": []any{map[string]any{"Effect": "Allow", "Action": []string{"cr:Get*", "cr:List*", "cr:PullRepository"},
			"Resource": []string{"acs:cr:*:*:repository/juzhong/*"}}}}})
	admin("POST", "/api/v1/policies", map[string]any{"name": "list-all", "document": map[string]any{"Version": "1",
		"Statement": []any{map[string]any{"Effect": "Allow", "Action": []string{"cr:ListNamespace", "cr:ListRepository"}, "Resource": "*"}}}})
	admin("POST", "/api/v1/users", map[string]any{"name": "ju", "password": "ju-password-1", "policies": []string{"juzhong-read"}})
	c.submit(`form[action="/logout"]`, nil)
	c.submit(`form[action="/login"]`, map[string]string{"#username": "ju", "#password": "ju-password-1"})
	// Without the list grant: nothing listed; juzhong opened by its name, then nginx by its name.
	if c.has("main table") || !strings.Contains(c.text("main"), "You may not list namespaces") {
		t.Fatalf("ju's namespaces:\n%s", c.text("main"))
	}
	c.submit(`main form[action="/namespaces"]`, map[string]string{"#open-ns": "juzhong"})
	if h := c.text("h1"); h != "juzhong" {
		t.Fatalf("open juzhong: %q\n%s", h, c.text("main"))
	}
	c.submit(`main form[action="/namespaces/juzhong"]`, map[string]string{"#open-repo": "nginx"})
	if h := c.text("h1"); h != "juzhong/nginx" {
		t.Fatalf("open juzhong/nginx: %q\n%s", h, c.text("main"))
	}
	c.open("/namespaces/other")
	if h := c.text("h1"); h != "Not allowed" {
		t.Fatalf("other: %q\n%s", h, c.text("main"))
	}
	// With the list grant: every name; links (and Manage) only to juzhong's.
	admin("PUT", "/api/v1/users/ju/policies/list-all", nil)
	c.open("/namespaces")
	var links []string
	c.eval(`Array.from(document.querySelectorAll("main table a")).map(function(a){return a.getAttribute("href")})`, &links)
	if l := c.text("main table"); !strings.Contains(l, "juzhong") || !strings.Contains(l, "other") || strings.Join(links, " ") != "/namespaces/juzhong" {
		t.Fatalf("ju's namespaces: %q, links %v", l, links)
	}
	c.open("/repositories")
	c.eval(`Array.from(document.querySelectorAll("main table a")).map(function(a){return a.textContent + " " + a.getAttribute("href")})`, &links)
	if l := c.text("main table"); !strings.Contains(l, "app") || !strings.Contains(l, "no access") ||
		strings.Join(links, "|") != "nginx /repositories/juzhong/nginx|Manage /repositories/juzhong/nginx|redis /repositories/juzhong/redis|Manage /repositories/juzhong/redis" {
		t.Fatalf("ju's repositories: %q, links %v", l, links)
	}
	c.screenshot(filepath.Join(docs, "console-repositories.png"))
	c.submit(`main form.filters`, map[string]string{"#f-ns": "other"})
	if l := c.text("main table"); !strings.Contains(l, "app") || strings.Contains(l, "nginx") {
		t.Fatalf("filtered by other: %q", l)
	}
	c.open("/repositories/other/app")
	if h := c.text("h1"); h != "Not allowed" || !strings.Contains(c.text("main"), "cr:GetRepository") {
		t.Fatalf("other/app: %q\n%s", h, c.text("main"))
	}
}

func toStrings(v any) []string {
	var out []string
	for _, s := range v.([]any) {
		out = append(out, s.(string))
	}
	return out
}
