package console_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/berth-dev/berth/server/app/apptest"
	"github.com/berth-dev/berth/store"
)

// pushRandom pushes a small random image as ns/repo:tag, as the administrator.
func pushRandom(t *testing.T, in *apptest.Instance, repoTag string) {
	t.Helper()
	img, err := random.Image(256, 1)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference(in.Host+"/"+repoTag, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img, remote.WithAuth(&authn.Basic{Username: "admin", Password: apptest.AdminPassword})); err != nil {
		t.Fatal(err)
	}
}

// TestConsoleGuideFlows: the flows of the guide's console (SPEC §12) on the pages: a build rule edited in place,
// a Log link on every build row and a Scan action on every version row, a TAGS trigger's tags picked from the
// versions, and an access record that did not fire shown as "Not triggered".
func TestConsoleGuideFlows(t *testing.T) {
	in := apptest.Start(t, apptest.Options{})
	for _, c := range []struct{ path, name string }{{"/api/v1/namespaces", "team"}, {"/api/v1/namespaces/team/repositories", "app"}} {
		if r := in.Admin(t, "POST", c.path, map[string]any{"name": c.name}); r.Status != 201 {
			t.Fatalf("%s: %s", c.path, r.Body)
		}
	}
	b := newBrowser(t, in)
	b.signIn("admin", apptest.AdminPassword)
	base := "/repositories/team/app"

	// A rule, edited in place: its row turns into a form holding its values; saving PATCHes every field.
	r := in.Admin(t, "POST", "/api/v1"+base+"/build-rules", map[string]any{"source_type": "BRANCH", "source_ref": "main",
		"image_tag": "latest", "build_args": map[string]string{"MODE": "dev"}, "platforms": []string{"linux/amd64"}})
	if r.Status != 201 {
		t.Fatalf("rule: %s", r.Body)
	}
	id := r.JSON["id"].(string)
	st, body := b.get(base + "/build")
	if st != 200 || !strings.Contains(body, `href="`+base+`/build?edit=`+id+`#rule-`+id+`"`) || strings.Contains(body, `action="`+base+`/build-rules/`+id+`"`) {
		t.Fatalf("build page: %d, no Edit link or an open edit form\n%s", st, body)
	}
	st, body = b.get(base + "/build?edit=" + id)
	for _, want := range []string{`<tr id="rule-` + id + `" class="editing">`, `action="` + base + `/build-rules/` + id + `"`,
		`id="edit-` + id + `-ref" name="source_ref" required placeholder="main" value="main"`, "MODE=dev", `value="linux/amd64"`} {
		if st != 200 || !strings.Contains(body, want) {
			t.Fatalf("edit form: %d, no %q\n%s", st, want, body)
		}
	}
	st, _, body = b.post(base+"/build-rules/"+id, url.Values{"edit": {id}, "source_type": {"TAG"}, "source_ref": {"release-v(?<version>.*)"},
		"image_tag": {"${version}"}, "dockerfile_dir": {"/docker"}, "dockerfile_name": {"Dockerfile.prod"}, "platforms": {""}, "build_args": {""}})
	if st != http.StatusSeeOther {
		t.Fatalf("save the rule: %d\n%s", st, body)
	}
	r = in.Admin(t, "GET", "/api/v1"+base+"/build-rules/"+id, nil)
	if r.JSON["source_type"] != "TAG" || r.JSON["source_ref"] != "release-v(?<version>.*)" || r.JSON["image_tag"] != "${version}" ||
		r.JSON["dockerfile_dir"] != "/docker" || r.JSON["dockerfile_name"] != "Dockerfile.prod" ||
		len(r.JSON["build_args"].(map[string]any)) != 0 || r.JSON["platforms"] != nil && len(r.JSON["platforms"].([]any)) != 0 {
		t.Fatalf("rule after the edit: %s", r.Body)
	}
	// A refused edit stays in place, with the API's message and what was typed.
	st, _, body = b.post(base+"/build-rules/"+id, url.Values{"edit": {id}, "source_type": {"BRANCH"}, "source_ref": {"main"}, "image_tag": {"bad tag!"}})
	if st != http.StatusBadRequest || !strings.Contains(body, "INVALID_ARGUMENT") || !strings.Contains(body, `value="bad tag!"`) ||
		!strings.Contains(body, `class="editing"`) {
		t.Fatalf("refused edit: %d\n%s", st, body)
	}
	if r = in.Admin(t, "GET", "/api/v1"+base+"/build-rules/"+id, nil); r.JSON["image_tag"] != "${version}" {
		t.Fatalf("a refused edit changed the rule: %s", r.Body)
	}

	// Builds: every row links to its build's log.
	bid := store.NewBuildID()
	if err := in.Store.CreateBuild(context.Background(), &store.Build{ID: bid, Repository: "team/app", RuleID: id, Trigger: "MANUAL",
		Ref: "main", ImageTag: "latest", Status: store.BuildFailed, Error: "no source", CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if st, body = b.get(base + "/builds"); st != 200 || !strings.Contains(body, `href="`+base+`/builds/`+bid+`#log-h"`) {
		t.Fatalf("builds: %d, no Log link\n%s", st, body)
	}

	// A TAGS trigger for "stable"; pushing v1 records NOT_TRIGGERED, shown as "Not triggered".
	r = in.Admin(t, "POST", "/api/v1"+base+"/triggers", map[string]any{"name": "deploy", "url": "https://deploy.example.com/hook",
		"filter_type": "TAGS", "tags": []string{"stable"}})
	if r.Status != 201 {
		t.Fatalf("trigger: %s", r.Body)
	}
	tid := r.JSON["id"].(string)
	pushRandom(t, in, "team/app:v1")
	pushRandom(t, in, "team/app:v2")

	// Versions: each row offers its scan (a link to it, or a button that starts one).
	st, body = b.get(base + "/tags")
	if st != 200 || (!strings.Contains(body, `href="`+base+`/tags/v1#scan"`) && !strings.Contains(body, `action="`+base+`/tags/v1/scan"`)) {
		t.Fatalf("versions: %d, no Scan for v1\n%s", st, body)
	}
	if strings.Contains(body, `action="`+base+`/tags/v1/scan"`) {
		st, h, body := b.post(base+"/tags/v1/scan", nil)
		if st != http.StatusSeeOther || h.Get("Location") != base+"/tags/v1#scan" {
			t.Fatalf("scan from the list: %d %v\n%s", st, h, body)
		}
	}

	deadline := time.Now().Add(20 * time.Second)
	for {
		st, body = b.get(base + "/triggers/" + tid)
		if st == 200 && strings.Count(body, "Not triggered") == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no NOT_TRIGGERED records shown as Not triggered: %d\n%s", st, body)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// The edit form offers the versions; the trigger's own "stable" (not pushed) stays typed.
	for _, want := range []string{`<option value="v1" >v1</option>`, `<option value="v2" >v2</option>`, `id="tr-tags" name="tags" value="stable"`} {
		if !strings.Contains(body, want) {
			t.Fatalf("trigger form: no %q\n%s", want, body)
		}
	}
	st, h, body := b.post(base+"/triggers/"+tid, url.Values{"name": {"deploy"}, "url": {"https://deploy.example.com/hook"},
		"filter_type": {"TAGS"}, "tag_pick": {"v1", "v2"}, "tags": {"stable, v1"}, "enabled": {"on"}})
	if st != http.StatusSeeOther {
		t.Fatalf("save trigger: %d %v\n%s", st, h, body)
	}
	r = in.Admin(t, "GET", "/api/v1"+base+"/triggers/"+tid, nil)
	if tags, _ := r.JSON["tags"].([]any); len(tags) != 3 || tags[0] != "v1" || tags[1] != "v2" || tags[2] != "stable" {
		t.Fatalf("trigger tags after the picker: %s", r.Body)
	}
	if _, body = b.get(base + "/triggers/" + tid); !strings.Contains(body, `<option value="v1" selected>v1</option>`) {
		t.Fatalf("picked versions not selected:\n%s", body)
	}
	// More than 10 picked: the API's limit message, on the form.
	var eleven []string
	for i := 0; i < 11; i++ {
		eleven = append(eleven, "t"+strings.Repeat("x", i))
	}
	st, _, body = b.post(base+"/triggers/"+tid, url.Values{"name": {"deploy"}, "url": {"https://deploy.example.com/hook"},
		"filter_type": {"TAGS"}, "tags": {strings.Join(eleven, ",")}, "enabled": {"on"}})
	if st != http.StatusBadRequest || !strings.Contains(body, "10") {
		t.Fatalf("11 tags: %d\n%s", st, body)
	}
}

// TestConsoleWorkedCase1: SPEC §9 worked case 1 in the console. A user with cr:Get*, cr:List*,
// cr:PullRepository on repository/juzhong/* lists nothing, yet opens /namespaces/juzhong by its address and
// its repositories by name; with cr:ListNamespace/cr:ListRepository on * it sees every namespace and
// repository name (as the list APIs answer), links only to juzhong's, and other pages answer forbidden. The
// all-repositories page filters by namespace and name and pages.
func TestConsoleWorkedCase1(t *testing.T) {
	in := apptest.Start(t, apptest.Options{})
	admin := func(method, path string, body any) *apptest.Response {
		t.Helper()
		return in.MustAdmin(t, method, path, body)
	}
	for _, ns := range []string{"juzhong", "other"} {
		admin("POST", "/api/v1/namespaces", map[string]any{"name": ns})
	}
	for _, full := range []string{"juzhong/nginx", "juzhong/redis", "other/app"} {
		ns, repo, _ := strings.Cut(full, "/")
		admin("POST", "/api/v1/namespaces/"+ns+"/repositories", map[string]any{"name": repo, "summary": "the " + repo})
	}
	admin("POST", "/api/v1/policies", map[string]any{"name": "juzhong-read", "document": map[string]any{"Version": "1",
		"Statement": []any{map[string]any{"Effect": "Allow", "Action": []string{"cr:Get*", "cr:List*", "cr:PullRepository"},
			"Resource": []string{"acs:cr:*:*:repository/juzhong/*"}}}}})
	admin("POST", "/api/v1/policies", map[string]any{"name": "list-all", "document": map[string]any{"Version": "1",
		"Statement": []any{map[string]any{"Effect": "Allow", "Action": []string{"cr:ListNamespace", "cr:ListRepository"}, "Resource": "*"}}}})
	admin("POST", "/api/v1/users", map[string]any{"name": "ju", "password": "ju-password-1"})
	admin("PUT", "/api/v1/users/ju/policies/juzhong-read", nil)

	b := newBrowser(t, in)
	b.signIn("ju", "ju-password-1")
	expect := func(path string, status int, want, not []string) string {
		t.Helper()
		st, body := b.get(path)
		if st != status {
			t.Fatalf("%s: %d, want %d\n%s", path, st, status, body)
		}
		for _, w := range want {
			if !strings.Contains(body, w) {
				t.Fatalf("%s: no %q\n%s", path, w, body)
			}
		}
		for _, n := range not {
			if strings.Contains(body, n) {
				t.Fatalf("%s: %q shown\n%s", path, n, body)
			}
		}
		return body
	}

	// Without the list grant: nothing listed; juzhong opens by its address.
	expect("/namespaces", 200, []string{"You may not list namespaces", `name="open"`}, []string{"juzhong", "other"})
	if st, h, _ := b.do("GET", "/namespaces?open=juzhong", nil, nil); st != http.StatusSeeOther || h.Get("Location") != "/namespaces/juzhong" {
		t.Fatalf("open a namespace by name: %d %v", st, h)
	}
	expect("/namespaces/juzhong", 200, []string{"<h1>juzhong</h1>", "You may not list repositories", `action="/namespaces/juzhong"`},
		[]string{"nginx", "/settings", `action="/namespaces/juzhong/repositories"`})
	if st, h, _ := b.do("GET", "/namespaces/juzhong?open=nginx", nil, nil); st != http.StatusSeeOther || h.Get("Location") != "/repositories/juzhong/nginx" {
		t.Fatalf("open a repository by name: %d %v", st, h)
	}
	expect("/repositories/juzhong/nginx", 200, []string{"juzhong/nginx", "the nginx"}, nil)
	expect("/repositories/juzhong/nginx/connect", 200, []string{"You may not connect the code source"}, []string{`method="post" action="/repositories/juzhong/nginx/connect"`})
	expect("/namespaces/other", 403, []string{"cr:GetNamespace"}, []string{"app"})
	expect("/repositories", 200, []string{"You may not list repositories"}, []string{"nginx", "other"})

	// With the list grant: every name, links to juzhong's only.
	admin("PUT", "/api/v1/users/ju/policies/list-all", nil)
	r := in.Call(t, "ju", "ju-password-1", "GET", "/api/v1/namespaces", nil)
	if r.Status != 200 || len(r.Items()) != 2 {
		t.Fatalf("the list API for ju: %d %s", r.Status, r.Body)
	}
	expect("/namespaces", 200, []string{`<a href="/namespaces/juzhong">juzhong</a>`, `<span class="noaccess" title="You may not open this page">other</span>`},
		[]string{`href="/namespaces/other"`})
	expect("/namespaces/juzhong", 200, []string{`<a href="/repositories/juzhong/nginx">nginx</a>`, `<a href="/repositories/juzhong/redis">redis</a>`}, nil)
	expect("/namespaces/other", 403, []string{"cr:GetNamespace"}, []string{"the app"})
	expect("/repositories/other/app", 403, []string{"cr:GetRepository"}, []string{"the app"})
	body := expect("/repositories", 200, []string{`aria-label="Manage juzhong/nginx"`, `aria-label="Manage juzhong/redis"`,
		`<span class="noaccess" title="You may not open this page">app</span>`, `<option>juzhong</option>`},
		[]string{`href="/repositories/other/app"`, `href="/repositories/new`}) // a reader creates nothing: no Create button
	if strings.Count(body, "<tr>") != 4 {
		t.Fatalf("all repositories: want 3 rows\n%s", body)
	}
	body = expect("/repositories?namespace=juzhong", 200, []string{"nginx", "redis", `<option selected>juzhong</option>`}, []string{"the app"})
	body = expect("/repositories?q=ngi", 200, []string{"nginx"}, []string{"redis", "the app"})
	if r := in.Call(t, "ju", "ju-password-1", "GET", "/api/v1/repositories?namespace=juzhong", nil); r.Status != 200 || len(r.Items()) != 2 {
		t.Fatalf("GET /repositories?namespace=juzhong: %d %s", r.Status, r.Body)
	}
	if r := in.Call(t, "ju", "ju-password-1", "GET", "/api/v1/repositories?namespace=none", nil); r.Status != 200 || len(r.Items()) != 0 {
		t.Fatalf("GET /repositories?namespace=none: %d %s", r.Status, r.Body)
	}
	_ = body

	// Paging: 25 repositories in juzhong, 20 a page.
	for i := 0; i < 22; i++ {
		admin("POST", "/api/v1/namespaces/juzhong/repositories", map[string]any{"name": "r" + strings.Repeat("x", i+1)})
	}
	expect("/repositories?namespace=juzhong", 200, []string{"Page 1 of 2 (24)", `href="/repositories?namespace=juzhong&amp;page=2"`}, nil)
	expect("/repositories?namespace=juzhong&page=2", 200, []string{"Page 2 of 2 (24)"}, nil)
}

// TestConsoleCreateRepositoryWizard: "Create repository" in two steps from the Repositories page: step 1 names
// it (a refusal keeps what was typed), step 2 connects a Git URL with a branch to build (its webhook secret
// shown once, a rule made), or is skipped.
func TestConsoleCreateRepositoryWizard(t *testing.T) {
	in := apptest.Start(t, apptest.Options{})
	if r := in.Admin(t, "POST", "/api/v1/namespaces", map[string]any{"name": "team"}); r.Status != 201 {
		t.Fatalf("namespace: %s", r.Body)
	}
	b := newBrowser(t, in)
	b.signIn("admin", apptest.AdminPassword)
	if st, body := b.get("/repositories"); st != 200 || !strings.Contains(body, `href="/repositories/new"`) {
		t.Fatalf("repositories: %d, no Create repository\n%s", st, body)
	}
	st, body := b.get("/repositories/new?namespace=team")
	if st != 200 || !strings.Contains(body, `<option selected>team</option>`) || !strings.Contains(body, `aria-current="step">Repository information`) {
		t.Fatalf("step 1: %d\n%s", st, body)
	}
	st, _, body = b.post("/repositories/new", url.Values{"namespace": {"team"}, "name": {"Bad Name"}, "summary": {"kept"}})
	if st != http.StatusBadRequest || !strings.Contains(body, "INVALID_NAME") || !strings.Contains(body, `value="kept"`) {
		t.Fatalf("step 1 refused: %d\n%s", st, body)
	}
	st, h, body := b.post("/repositories/new", url.Values{"namespace": {"team"}, "name": {"app"}, "summary": {"the app"}, "visibility": {"PUBLIC"}})
	if st != http.StatusSeeOther || h.Get("Location") != "/repositories/team/app/connect" {
		t.Fatalf("step 1: %d %v\n%s", st, h, body)
	}
	if r := in.Admin(t, "GET", "/api/v1/repositories/team/app", nil); r.JSON["summary"] != "the app" || r.JSON["visibility"] != "PUBLIC" {
		t.Fatalf("repository after step 1: %s", r.Body)
	}
	st, body = b.get("/repositories/team/app/connect")
	if st != 200 || !strings.Contains(body, `aria-current="step">Code source`) || !strings.Contains(body, `id="skip" href="/repositories/team/app"`) ||
		!strings.Contains(body, `class="connect-url"`) {
		t.Fatalf("step 2: %d\n%s", st, body)
	}
	st, _, body = b.post("/repositories/team/app/connect", url.Values{"mode": {"url"}, "provider": {"gitea"}, "url": {"ftp://nowhere"}, "branch": {"main"}})
	if st != http.StatusBadRequest || !strings.Contains(body, `value="ftp://nowhere"`) {
		t.Fatalf("step 2 refused: %d\n%s", st, body)
	}
	st, _, body = b.post("/repositories/team/app/connect", url.Values{"mode": {"url"}, "provider": {"gitea"},
		"url": {"https://git.example.com/team/app.git"}, "branch": {"develop"}, "auto_build": {"on"}})
	if st != 200 || !strings.Contains(body, "The code source is connected.") || !strings.Contains(body, "shown only now") ||
		!strings.Contains(body, "builds branch develop as the image tag latest") {
		t.Fatalf("step 2: %d\n%s", st, body)
	}
	r := in.Admin(t, "GET", "/api/v1/repositories/team/app/build-rules", nil)
	if items := r.Items(); len(items) != 1 || items[0]["source_ref"] != "develop" || items[0]["image_tag"] != "latest" {
		t.Fatalf("rule from step 2: %s", r.Body)
	}
	if r := in.Admin(t, "GET", "/api/v1/repositories/team/app/source", nil); r.JSON["url"] != "https://git.example.com/team/app.git" || r.JSON["auto_build"] != true {
		t.Fatalf("source from step 2: %s", r.Body)
	}

	// From a namespace's page: step 1 there, then Skip leaves the repository without a source.
	st, h, _ = b.post("/namespaces/team/repositories", url.Values{"name": {"lib"}})
	if st != http.StatusSeeOther || h.Get("Location") != "/repositories/team/lib/connect" {
		t.Fatalf("step 1 from the namespace: %d %v", st, h)
	}
	if st, body = b.get("/repositories/team/lib"); st != 200 {
		t.Fatalf("skip: %d\n%s", st, body)
	}
	if r := in.Admin(t, "GET", "/api/v1/repositories/team/lib/source", nil); r.Status != 404 {
		t.Fatalf("a skipped source exists: %d %s", r.Status, r.Body)
	}
}
