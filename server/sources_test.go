package server_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/berth-dev/berth/server/app/apptest"
)

// TestSourceRuleAndBuildAPI covers the code source, build rule and build routes without building: validation,
// write-only secrets, defaults, and what needs a source or a finished build.
func TestSourceRuleAndBuildAPI(t *testing.T) {
	in := apptest.Start(t, apptest.Options{})
	in.Admin(t, "POST", "/api/v1/namespaces", map[string]any{"name": "team"})
	for _, name := range []string{"app", "bare"} {
		if r := in.Admin(t, "POST", "/api/v1/namespaces/team/repositories", map[string]any{"name": name}); r.Status != 201 {
			t.Fatalf("repository: %s", r.Body)
		}
	}
	api := "/api/v1/repositories/team/app"

	t.Run("source validation", func(t *testing.T) {
		key := "-----BEGIN OPENSSH PRIVATE KEY-----\nnot a key\n-----END OPENSSH PRIVATE KEY-----\n"
		cases := []struct {
			name string
			body any
		}{
			{"no url", map[string]any{"provider": "github"}},
			{"no provider", map[string]any{"url": "https://git.example.com/a.git"}},
			{"unknown provider", map[string]any{"provider": "svn", "url": "https://git.example.com/a.git"}},
			{"ftp", map[string]any{"provider": "github", "url": "ftp://git.example.com/a.git"}},
			{"password in url", map[string]any{"provider": "github", "url": "https://u:secret@git.example.com/a.git"}},
			{"space in url", map[string]any{"provider": "github", "url": "https://git.example.com/a b.git"}},
			{"no path", map[string]any{"provider": "github", "url": "https://git.example.com"}},
			{"relative file", map[string]any{"provider": "generic", "url": "file://relative/path"}},
			{"token and password", map[string]any{"provider": "github", "url": "https://git.example.com/a.git", "token": "t", "password": "p"}},
			{"bad ssh key", map[string]any{"provider": "github", "url": "git@git.example.com:team/a.git", "ssh_key": key}},
			{"unknown field", map[string]any{"provider": "github", "url": "https://git.example.com/a.git", "branch": "main"}},
		}
		for _, c := range cases {
			if r := in.Admin(t, "PUT", api+"/source", c.body); r.Status != 400 {
				t.Errorf("%s: %d %s", c.name, r.Status, r.Body)
			}
		}
		if r := in.Admin(t, "PUT", "/api/v1/repositories/team/none/source", map[string]any{"provider": "github", "url": "https://g.example/a.git"}); r.Status != 404 {
			t.Fatalf("missing repository: %d", r.Status)
		}
		if r := in.Admin(t, "GET", api+"/source", nil); r.Status != 404 {
			t.Fatalf("no source yet: %d", r.Status)
		}
	})

	var hookURL, secret string
	t.Run("credentials are write-only; the secret is shown once, by the PUT that connects", func(t *testing.T) {
		r := in.Admin(t, "PUT", api+"/source", map[string]any{"provider": "gitlab", "url": "https://git.example.com/team/app.git",
			"username": "ci", "token": "glpat-very-secret-token"})
		if r.Status != 201 {
			t.Fatalf("put: %d %s", r.Status, r.Body)
		}
		hookURL, secret = r.JSON["webhook_url"].(string), r.JSON["webhook_secret"].(string)
		if !strings.HasPrefix(hookURL, in.URL+"/hooks/") || len(secret) != 64 || r.JSON["auto_build"] != true ||
			r.JSON["overseas_build"] != false || r.JSON["no_cache"] != false || r.JSON["username"] != "ci" {
			t.Fatalf("put answer: %s", r.Body)
		}
		if strings.Contains(string(r.Body), "glpat") {
			t.Fatalf("the token came back: %s", r.Body)
		}
		g := in.Admin(t, "GET", api+"/source", nil)
		if g.Status != 200 || g.JSON["webhook_url"] != hookURL || strings.Contains(string(g.Body), secret) ||
			strings.Contains(string(g.Body), "glpat") || g.JSON["webhook_secret"] != nil || g.JSON["token"] != nil {
			t.Fatalf("get shows a secret: %s", g.Body)
		}
		src, err := in.Store.GetSource(context.Background(), "team/app")
		if err != nil || src.Password == "" || strings.Contains(src.Password, "glpat") || strings.Contains(src.WebhookSecret, secret) {
			t.Fatalf("stored in the clear: %+v %v", src, err)
		}
		// A second PUT changes settings and keeps the hook, its secret and the credentials; it does not show the
		// secret again, nor does one with an empty body.
		r = in.Admin(t, "PUT", api+"/source", map[string]any{"auto_build": false, "no_cache": true})
		if r.Status != 200 || r.JSON["webhook_url"] != hookURL || r.JSON["webhook_secret"] != nil ||
			r.JSON["auto_build"] != false || r.JSON["no_cache"] != true || r.JSON["provider"] != "gitlab" {
			t.Fatalf("second put: %d %s", r.Status, r.Body)
		}
		if r := in.Admin(t, "PUT", api+"/source", map[string]any{}); r.Status != 200 || strings.Contains(string(r.Body), secret) ||
			r.JSON["webhook_secret"] != nil {
			t.Fatalf("empty put shows the secret: %d %s", r.Status, r.Body)
		}
		if again, _ := in.Store.GetSource(context.Background(), "team/app"); again.WebhookSecret != src.WebhookSecret {
			t.Fatal("a PUT changed the webhook secret")
		}
		if again, _ := in.Store.GetSource(context.Background(), "team/app"); again.Password != src.Password {
			t.Fatal("the token was dropped by a PUT that did not mention it")
		}
		if r := in.Admin(t, "PUT", api+"/source", map[string]any{"ssh_key": "x"}); r.Status != 400 {
			t.Fatalf("ssh key on https: %d %s", r.Status, r.Body)
		}
	})

	var ruleID string
	t.Run("build rules", func(t *testing.T) {
		bad := []map[string]any{
			{"source_ref": "main"},
			{"source_type": "BRANCH"},
			{"source_type": "COMMIT", "source_ref": "main"},
			{"source_type": "TAG", "source_ref": "release-(", "image_tag": "x"},
			{"source_type": "TAG", "source_ref": "release-v(?<version>.*)", "image_tag": "${name}"},
			{"source_type": "BRANCH", "source_ref": "main", "dockerfile_dir": "../etc"},
			{"source_type": "BRANCH", "source_ref": "main", "dockerfile_name": "a/Dockerfile"},
			{"source_type": "BRANCH", "source_ref": "main", "platforms": []string{"amd64"}},
			{"source_type": "BRANCH", "source_ref": "main", "build_args": map[string]string{"A-B": "x"}},
			{"source_type": "BRANCH", "source_ref": strings.Repeat("a", 300)},
		}
		for _, body := range bad {
			if r := in.Admin(t, "POST", api+"/build-rules", body); r.Status != 400 || r.Code() == "" {
				t.Errorf("%v: %d %s", body, r.Status, r.Body)
			}
		}
		r := in.Admin(t, "POST", api+"/build-rules", map[string]any{"source_type": "BRANCH", "source_ref": "main"})
		if r.Status != 201 || r.JSON["dockerfile_dir"] != "/" || r.JSON["dockerfile_name"] != "Dockerfile" ||
			r.JSON["image_tag"] != "latest" || r.JSON["target"] != "" || len(r.JSON["build_args"].(map[string]any)) != 0 ||
			len(r.JSON["platforms"].([]any)) != 0 {
			t.Fatalf("defaults: %d %s", r.Status, r.Body)
		}
		ruleID = r.JSON["id"].(string)
		r = in.Admin(t, "PATCH", api+"/build-rules/"+ruleID, map[string]any{"image_tag": "edge", "platforms": []string{"linux/amd64", "linux/arm64"},
			"build_args": map[string]string{"VERSION": "1"}, "target": "final", "dockerfile_dir": "docker/"})
		if r.Status != 200 || r.JSON["image_tag"] != "edge" || r.JSON["dockerfile_dir"] != "/docker" || r.JSON["target"] != "final" {
			t.Fatalf("patch: %d %s", r.Status, r.Body)
		}
		if r := in.Admin(t, "PATCH", api+"/build-rules/"+ruleID, map[string]any{"image_tag": "-bad"}); r.Status != 400 {
			t.Fatalf("bad patch: %d", r.Status)
		}
		if r := in.Admin(t, "GET", api+"/build-rules/"+ruleID, nil); r.JSON["image_tag"] != "edge" {
			t.Fatalf("a refused patch changed the rule: %s", r.Body)
		}
		pattern := in.Admin(t, "POST", api+"/build-rules", map[string]any{"source_type": "TAG", "source_ref": "release-v(?<version>.*)", "image_tag": "${version}"})
		if pattern.Status != 201 {
			t.Fatalf("pattern rule: %s", pattern.Body)
		}
		if l := in.Admin(t, "GET", api+"/build-rules", nil); l.JSON["total"] != 2.0 || len(l.Items()) != 2 || l.Items()[0]["id"] != ruleID {
			t.Fatalf("list: %s", l.Body)
		}
		// Build now on a pattern needs the tag; on a repository that cannot be reached it says so.
		if r := in.Admin(t, "POST", api+"/build-rules/"+pattern.JSON["id"].(string)+"/builds", nil); r.Status != 400 || !strings.Contains(r.JSON["message"].(string), "pattern") {
			t.Fatalf("build now on a pattern: %d %s", r.Status, r.Body)
		}
		if r := in.Admin(t, "POST", api+"/build-rules/"+pattern.JSON["id"].(string)+"/builds", map[string]any{"ref": "v2"}); r.Status != 400 {
			t.Fatalf("build now with a ref the rule does not match: %d %s", r.Status, r.Body)
		}
		if r := in.Admin(t, "DELETE", api+"/build-rules/"+pattern.JSON["id"].(string), nil); r.Status != 204 {
			t.Fatalf("delete: %d", r.Status)
		}
		if r := in.Admin(t, "GET", api+"/build-rules/"+pattern.JSON["id"].(string), nil); r.Status != 404 {
			t.Fatalf("deleted rule: %d", r.Status)
		}
	})

	t.Run("build now needs a reachable source", func(t *testing.T) {
		r := in.Admin(t, "POST", "/api/v1/repositories/team/bare/build-rules", map[string]any{"source_type": "BRANCH", "source_ref": "main"})
		if r := in.Admin(t, "POST", "/api/v1/repositories/team/bare/build-rules/"+r.JSON["id"].(string)+"/builds", nil); r.Status != 409 || r.Code() != "CONFLICT" {
			t.Fatalf("no source: %d %s", r.Status, r.Body)
		}
		if r := in.Admin(t, "PUT", "/api/v1/repositories/team/bare/source", map[string]any{"provider": "generic", "url": "file:///nonexistent/repo.git"}); r.Status != 201 {
			t.Fatalf("file source: %s", r.Body)
		}
		if r := in.Admin(t, "POST", "/api/v1/repositories/team/bare/build-rules/"+r.JSON["id"].(string)+"/builds", nil); r.Status < 400 || r.Status == 500 {
			t.Fatalf("unreachable source: %d %s", r.Status, r.Body)
		}
		if l := in.Admin(t, "GET", "/api/v1/repositories/team/bare/builds", nil); l.Status != 200 || l.JSON["total"] != 0.0 {
			t.Fatalf("builds: %s", l.Body)
		}
	})

	t.Run("builds and webhooks that do not exist", func(t *testing.T) {
		for _, p := range []string{"/builds/nope", "/builds/nope/logs", "/builds/nope/logs?follow=true"} {
			if r := in.Admin(t, "GET", api+p, nil); r.Status != 404 {
				t.Errorf("GET %s: %d", p, r.Status)
			}
		}
		if r := in.Admin(t, "POST", api+"/builds/nope/cancel", nil); r.Status != 404 {
			t.Errorf("cancel: %d", r.Status)
		}
		if r := in.Admin(t, "GET", api+"/builds/nope/logs?follow=maybe", nil); r.Status != 400 {
			t.Errorf("follow=maybe: %d", r.Status)
		}
		for _, u := range []string{in.URL + "/hooks/nope", in.URL + "/hooks/" + strings.Repeat("0", 32)} {
			if status, _ := sendHook(t, u, secret, "push", "d", githubPush("refs/heads/main", "", strings.Repeat("a", 40))); status != 404 {
				t.Errorf("%s: %d", u, status)
			}
		}
		// GitLab checks X-Gitlab-Token: a GitHub-style delivery is refused as unsigned.
		if status, ans := sendHook(t, hookURL, secret, "push", "d", githubPush("refs/heads/main", "", strings.Repeat("a", 40))); status != 401 {
			t.Errorf("wrong provider's signature: %d %v", status, ans)
		}
		big := map[string]any{"pad": strings.Repeat("x", 6<<20)}
		if status, ans := sendHook(t, hookURL, secret, "push", "d", big); status != 413 {
			t.Errorf("6 MiB body: %d %v", status, ans)
		}
	})

	t.Run("deleting the repository removes its source, rules and webhook", func(t *testing.T) {
		if r := in.Admin(t, "DELETE", api, nil); r.Status != 204 {
			t.Fatalf("delete repository: %d", r.Status)
		}
		in.Admin(t, "POST", "/api/v1/namespaces/team/repositories", map[string]any{"name": "app"})
		if r := in.Admin(t, "GET", api+"/source", nil); r.Status != 404 {
			t.Fatalf("source survived: %s", r.Body)
		}
		if r := in.Admin(t, "GET", api+"/build-rules/"+ruleID, nil); r.Status != 404 {
			t.Fatalf("rule survived: %s", r.Body)
		}
		if status, _ := sendHook(t, hookURL, secret, "push", "d", githubPush("refs/heads/main", "", strings.Repeat("a", 40))); status != 404 {
			t.Fatalf("webhook survived: %d", status)
		}
	})

	t.Run("the OpenAPI document lists the build routes", func(t *testing.T) {
		r := in.Call(t, "", "", "GET", "/api/v1/openapi.json", nil)
		paths, _ := r.JSON["paths"].(map[string]any)
		for _, p := range []string{"/api/v1/repositories/{ns}/{repo}/source", "/api/v1/repositories/{ns}/{repo}/build-rules/{id}/builds",
			"/api/v1/repositories/{ns}/{repo}/builds/{id}/logs", "/api/v1/repositories/{ns}/{repo}/builds/{id}/cancel"} {
			if paths[p] == nil {
				t.Errorf("openapi lacks %s", p)
			}
		}
	})
}

