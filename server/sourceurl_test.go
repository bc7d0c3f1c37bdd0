package server_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/berth-dev/berth/server/app"
	"github.com/berth-dev/berth/server/app/apptest"
)

// TestFileSourceAnySpelling: the administrator-only rule for local repositories holds on the parsed URL, so
// no spelling of file:// (nor a plain path) gets past it; the administrator may still use one.
func TestFileSourceAnySpelling(t *testing.T) {
	in := apptest.Start(t, apptest.Options{})
	in.Admin(t, "POST", "/api/v1/namespaces", map[string]any{"name": "team"})
	in.Admin(t, "POST", "/api/v1/namespaces/team/repositories", map[string]any{"name": "app"})
	pass := newUser(t, in, "dev", nil, "AliyunContainerRegistryFullAccess")
	api := "/api/v1/repositories/team/app/source"
	for _, u := range []string{"FILE:///etc/berth-secrets.git", "File:///etc/berth-secrets.git", "fiLE:///etc/berth-secrets.git",
		"/etc/berth-secrets.git", "../../berth-secrets.git"} {
		r := in.Call(t, "dev", pass, "PUT", api, map[string]any{"provider": "generic", "url": u})
		expect(t, "non-administrator source "+u, r, 403, "FORBIDDEN")
		if !strings.Contains(string(r.Body), "only the administrator") {
			t.Fatalf("%s: %s", u, r.Body)
		}
	}
	// Changing the URL of an existing source is checked the same way.
	expect(t, "public source", in.Call(t, "dev", pass, "PUT", api, map[string]any{"provider": "generic", "url": "https://git.example.com/team/app.git"}), 201)
	expect(t, "change to FILE://", in.Call(t, "dev", pass, "PUT", api, map[string]any{"url": "FILE:///etc/berth-secrets.git"}), 403, "FORBIDDEN")
	if r := in.Admin(t, "GET", api, nil); r.JSON["url"] != "https://git.example.com/team/app.git" {
		t.Fatalf("the refused URL was stored: %s", r.Body)
	}
	expect(t, "the administrator's FILE://", in.Admin(t, "PUT", api, map[string]any{"url": "FILE:///srv/git/app.git"}), 200)
}

// gitHost stands for a Git server on the Berth host's loopback: it counts requests and answers 404 with an
// HTML page.
func gitHost(t *testing.T) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte("<!DOCTYPE HTML><html><title>router admin</title>internal-secret-page</html>"))
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

// TestSourceSSRF: a non-administrator cannot point a code source at the Berth host's loopback, a private or a
// link-local address (refused at once, before any request); --source-allow-cidr lets a self-hosted Git on a
// private network in; the administrator is exempt. A remote answer's body never reaches an API error.
func TestSourceSSRF(t *testing.T) {
	srv, hits := gitHost(t)
	allowedDir := t.TempDir()
	for _, allow := range []bool{false, true} {
		dir := t.TempDir()
		if allow {
			dir = allowedDir
		}
		in := apptest.Start(t, apptest.Options{DataDir: dir, Configure: func(c *app.Config) {
			if allow {
				c.SourceAllow = []string{"127.0.0.0/8"}
			}
		}})
		in.Admin(t, "POST", "/api/v1/namespaces", map[string]any{"name": "team"})
		in.Admin(t, "POST", "/api/v1/namespaces/team/repositories", map[string]any{"name": "app"})
		pass := newUser(t, in, "dev", nil, "AliyunContainerRegistryFullAccess")
		api := "/api/v1/repositories/team/app"
		internal := srv.URL + "/team/app.git"
		if !allow {
			for _, u := range []string{internal, strings.Replace(internal, "127.0.0.1", "localhost", 1),
				strings.Replace(internal, "127.0.0.1", "[::ffff:127.0.0.1]", 1), "http://169.254.169.254/latest.git",
				"https://10.1.2.3/team/app.git", "git@192.168.1.1:team/app.git"} {
				r := in.Call(t, "dev", pass, "PUT", api+"/source", map[string]any{"provider": "generic", "url": u})
				expect(t, "non-administrator source "+u, r, 403, "FORBIDDEN")
				if msg, _ := r.JSON["message"].(string); !strings.Contains(msg, "--source-allow-cidr") || !strings.Contains(msg, "address") {
					t.Fatalf("%s: %s", u, r.Body)
				}
			}
			if hits.Load() != 0 {
				t.Fatalf("the internal server saw %d requests", hits.Load())
			}
			// The administrator may connect it; "build now" then asks it, and its 404 page stays out of the error.
			expect(t, "the administrator's internal source", in.Admin(t, "PUT", api+"/source", map[string]any{"provider": "generic", "url": internal}), 201)
		} else {
			expect(t, "a source in --source-allow-cidr", in.Call(t, "dev", pass, "PUT", api+"/source", map[string]any{"provider": "generic", "url": internal}), 201)
		}
		rule := in.Admin(t, "POST", api+"/build-rules", map[string]any{"source_type": "BRANCH", "source_ref": "main"})
		before := hits.Load()
		r := in.Call(t, "dev", pass, "POST", api+"/build-rules/"+rule.JSON["id"].(string)+"/builds", nil)
		expect(t, "build now on a missing repository", r, 409, "CONFLICT")
		if strings.Contains(string(r.Body), "DOCTYPE") || strings.Contains(string(r.Body), "internal-secret-page") ||
			!strings.Contains(string(r.Body), "repository not found") {
			t.Fatalf("build now error: %s", r.Body)
		}
		if hits.Load() != before+1 {
			t.Fatalf("build now made %d requests, want 1", hits.Load()-before)
		}
		in.Stop()
	}

	// The clone checks again when it connects: the source saved under --source-allow-cidr, on an instance
	// started without it, reaches nothing.
	in := apptest.Start(t, apptest.Options{DataDir: allowedDir})
	pass := "dev-password"
	rules := in.Call(t, "dev", pass, "GET", "/api/v1/repositories/team/app/build-rules", nil)
	before := hits.Load()
	r := in.Call(t, "dev", pass, "POST", "/api/v1/repositories/team/app/build-rules/"+rules.Items()[0]["id"].(string)+"/builds", nil)
	expect(t, "build now on a private address without --source-allow-cidr", r, 403, "FORBIDDEN")
	if msg, _ := r.JSON["message"].(string); !strings.Contains(msg, "127.0.0.1 is a loopback address") || !strings.Contains(msg, "--source-allow-cidr") {
		t.Fatalf("build now refusal: %s", r.Body)
	}
	if hits.Load() != before {
		t.Fatalf("the internal server saw %d requests", hits.Load()-before)
	}
}
