package console_test

import (
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/berth-dev/berth/policies/signature"
	"github.com/berth-dev/berth/server/app/apptest"
)

// TestConsoleForms posts the console's forms the way a browser does and checks what the API then holds: settings,
// security policies, a trigger and its test delivery, users, access keys, policies and temporary credentials.
func TestConsoleForms(t *testing.T) {
	in := apptest.Start(t, apptest.Options{})
	b := newBrowser(t, in)
	b.signIn("admin", apptest.AdminPassword)
	must := func(what string, st int, body string, want ...string) {
		t.Helper()
		if st >= 400 {
			t.Fatalf("%s: %d\n%s", what, st, body)
		}
		for _, w := range want {
			if !strings.Contains(body, w) {
				t.Fatalf("%s: no %q in\n%s", what, w, body)
			}
		}
	}
	st, _, body := b.post("/namespaces", url.Values{"name": {"team"}, "default_visibility": {"PRIVATE"}})
	must("namespace", st, body)
	st, _, body = b.post("/namespaces/team/settings", url.Values{"default_visibility": {"PUBLIC"}})
	must("settings", st, body, "Settings saved.")
	if r := in.Admin(t, "GET", "/api/v1/namespaces/team", nil); r.JSON["auto_create_repo"] != false || r.JSON["default_visibility"] != "PUBLIC" {
		t.Fatalf("namespace after the form: %s", r.Body)
	}
	st, _, body = b.post("/namespaces/team/security-policy", url.Values{"block_severity": {"HIGH"}, "only_fixable": {"on"},
		"allowlist": {"CVE-2025-26519 2030-01-31\nCVE-2021-23337"}})
	must("security policy", st, body, "Security policy saved")
	if r := in.Admin(t, "GET", "/api/v1/namespaces/team/security-policy", nil); r.JSON["block_severity"] != "HIGH" ||
		len(r.JSON["allowlist"].([]any)) != 2 {
		t.Fatalf("policy after the form: %s", r.Body)
	}
	st, _, body = b.post("/namespaces/team/security-policy", url.Values{"block_severity": {"SOMETIMES"}})
	if st != http.StatusBadRequest || !strings.Contains(body, "INVALID_ARGUMENT") {
		t.Fatalf("bad policy: %d\n%s", st, body)
	}
	// require_signature with two pasted keys: one entry each, shown again in the form.
	var pems []string
	for range 2 {
		k, _ := signature.GenerateKey()
		p, _ := signature.PublicKeyPEM(k.Public())
		pems = append(pems, string(p))
	}
	st, _, body = b.post("/namespaces/team/security-policy", url.Values{"block_severity": {"NONE"}, "require_signature": {"on"},
		"trusted_keys": {strings.ReplaceAll(pems[0]+"\n"+pems[1], "\n", "\r\n")}})
	must("signature policy", st, body, "Security policy saved", `name="require_signature" checked`,
		strings.ReplaceAll(strings.Split(pems[1], "\n")[1], "+", "&#43;")) // html/template writes + as &#43;
	if r := in.Admin(t, "GET", "/api/v1/namespaces/team/security-policy", nil); r.JSON["require_signature"] != true ||
		fmt.Sprint(r.JSON["trusted_keys"]) != fmt.Sprint([]any{pems[0], pems[1]}) {
		t.Fatalf("signature policy after the form: %s", r.Body)
	}
	st, _, body = b.post("/namespaces/team/security-policy", url.Values{"block_severity": {"NONE"}, "trusted_keys": {"ssh-ed25519 AAAA"}})
	if st != http.StatusBadRequest || !strings.Contains(body, "trusted_keys[0]") {
		t.Fatalf("bad trusted key: %d\n%s", st, body)
	}
	st, _, body = b.post("/namespaces/team/repositories", url.Values{"name": {"app"}, "visibility": {"PRIVATE"}})
	must("repository", st, body)

	// A trigger: its secret is shown once; a test delivery to loopback is refused (SSRF) and recorded FAILED.
	st, _, body = b.post("/repositories/team/app/triggers", url.Values{"name": {"deploy"}, "url": {"http://127.0.0.1:8080/hook"},
		"filter_type": {"TAGS"}, "tags": {"latest, stable"}, "enabled": {"on"}})
	must("trigger", st, body, "shown only now", "TAGS")
	r := in.Admin(t, "GET", "/api/v1/repositories/team/app/triggers", nil)
	items := r.Items()
	if len(items) != 1 || len(items[0]["tags"].([]any)) != 2 {
		t.Fatalf("triggers: %s", r.Body)
	}
	id := items[0]["id"].(string)
	st, _, body = b.post("/repositories/team/app/triggers/"+id+"/test", nil)
	must("test delivery", st, body, "Test delivery sent: FAILED", "FAILED")

	// Users, access keys (secret once), policies, attach and detach, temporary credentials.
	st, _, body = b.post("/users", url.Values{"name": {"ci"}, "password": {"ci-password-1"}})
	must("user", st, body)
	st, _, body = b.post("/users/ci/access-keys", nil)
	must("access key", st, body, "Its secret is shown only now")
	secret := regexp.MustCompile(`data-copy="([A-Za-z0-9]{30})"`).FindStringSubmatch(body)
	if secret == nil {
		t.Fatalf("no secret on the page:\n%s", body)
	}
	if st, body := b.get("/users/ci"); st != 200 || strings.Contains(body, secret[1]) {
		t.Fatalf("the access key secret is shown again: %d", st)
	}
	st, _, body = b.post("/policies", url.Values{"name": {"bad"}, "document": {`{"Version":"1","Statement":[{"Effect":"Allow","Action":"cr:Nope"}]}`}})
	if st != http.StatusBadRequest || !strings.Contains(body, `id="doc-error"`) || !strings.Contains(body, "INVALID_POLICY") ||
		!strings.Contains(body, "cr:Nope") {
		t.Fatalf("invalid policy: %d\n%s", st, body)
	}
	st, _, body = b.post("/policies", url.Values{"name": {"pull-team"}, "document": {`{"Version":"1","Statement":[{"Effect":"Allow","Action":"cr:PullRepository","Resource":"acs:cr:*:*:repository/team/*"}]}`}})
	must("policy", st, body)
	st, _, body = b.post("/users/ci/policies", url.Values{"policy": {"pull-team"}})
	must("attach", st, body)
	if r := in.Admin(t, "GET", "/api/v1/users/ci", nil); len(r.JSON["policies"].([]any)) != 1 {
		t.Fatalf("attach: %s", r.Body)
	}
	st, _, body = b.post("/users/ci/policies/pull-team/detach", nil)
	must("detach", st, body)
	if r := in.Admin(t, "GET", "/api/v1/users/ci", nil); len(r.JSON["policies"].([]any)) != 0 {
		t.Fatalf("detach: %s", r.Body)
	}
	st, _, body = b.post("/credentials", nil)
	must("credentials", st, body, "docker login "+in.Host+" -u admin --password-stdin", "berth-tmp.")
}