// TestFileSourceAdminOnly: a file:// source reads the Berth host's disk, so only the administrator may connect
// one, even for a user with every right on the repository.
func TestFileSourceAdminOnly(t *testing.T) {
	in := apptest.Start(t, apptest.Options{})
	in.Admin(t, "POST", "/api/v1/namespaces", map[string]any{"name": "team"})
	in.Admin(t, "POST", "/api/v1/namespaces/team/repositories", map[string]any{"name": "app"})
	pass := newUser(t, in, "dev", nil, "AliyunContainerRegistryFullAccess")
	body := map[string]any{"provider": "generic", "url": "file:///etc/berth-secrets.git"}
	r := in.Call(t, "dev", pass, "PUT", "/api/v1/repositories/team/app/source", body)
	if r.Status != 403 || r.Code() != "FORBIDDEN" || !strings.Contains(string(r.Body), "administrator") {
		t.Fatalf("file:// source by a RAM user: %d %s", r.Status, r.Body)
	}
	body["url"] = "https://git.example.com/team/app.git"
	if r := in.Call(t, "dev", pass, "PUT", "/api/v1/repositories/team/app/source", body); r.Status != 201 {
		t.Fatalf("https source by the same user: %d %s", r.Status, r.Body)
	}
}

// TestHookSeesChangesAtOnce: the webhook endpoint remembers a repository's rules, but a rule or source changed
// through the API applies to the very next delivery.
func TestHookSeesChangesAtOnce(t *testing.T) {
	in := apptest.Start(t, apptest.Options{})
	in.Admin(t, "POST", "/api/v1/namespaces", map[string]any{"name": "team"})
	in.Admin(t, "POST", "/api/v1/namespaces/team/repositories", map[string]any{"name": "app"})
	api := "/api/v1/repositories/team/app"
	put := func(autoBuild bool) (string, string) {
		t.Helper()
		r := in.Admin(t, "PUT", api+"/source", map[string]any{"provider": "github", "url": "https://git.example.com/team/app.git",
			"overseas_build": true, "auto_build": autoBuild})
		if r.Status != 200 && r.Status != 201 {
			t.Fatalf("put source: %d %s", r.Status, r.Body)
		}
		secret, _ := r.JSON["webhook_secret"].(string) // only when the PUT connects the source
		return r.JSON["webhook_url"].(string), secret
	}
	hookURL, secret := put(true)
	n := 0
	push := func(url, secret, branch string, want int) {
		t.Helper()
		n++
		// Each push is a new one (a new commit): the same body again would be a replay.
		status, ans := sendHook(t, url, secret, "push", fmt.Sprintf("d%d", n), githubPush("refs/heads/"+branch, "", fmt.Sprintf("%040x", n)))
		if status != 202 || len(hookBuilds(t, ans)) != want {
			t.Fatalf("push %s: %d %v, want %d builds", branch, status, ans, want)
		}
	}
	push(hookURL, secret, "main", 0)
	r := in.Admin(t, "POST", api+"/build-rules", map[string]any{"source_type": "BRANCH", "source_ref": "main"})
	ruleID, _ := r.JSON["id"].(string)
	push(hookURL, secret, "main", 1)
	in.Admin(t, "PATCH", api+"/build-rules/"+ruleID, map[string]any{"source_ref": "dev"})
	push(hookURL, secret, "main", 0)
	push(hookURL, secret, "dev", 1)
	in.Admin(t, "DELETE", api+"/build-rules/"+ruleID, nil)
	push(hookURL, secret, "dev", 0)
	in.Admin(t, "POST", api+"/build-rules", map[string]any{"source_type": "BRANCH", "source_ref": "dev"})
	push(hookURL, secret, "dev", 1)

	put(false)
	push(hookURL, secret, "dev", 0)
	if r := in.Admin(t, "DELETE", api+"/source", nil); r.Status != 204 {
		t.Fatalf("delete source: %d", r.Status)
	}
	if status, _ := sendHook(t, hookURL, secret, "push", "gone", githubPush("refs/heads/dev", "", strings.Repeat("a", 40))); status != 404 {
		t.Fatalf("disconnected webhook: %d", status)
	}
	newURL, newSecret := put(true)
	if status, _ := sendHook(t, newURL, secret, "push", "old-secret", githubPush("refs/heads/dev", "", strings.Repeat("a", 40))); status != 401 {
		t.Fatalf("the old secret on the new webhook: %d", status)
	}
	push(newURL, newSecret, "dev", 1)
	if r := in.Admin(t, "DELETE", api, nil); r.Status != 204 {
		t.Fatalf("delete repository: %d", r.Status)
	}
	if status, _ := sendHook(t, newURL, newSecret, "push", "deleted", githubPush("refs/heads/dev", "", strings.Repeat("a", 40))); status != 404 {
		t.Fatalf("webhook of a deleted repository: %d", status)
	}
	in.Admin(t, "POST", "/api/v1/namespaces/team/repositories", map[string]any{"name": "app"})
	in.Admin(t, "POST", api+"/build-rules", map[string]any{"source_type": "BRANCH", "source_ref": "dev"})
	lastURL, lastSecret := put(true)
	push(lastURL, lastSecret, "dev", 1)
	if r := in.Admin(t, "DELETE", "/api/v1/namespaces/team?force=true", nil); r.Status != 204 {
		t.Fatalf("delete namespace: %d", r.Status)
	}
	if status, _ := sendHook(t, lastURL, lastSecret, "push", "ns-deleted", githubPush("refs/heads/dev", "", strings.Repeat("a", 40))); status != 404 {
		t.Fatalf("webhook of a repository deleted with its namespace: %d", status)
	}
}

