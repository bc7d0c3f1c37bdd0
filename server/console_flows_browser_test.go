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
// need no builder: "Create repository" in two steps, a build rule edited in place, a TAGS trigger's tags
// picked from the versions and a record that did not fire, and SPEC §9 worked case 1 without and with the
// list grant. It writes docs/console-connect.png, docs/console-rule-edit.png and docs/console-repositories.png.
func TestConsoleGuideFlowsInBrowser(t *testing.T) {
	in := apptest.Start(t, apptest.Options{Configure: func(c *app.Config) { c.TriggerAllow = []string{"127.0.0.0/8"} }})
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

	// Create repository, step 1 from the Repositories page, step 2 a Git URL with the branch to build.
	c.open("/repositories")
	c.click(`a[href="/repositories/new"]`)
	c.submit(`form[action="/repositories/new"]`, map[string]string{"#repo-ns": "juzhong", "#repo-name": "nginx",
		"#repo-summary": "web", "#repo-desc": xss, "#repo-vis": "PRIVATE"})
	if s := c.text(`.steps [aria-current]`); s != "Code source" {
		t.Fatalf("step 2: %q\n%s", s, c.text("main"))
	}
	c.eval(`document.querySelector("#by-url details").open = true; true`, nil)
	c.screenshot(filepath.Join(docs, "console-connect.png"))
	c.submit(`form.connect-url`, map[string]string{"#provider": "gitea", "#src-url": "https://git.example.com/juzhong/nginx.git",
		"#src-branch": "main"})
	if s := c.text(".panel.secret"); !strings.Contains(s, "shown only now") || !strings.Contains(c.text(".alert.ok"), "builds branch main") {
		t.Fatalf("after step 2: %q\n%s", s, c.text("main"))
	}
	if r := admin("GET", "/api/v1/repositories/juzhong/nginx/build-rules", nil); len(r.Items()) != 1 || r.Items()[0]["source_ref"] != "main" {
		t.Fatalf("rule from step 2: %s", r.Body)
	}

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