// TestConsoleWebhookSecretShownOnce: the source page shows the webhook secret when the source is connected and
// when "Rotate webhook secret" replaces it, each time once; saving the source's settings again does not.
func TestConsoleWebhookSecretShownOnce(t *testing.T) {
	in := apptest.Start(t, apptest.Options{})
	in.Admin(t, "POST", "/api/v1/namespaces", map[string]any{"name": "team"})
	in.Admin(t, "POST", "/api/v1/namespaces/team/repositories", map[string]any{"name": "app"})
	b := newBrowser(t, in)
	b.signIn("admin", apptest.AdminPassword)
	secretRE := regexp.MustCompile(`<p>Secret</p><div class="copy"><code>([0-9a-f]{64})</code>`)
	base := "/repositories/team/app"
	form := url.Values{"provider": {"github"}, "url": {"https://git.example.com/team/app.git"}, "auto_build": {"on"}}
	st, _, body := b.post(base+"/source", form)
	first := secretRE.FindStringSubmatch(body)
	if st != 200 || first == nil || !strings.Contains(body, "shown only now") {
		t.Fatalf("connect: %d, no secret shown\n%s", st, body)
	}
	st, _, body = b.post(base+"/source", form)
	if st != 200 || secretRE.MatchString(body) || strings.Contains(body, first[1]) {
		t.Fatalf("saving again shows the secret: %d\n%s", st, body)
	}
	st, body = b.get(base + "/build")
	if st != 200 || strings.Contains(body, first[1]) || !strings.Contains(body, `action="`+base+`/source/rotate-secret"`) {
		t.Fatalf("build page: %d, secret shown or no rotate button\n%s", st, body)
	}
	st, _, body = b.post(base+"/source/rotate-secret", nil)
	rotated := secretRE.FindStringSubmatch(body)
	if st != 200 || rotated == nil || rotated[1] == first[1] {
		t.Fatalf("rotate: %d, no new secret shown\n%s", st, body)
	}
	if st, body = b.get(base + "/build"); strings.Contains(body, rotated[1]) {
		t.Fatalf("the rotated secret is shown again: %d", st)
	}
}
