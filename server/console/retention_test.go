package console_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/berth-dev/berth/server/app"
	"github.com/berth-dev/berth/server/app/apptest"
)

// TestConsoleRetention: the namespace settings page lists, adds, edits and deletes retention rules through
// the API, previews a run (dry) and shows it; the repository page sets immutable tags.
func TestConsoleRetention(t *testing.T) {
	in := apptest.Start(t, apptest.Options{Configure: func(c *app.Config) { c.RetentionInterval = 0 }})
	b := newBrowser(t, in)
	b.signIn("admin", apptest.AdminPassword)
	if r := in.Admin(t, "POST", "/api/v1/namespaces", map[string]any{"name": "team"}); r.Status != 201 {
		t.Fatalf("namespace: %s", r.Body)
	}
	if r := in.Admin(t, "POST", "/api/v1/namespaces/team/repositories", map[string]any{"name": "app"}); r.Status != 201 {
		t.Fatalf("repository: %s", r.Body)
	}
	st, body := b.get("/namespaces/team/settings")
	if st != 200 || !strings.Contains(body, "Tag retention") || !strings.Contains(body, "No rules: every tag is kept.") {
		t.Fatalf("settings: %d\n%s", st, body)
	}
	st, _, body = b.post("/namespaces/team/retention-rules", url.Values{"tag_pattern": {"v.*"}, "keep_last": {"5"}, "keep_days": {"0"}, "enabled": {"on"}})
	if st != 200 || !strings.Contains(body, "Retention rule added.") || !strings.Contains(body, `value="v.*"`) {
		t.Fatalf("add rule: %d\n%s", st, body)
	}
	st, _, body = b.post("/namespaces/team/retention-rules", url.Values{"tag_pattern": {"v("}, "keep_last": {"5"}})
	if st != http.StatusBadRequest || !strings.Contains(body, "tag_pattern") {
		t.Fatalf("bad rule: %d\n%s", st, body)
	}
	r := in.Admin(t, "GET", "/api/v1/namespaces/team/retention-rules", nil)
	if len(r.Items()) != 1 || r.Items()[0]["keep_last"] != float64(5) || r.Items()[0]["enabled"] != true {
		t.Fatalf("rules: %s", r.Body)
	}
	id := r.Items()[0]["id"].(string)
	st, _, body = b.post("/namespaces/team/retention-rules/"+id, url.Values{"tag_pattern": {"v.*"}, "keep_last": {"3"}, "keep_days": {"7"}})
	if st != 200 || !strings.Contains(body, "Retention rule saved.") {
		t.Fatalf("edit rule: %d\n%s", st, body)
	}
	if r := in.Admin(t, "GET", "/api/v1/namespaces/team/retention-rules/"+id, nil); r.JSON["keep_last"] != float64(3) ||
		r.JSON["keep_days"] != float64(7) || r.JSON["enabled"] != false {
		t.Fatalf("rule after the edit: %s", r.Body)
	}
	// Preview: the run's page, then the list of recent runs.
	st, h, _ := b.post("/namespaces/team/retention-runs", url.Values{"dry_run": {"true"}})
	loc := h.Get("Location")
	if st != http.StatusSeeOther || !strings.HasPrefix(loc, "/namespaces/team/retention-runs/") {
		t.Fatalf("preview: %d %q", st, loc)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		st, body = b.get(loc)
		if st != 200 {
			t.Fatalf("run page: %d\n%s", st, body)
		}
		if strings.Contains(body, "Nothing would be deleted.") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the preview did not finish:\n%s", body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !strings.Contains(body, "Retention preview (dry run)") {
		t.Fatalf("run page:\n%s", body)
	}
	if _, body = b.get("/namespaces/team/settings"); !strings.Contains(body, `href="`+loc+`"`) || !strings.Contains(body, "dry run") {
		t.Fatalf("recent runs:\n%s", body)
	}
	st, _, body = b.post("/namespaces/team/retention-rules/"+id+"/delete", nil)
	if st != 200 || !strings.Contains(body, "Retention rule deleted.") {
		t.Fatalf("delete rule: %d\n%s", st, body)
	}

	// Immutable tags on the repository's page.
	b.get("/repositories/team/app")
	st, _, body = b.post("/repositories/team/app", url.Values{"summary": {"s"}, "visibility": {"PRIVATE"}, "immutable_tags": {`v\d+`}})
	if st != http.StatusSeeOther {
		t.Fatalf("repository form: %d\n%s", st, body)
	}
	if r := in.Admin(t, "GET", "/api/v1/repositories/team/app", nil); r.JSON["immutable_tags"] != `v\d+` {
		t.Fatalf("repository after the form: %s", r.Body)
	}
	if _, body = b.get("/repositories/team/app"); !strings.Contains(body, `<code>v\d`) {
		t.Fatalf("repository page:\n%s", body)
	}
	// Deleting an immutable tag from the console shows the API's refusal.
	img, err := random.Image(512, 1)
	if err != nil {
		t.Fatal(err)
	}
	ref, _ := name.ParseReference(in.Host+"/team/app:v1", name.Insecure)
	if err := remote.Write(ref, img, remote.WithAuth(&authn.Basic{Username: "admin", Password: apptest.AdminPassword})); err != nil {
		t.Fatal(err)
	}
	b.get("/repositories/team/app/tags/v1")
	st, _, body = b.post("/repositories/team/app/tags/v1/delete", nil)
	if st != http.StatusConflict || !strings.Contains(body, "tag v1 is immutable in team/app") {
		t.Fatalf("console delete of an immutable tag: %d\n%s", st, body)
	}
}