// TestRotateWebhookSecret: POST …/source/rotate-secret answers a new secret once; from then on deliveries
// signed with the old one are refused and those signed with the new one build; nothing shows it again.
func TestRotateWebhookSecret(t *testing.T) {
	in := apptest.Start(t, apptest.Options{})
	in.Admin(t, "POST", "/api/v1/namespaces", map[string]any{"name": "team"})
	in.Admin(t, "POST", "/api/v1/namespaces/team/repositories", map[string]any{"name": "app"})
	in.Admin(t, "POST", "/api/v1/namespaces/team/repositories", map[string]any{"name": "bare"})
	api := "/api/v1/repositories/team/app"
	r := in.Admin(t, "PUT", api+"/source", map[string]any{"provider": "github", "url": "https://git.example.com/team/app.git"})
	hookURL, old := r.JSON["webhook_url"].(string), r.JSON["webhook_secret"].(string)
	if r.Status != 201 || len(old) != 64 {
		t.Fatalf("connect: %d %s", r.Status, r.Body)
	}
	in.Admin(t, "POST", api+"/build-rules", map[string]any{"source_type": "BRANCH", "source_ref": "main"})
	n := 0
	push := func(secret string) int {
		t.Helper()
		n++
		st, _ := sendHook(t, hookURL, secret, "push", fmt.Sprintf("rot-%d", n), githubPush("refs/heads/main", "", fmt.Sprintf("%040x", n)))
		return st
	}
	if st := push(old); st != 202 {
		t.Fatalf("push with the first secret: %d", st)
	}

	r = in.Admin(t, "POST", api+"/source/rotate-secret", nil)
	rotated, _ := r.JSON["webhook_secret"].(string)
	if r.Status != 200 || len(rotated) != 64 || rotated == old || r.JSON["webhook_url"] != hookURL || r.JSON["provider"] != "github" {
		t.Fatalf("rotate: %d %s", r.Status, r.Body)
	}
	for _, method := range []string{"GET", "PUT"} {
		var body any
		if method == "PUT" {
			body = map[string]any{}
		}
		if g := in.Admin(t, method, api+"/source", body); g.Status != 200 || g.JSON["webhook_secret"] != nil ||
			strings.Contains(string(g.Body), rotated) {
			t.Fatalf("%s after rotating shows the secret: %d %s", method, g.Status, g.Body)
		}
	}
	if st := push(old); st != 401 {
		t.Fatalf("push with the old secret after rotating: %d, want 401", st)
	}
	if st := push(rotated); st != 202 {
		t.Fatalf("push with the new secret: %d, want 202", st)
	}
	if r := in.Admin(t, "POST", "/api/v1/repositories/team/bare/source/rotate-secret", nil); r.Status != 404 || r.Code() != "NOT_FOUND" {
		t.Fatalf("rotate without a source: %d %s", r.Status, r.Body)
	}
	if r := in.Call(t, "", "", "POST", api+"/source/rotate-secret", nil); r.Status != 401 {
		t.Fatalf("anonymous rotate: %d %s", r.Status, r.Body)
	}
}
