package server_test

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/berth-dev/berth/server/app/apptest"
)

func TestNamespaceRules(t *testing.T) {
	in := apptest.Start(t, apptest.Options{})
	cases := []struct {
		name   string
		body   any
		status int
		code   string
	}{
		{"ok", map[string]any{"name": "aliyun"}, 201, ""},
		{"duplicate", map[string]any{"name": "aliyun"}, 409, "ALREADY_EXISTS"},
		{"too short", map[string]any{"name": "a"}, 400, "INVALID_NAME"},
		{"too long", map[string]any{"name": strings.Repeat("a", 31)}, 400, "INVALID_NAME"},
		{"upper case", map[string]any{"name": "Misaka"}, 400, "INVALID_NAME"},
		{"starts with dash", map[string]any{"name": "-team"}, 400, "INVALID_NAME"},
		{"ends with dot", map[string]any{"name": "team."}, 400, "INVALID_NAME"},
		{"slash", map[string]any{"name": "a/b"}, 400, "INVALID_NAME"},
		{"double separator", map[string]any{"name": "a..b"}, 400, "INVALID_NAME"},
		{"bad visibility", map[string]any{"name": "vis", "default_visibility": "SECRET"}, 400, "INVALID_ARGUMENT"},
		{"unknown field", map[string]any{"name": "typo", "auto_create": true}, 400, "INVALID_JSON"},
		{"wrong type", map[string]any{"name": 12}, 400, "INVALID_JSON"},
		{"not json", "{name:", 400, "INVALID_JSON"},
		{"empty body", "", 400, "INVALID_JSON"},
		{"trailing data", `{"name":"trail"} {}`, 400, "INVALID_JSON"},
		{"body too large", `{"name":"` + strings.Repeat("x", 2<<20) + `"}`, 413, "BODY_TOO_LARGE"},
		{"30 chars with separators", map[string]any{"name": "misaka-team_2.x" + strings.Repeat("z", 15), "auto_create_repo": false, "default_visibility": "PUBLIC"}, 201, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := in.Admin(t, "POST", "/api/v1/namespaces", c.body)
			if r.Status != c.status || r.Code() != c.code {
				t.Fatalf("got %d %s (%s), want %d %s", r.Status, r.Code(), r.Body, c.status, c.code)
			}
			if r.Status >= 400 {
				if msg, _ := r.JSON["message"].(string); msg == "" || r.JSON["request_id"] == "" {
					t.Fatalf("error without message or request_id: %s", r.Body)
				}
			}
		})
	}
	r := in.Admin(t, "GET", "/api/v1/namespaces/aliyun", nil)
	if r.Status != 200 || r.JSON["auto_create_repo"] != true || r.JSON["default_visibility"] != "PRIVATE" || r.JSON["created_at"] == nil {
		t.Fatalf("defaults: %s", r.Body)
	}
	// The namespace limit is 3: two exist, the third is accepted, the fourth refused.
	if r := in.Admin(t, "POST", "/api/v1/namespaces", map[string]any{"name": "third"}); r.Status != 201 {
		t.Fatalf("third: %s", r.Body)
	}
	r = in.Admin(t, "POST", "/api/v1/namespaces", map[string]any{"name": "fourth"})
	if r.Status != 409 || r.Code() != "NAMESPACE_LIMIT_EXCEEDED" {
		t.Fatalf("fourth: %d %s", r.Status, r.Body)
	}
	// PATCH changes settings; a name change is refused.
	r = in.Admin(t, "PATCH", "/api/v1/namespaces/aliyun", map[string]any{"auto_create_repo": false, "default_visibility": "PUBLIC"})
	if r.Status != 200 || r.JSON["auto_create_repo"] != false || r.JSON["default_visibility"] != "PUBLIC" {
		t.Fatalf("patch: %s", r.Body)
	}
	if r := in.Admin(t, "PATCH", "/api/v1/namespaces/aliyun", map[string]any{"name": "other"}); r.Code() != "INVALID_JSON" {
		t.Fatalf("rename: %s", r.Body)
	}
	if r := in.Admin(t, "PATCH", "/api/v1/namespaces/missing", map[string]any{}); r.Status != 404 || r.Code() != "NOT_FOUND" {
		t.Fatalf("patch missing: %s", r.Body)
	}
}

func TestNamespaceLimitConcurrentAPI(t *testing.T) {
	in := apptest.Start(t, apptest.Options{})
	var wg sync.WaitGroup
	statuses := make([]*apptest.Response, 50)
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			statuses[i] = in.Admin(t, "POST", "/api/v1/namespaces", map[string]any{"name": fmt.Sprintf("par-%02d", i)})
		}()
	}
	wg.Wait()
	created, limited := 0, 0
	for _, r := range statuses {
		switch {
		case r.Status == 201:
			created++
		case r.Code() == "NAMESPACE_LIMIT_EXCEEDED":
			limited++
		default:
			t.Errorf("unexpected answer %d %s", r.Status, r.Body)
		}
	}
	if created != 3 || limited != 47 {
		t.Fatalf("created %d, limited %d", created, limited)
	}
	r := in.Admin(t, "GET", "/api/v1/namespaces?page_size=100", nil)
	if r.JSON["total"] != float64(3) || len(r.Items()) != 3 {
		t.Fatalf("list after race: %s", r.Body)
	}
}

func TestRepositoryRulesAndPaging(t *testing.T) {
	in := apptest.Start(t, apptest.Options{NamespaceLimit: -1})
	in.Admin(t, "POST", "/api/v1/namespaces", map[string]any{"name": "team", "default_visibility": "PUBLIC"})
	base := "/api/v1/namespaces/team/repositories"
	cases := []struct {
		name   string
		body   any
		status int
		code   string
	}{
		{"ok", map[string]any{"name": "centos", "summary": "base image", "description": "# CentOS"}, 201, ""},
		{"dup", map[string]any{"name": "centos"}, 409, "ALREADY_EXISTS"},
		{"two segments", map[string]any{"name": "a/b"}, 400, "INVALID_NAME"},
		{"too long", map[string]any{"name": strings.Repeat("r", 65)}, 400, "INVALID_NAME"},
		{"64 chars", map[string]any{"name": strings.Repeat("r", 64)}, 201, ""},
		{"summary 101", map[string]any{"name": "sum", "summary": strings.Repeat("s", 101)}, 400, "INVALID_ARGUMENT"},
		{"summary 100 runes", map[string]any{"name": "sum", "summary": strings.Repeat("é", 100)}, 201, ""},
		{"bad visibility", map[string]any{"name": "vis", "visibility": "public"}, 400, "INVALID_ARGUMENT"},
	}
	for _, c := range cases {
		r := in.Admin(t, "POST", base, c.body)
		if r.Status != c.status || r.Code() != c.code {
			t.Fatalf("%s: got %d %s", c.name, r.Status, r.Body)
		}
	}
	if r := in.Admin(t, "POST", "/api/v1/namespaces/nope/repositories", map[string]any{"name": "x1"}); r.Status != 404 {
		t.Fatalf("repo in missing namespace: %s", r.Body)
	}
	r := in.Admin(t, "GET", "/api/v1/repositories/team/centos", nil)
	if r.JSON["visibility"] != "PUBLIC" || r.JSON["origin"] != "USER" || r.JSON["summary"] != "base image" {
		t.Fatalf("repo defaults: %s", r.Body)
	}
	for i := range 22 {
		in.Admin(t, "POST", base, map[string]any{"name": fmt.Sprintf("svc-%02d", i)})
	}
	// 25 repositories: page 2 of size 20 holds 5; page_size bounds are enforced.
	r = in.Admin(t, "GET", "/api/v1/repositories?page=2", nil)
	if r.JSON["total"] != float64(25) || len(r.Items()) != 5 || r.JSON["page"] != float64(2) || r.JSON["page_size"] != float64(20) {
		t.Fatalf("page 2: %s", r.Body)
	}
	r = in.Admin(t, "GET", base+"?page_size=100", nil)
	if len(r.Items()) != 25 {
		t.Fatalf("by namespace: %d", len(r.Items()))
	}
	// ?namespace= filters the list of all repositories; an unknown namespace has none (not a 404).
	if r = in.Admin(t, "GET", "/api/v1/repositories?namespace=team&page_size=100", nil); r.Status != 200 || len(r.Items()) != 25 {
		t.Fatalf("?namespace=team: %d %s", r.Status, r.Body)
	}
	if r = in.Admin(t, "GET", "/api/v1/repositories?namespace=nope", nil); r.Status != 200 || len(r.Items()) != 0 || r.JSON["total"] != float64(0) {
		t.Fatalf("?namespace=nope: %d %s", r.Status, r.Body)
	}
	for _, q := range []string{"page_size=101", "page_size=0", "page=0", "page=x"} {
		if r := in.Admin(t, "GET", "/api/v1/repositories?"+q, nil); r.Status != 400 || r.Code() != "INVALID_ARGUMENT" {
			t.Fatalf("%s: %s", q, r.Body)
		}
	}
	r = in.Admin(t, "PATCH", "/api/v1/repositories/team/centos", map[string]any{"visibility": "PRIVATE", "summary": "new"})
	if r.Status != 200 || r.JSON["visibility"] != "PRIVATE" || r.JSON["description"] != "# CentOS" {
		t.Fatalf("patch: %s", r.Body)
	}
	// Deleting a namespace with repositories needs force.
	if r := in.Admin(t, "DELETE", "/api/v1/namespaces/team", nil); r.Status != 409 || r.Code() != "NAMESPACE_NOT_EMPTY" {
		t.Fatalf("delete non-empty: %s", r.Body)
	}
	if r := in.Admin(t, "DELETE", "/api/v1/repositories/team/centos", nil); r.Status != 204 {
		t.Fatalf("delete repo: %s", r.Body)
	}
	if r := in.Admin(t, "GET", "/api/v1/repositories/team/centos", nil); r.Status != 404 {
		t.Fatalf("deleted repo: %s", r.Body)
	}
	if r := in.Admin(t, "DELETE", "/api/v1/namespaces/team?force=true", nil); r.Status != 204 {
		t.Fatalf("force delete: %s", r.Body)
	}
	if r := in.Admin(t, "GET", "/api/v1/repositories", nil); r.JSON["total"] != float64(0) {
		t.Fatalf("repos left after force delete: %s", r.Body)
	}
}

func TestAuthErrorsHealthAndDocs(t *testing.T) {
	in := apptest.Start(t, apptest.Options{})
	r := in.Call(t, "", "", "GET", "/api/v1/namespaces", nil)
	if r.Status != 401 || r.Code() != "UNAUTHORIZED" || !strings.HasPrefix(r.Header.Get("WWW-Authenticate"), "Basic") {
		t.Fatalf("anonymous: %d %s", r.Status, r.Body)
	}
	if r := in.Call(t, "admin", "wrong-password", "GET", "/api/v1/namespaces", nil); r.Status != 401 {
		t.Fatalf("wrong password: %s", r.Body)
	}
	if r := in.Call(t, "nobody", "whatever-pass", "GET", "/api/v1/namespaces", nil); r.Status != 401 {
		t.Fatalf("unknown user: %s", r.Body)
	}
	r = in.Admin(t, "GET", "/api/v1/nothing-here", nil)
	if r.Status != 404 || r.Code() != "NOT_FOUND" || r.Header.Get("X-Request-Id") == "" || r.JSON["request_id"] != r.Header.Get("X-Request-Id") {
		t.Fatalf("unknown route: %v %s", r.Header, r.Body)
	}
	for _, p := range []string{"/healthz", "/readyz", "/metrics", "/api/v1/openapi.json"} {
		if r := in.Call(t, "", "", "GET", p, nil); r.Status != 200 {
			t.Fatalf("%s: %d", p, r.Status)
		}
	}
	if r := in.Call(t, "", "", "GET", "/metrics", nil); !strings.Contains(string(r.Body), "berth_api_requests_total") {
		t.Fatal("metrics lack the API counter")
	}
	doc := in.Call(t, "", "", "GET", "/api/v1/openapi.json", nil)
	paths, _ := doc.JSON["paths"].(map[string]any)
	for _, p := range []string{"/api/v1/namespaces", "/api/v1/namespaces/{ns}", "/api/v1/repositories/{ns}/{repo}/tags/{tag}/layers"} {
		if paths[p] == nil {
			t.Fatalf("openapi lacks %s", p)
		}
	}
	_ = http.StatusOK
}

func TestRestartKeepsData(t *testing.T) {
	dir := t.TempDir()
	in := apptest.Start(t, apptest.Options{DataDir: dir})
	in.Admin(t, "POST", "/api/v1/namespaces", map[string]any{"name": "keep"})
	in.Admin(t, "POST", "/api/v1/namespaces/keep/repositories", map[string]any{"name": "me", "summary": "still here"})
	acct := in.Instance.AccountID
	in.Stop()
	in2 := apptest.Start(t, apptest.Options{DataDir: dir})
	r := in2.Admin(t, "GET", "/api/v1/repositories/keep/me", nil)
	if r.Status != 200 || r.JSON["summary"] != "still here" {
		t.Fatalf("after restart: %d %s", r.Status, r.Body)
	}
	if in2.Instance.AccountID != acct {
		t.Fatalf("account id changed across restart: %s → %s", acct, in2.Instance.AccountID)
	}
}
