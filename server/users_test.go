package server_test

import (
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/server/app/apptest"
)

// TestUserLifecycle: create, read, change, disable and delete RAM users; passwords are write-only; the
// administrator is protected; changes take effect on the next request.
func TestUserLifecycle(t *testing.T) {
	in := apptest.Start(t, apptest.Options{})
	for _, c := range []struct {
		name   string
		body   any
		status int
		code   string
	}{
		{"ok", map[string]any{"name": "alice", "display_name": "Alice", "password": "alice-password-1"}, 201, ""},
		{"duplicate", map[string]any{"name": "alice", "password": "alice-password-1"}, 409, "ALREADY_EXISTS"},
		{"admin", map[string]any{"name": "admin", "password": "alice-password-1"}, 409, "ALREADY_EXISTS"},
		{"upper case", map[string]any{"name": "Alice"}, 400, "INVALID_NAME"},
		{"access-key-like", map[string]any{"name": "LTAIabc"}, 400, "INVALID_NAME"},
		{"empty", map[string]any{"name": ""}, 400, "INVALID_NAME"},
		{"too long", map[string]any{"name": strings.Repeat("u", 65)}, 400, "INVALID_NAME"},
		{"short password", map[string]any{"name": "bob", "password": "short"}, 400, "INVALID_ARGUMENT"},
		{"unknown policy", map[string]any{"name": "bob", "policies": []string{"nope"}}, 404, "NOT_FOUND"},
		{"unknown field", map[string]any{"name": "bob", "admin": true}, 400, "INVALID_JSON"},
		{"no password, a policy", map[string]any{"name": "bot", "policies": []string{"AliyunContainerRegistryReadOnlyAccess"}}, 201, ""},
	} {
		r := in.Admin(t, "POST", "/api/v1/users", c.body)
		if r.Status != c.status || r.Code() != c.code {
			t.Fatalf("%s: got %d %s, want %d %s", c.name, r.Status, r.Body, c.status, c.code)
		}
		if _, shown := r.JSON["password"]; shown || strings.Contains(string(r.Body), "password_hash") {
			t.Fatalf("%s: the answer shows a password: %s", c.name, r.Body)
		}
	}
	r := in.Admin(t, "GET", "/api/v1/users/alice", nil)
	if r.Status != 200 || r.JSON["display_name"] != "Alice" || r.JSON["enabled"] != true || r.JSON["admin"] != false {
		t.Fatalf("get alice: %s", r.Body)
	}
	r = in.Admin(t, "GET", "/api/v1/users", nil)
	var names []string
	for _, it := range r.Items() {
		names = append(names, it["name"].(string))
	}
	if r.JSON["total"] != float64(3) || !slices.Equal(names, []string{"admin", "alice", "bot"}) {
		t.Fatalf("list: %s", r.Body)
	}

	// No policy: authenticated, and refused.
	expect(t, "alice without policies", in.Call(t, "alice", "alice-password-1", "GET", "/api/v1/namespaces", nil), 403, "FORBIDDEN")
	expect(t, "attach unknown", in.Admin(t, "PUT", "/api/v1/users/alice/policies/nope", nil), 404, "NOT_FOUND")
	expect(t, "attach to unknown user", in.Admin(t, "PUT", "/api/v1/users/nobody/policies/AdministratorAccess", nil), 404, "NOT_FOUND")
	expect(t, "attach", in.Admin(t, "PUT", "/api/v1/users/alice/policies/AliyunContainerRegistryReadOnlyAccess", nil), 200)
	r = in.Admin(t, "PUT", "/api/v1/users/alice/policies/AliyunContainerRegistryReadOnlyAccess", nil) // idempotent
	if ps, _ := r.JSON["policies"].([]any); r.Status != 200 || len(ps) != 1 {
		t.Fatalf("attach twice: %s", r.Body)
	}
	expect(t, "alice read-only", in.Call(t, "alice", "alice-password-1", "GET", "/api/v1/namespaces", nil), 200)
	expect(t, "alice cannot create", in.Call(t, "alice", "alice-password-1", "POST", "/api/v1/namespaces", map[string]any{"name": "x1"}), 403, "FORBIDDEN")
	expect(t, "detach not attached", in.Admin(t, "DELETE", "/api/v1/users/alice/policies/AdministratorAccess", nil), 404, "NOT_FOUND")

	// PATCH: display name and password; the old password stops working at once.
	r = in.Admin(t, "PATCH", "/api/v1/users/alice", map[string]any{"display_name": "Alice L.", "password": "alice-password-2"})
	if r.Status != 200 || r.JSON["display_name"] != "Alice L." {
		t.Fatalf("patch: %s", r.Body)
	}
	expect(t, "old password", in.Call(t, "alice", "alice-password-1", "GET", "/api/v1/namespaces", nil), 401, "UNAUTHORIZED")
	expect(t, "new password", in.Call(t, "alice", "alice-password-2", "GET", "/api/v1/namespaces", nil), 200)
	expect(t, "patch short password", in.Admin(t, "PATCH", "/api/v1/users/alice", map[string]any{"password": "x"}), 400, "INVALID_ARGUMENT")
	expect(t, "patch unknown", in.Admin(t, "PATCH", "/api/v1/users/nobody", map[string]any{"enabled": false}), 404, "NOT_FOUND")
	// Disable and enable.
	expect(t, "disable", in.Admin(t, "PATCH", "/api/v1/users/alice", map[string]any{"enabled": false}), 200)
	expect(t, "disabled", in.Call(t, "alice", "alice-password-2", "GET", "/api/v1/namespaces", nil), 401, "UNAUTHORIZED")
	expect(t, "enable", in.Admin(t, "PATCH", "/api/v1/users/alice", map[string]any{"enabled": true}), 200)
	expect(t, "enabled", in.Call(t, "alice", "alice-password-2", "GET", "/api/v1/namespaces", nil), 200)

	// Access keys: the secret is shown once; keys authenticate, can be disabled and deleted.
	r = in.Admin(t, "POST", "/api/v1/users/alice/access-keys", nil)
	id, _ := r.JSON["id"].(string)
	secret, _ := r.JSON["secret"].(string)
	if r.Status != 201 || !strings.HasPrefix(id, "LTAI") || len(secret) < 20 || r.JSON["enabled"] != true || r.JSON["user"] != "alice" {
		t.Fatalf("create key: %s", r.Body)
	}
	r = in.Admin(t, "GET", "/api/v1/users/alice/access-keys", nil)
	if r.Status != 200 || r.JSON["total"] != float64(1) || r.Items()[0]["id"] != id || strings.Contains(string(r.Body), secret) ||
		strings.Contains(string(r.Body), "secret") {
		t.Fatalf("list keys: %s", r.Body)
	}
	expect(t, "key login", in.Call(t, id, secret, "GET", "/api/v1/namespaces", nil), 200)
	expect(t, "key wrong secret", in.Call(t, id, secret+"x", "GET", "/api/v1/namespaces", nil), 401)
	expect(t, "disable key", in.Admin(t, "PATCH", "/api/v1/users/alice/access-keys/"+id, map[string]any{"enabled": false}), 200)
	expect(t, "disabled key", in.Call(t, id, secret, "GET", "/api/v1/namespaces", nil), 401)
	expect(t, "patch key without enabled", in.Admin(t, "PATCH", "/api/v1/users/alice/access-keys/"+id, map[string]any{}), 400, "INVALID_ARGUMENT")
	expect(t, "patch key of another user", in.Admin(t, "PATCH", "/api/v1/users/bot/access-keys/"+id, map[string]any{"enabled": true}), 404, "NOT_FOUND")
	r = in.Admin(t, "PATCH", "/api/v1/users/alice/access-keys/"+id, map[string]any{"enabled": true})
	if r.Status != 200 || r.JSON["enabled"] != true || r.JSON["secret"] != nil {
		t.Fatalf("enable key: %s", r.Body)
	}
	expect(t, "enabled key", in.Call(t, id, secret, "GET", "/api/v1/namespaces", nil), 200)
	expect(t, "delete key", in.Admin(t, "DELETE", "/api/v1/users/alice/access-keys/"+id, nil), 204)
	expect(t, "deleted key", in.Call(t, id, secret, "GET", "/api/v1/namespaces", nil), 401)
	expect(t, "delete key again", in.Admin(t, "DELETE", "/api/v1/users/alice/access-keys/"+id, nil), 404, "NOT_FOUND")
	for i := range 5 {
		expect(t, fmt.Sprint("key ", i), in.Admin(t, "POST", "/api/v1/users/bot/access-keys", nil), 201)
	}
	expect(t, "sixth key", in.Admin(t, "POST", "/api/v1/users/bot/access-keys", nil), 409, "LIMIT_EXCEEDED")
	expect(t, "key for unknown user", in.Admin(t, "POST", "/api/v1/users/nobody/access-keys", nil), 404, "NOT_FOUND")

	// The administrator cannot be deleted or disabled, and policies do not apply to it.
	expect(t, "delete admin", in.Admin(t, "DELETE", "/api/v1/users/admin", nil), 409, "ADMIN_USER_PROTECTED")
	expect(t, "disable admin", in.Admin(t, "PATCH", "/api/v1/users/admin", map[string]any{"enabled": false}), 409, "ADMIN_USER_PROTECTED")
	expect(t, "attach to admin", in.Admin(t, "PUT", "/api/v1/users/admin/policies/AliyunContainerRegistryReadOnlyAccess", nil), 409, "ADMIN_USER_PROTECTED")
	// A user with AdministratorAccess manages users, but cannot take over the administrator.
	pass := newUser(t, in, "ops", nil, "AdministratorAccess")
	expect(t, "ops creates a user", in.Call(t, "ops", pass, "POST", "/api/v1/users", map[string]any{"name": "carol"}), 201)
	expect(t, "ops sets admin's password", in.Call(t, "ops", pass, "PATCH", "/api/v1/users/admin", map[string]any{"password": "taken-over-1"}), 403, "FORBIDDEN")
	expect(t, "ops makes an admin key", in.Call(t, "ops", pass, "POST", "/api/v1/users/admin/access-keys", nil), 403, "FORBIDDEN")
	expect(t, "ops deletes admin", in.Call(t, "ops", pass, "DELETE", "/api/v1/users/admin", nil), 409, "ADMIN_USER_PROTECTED")
	expect(t, "admin still logs in", in.Admin(t, "GET", "/api/v1/users/admin", nil), 200)
	// cr:* does not include user management.
	fa := newUser(t, in, "full", nil, "AliyunContainerRegistryFullAccess")
	expect(t, "full lists users", in.Call(t, "full", fa, "GET", "/api/v1/users", nil), 403, "FORBIDDEN")
	expect(t, "full creates policy", in.Call(t, "full", fa, "POST", "/api/v1/policies", map[string]any{"name": "p1"}), 403, "FORBIDDEN")

	// Deleting a user takes its access keys along and stops its logins at once.
	r = in.Admin(t, "POST", "/api/v1/users/alice/access-keys", nil)
	id, secret = r.JSON["id"].(string), r.JSON["secret"].(string)
	expect(t, "delete alice", in.Admin(t, "DELETE", "/api/v1/users/alice", nil), 204)
	expect(t, "deleted password", in.Call(t, "alice", "alice-password-2", "GET", "/api/v1/namespaces", nil), 401)
	expect(t, "deleted key", in.Call(t, id, secret, "GET", "/api/v1/namespaces", nil), 401)
	expect(t, "get deleted", in.Admin(t, "GET", "/api/v1/users/alice", nil), 404, "NOT_FOUND")
	expect(t, "delete again", in.Admin(t, "DELETE", "/api/v1/users/alice", nil), 404, "NOT_FOUND")
	// Re-created under the same name, the user starts from nothing.
	expect(t, "re-create", in.Admin(t, "POST", "/api/v1/users", map[string]any{"name": "alice", "password": "alice-password-3"}), 201)
	expect(t, "re-created has no policies", in.Call(t, "alice", "alice-password-3", "GET", "/api/v1/namespaces", nil), 403, "FORBIDDEN")
}

// TestFailedLoginLimit: the 11th wrong password for one user from one client within a minute is answered 429
// TOO_MANY_REQUESTS, and so is the right one from that client after it, on the REST API and the registry;
// other users are not affected until the client address has failed 30 times. (Other clients are never
// affected: TestFailedLoginsDoNotLockOutOthers.)
func TestFailedLoginLimit(t *testing.T) {
	in := apptest.Start(t, apptest.Options{})
	pass := newUser(t, in, "victim", nil, "AliyunContainerRegistryReadOnlyAccess")
	other := newUser(t, in, "bystander", nil, "AliyunContainerRegistryReadOnlyAccess")
	for i := 1; i <= 10; i++ {
		expect(t, fmt.Sprint("wrong password ", i), in.Call(t, "victim", "wrong-password", "GET", "/api/v1/namespaces", nil), 401, "UNAUTHORIZED")
	}
	r := in.Call(t, "victim", "wrong-password", "GET", "/api/v1/namespaces", nil)
	expect(t, "11th wrong password", r, 429, "TOO_MANY_REQUESTS")
	if r.Header.Get("Retry-After") == "" {
		t.Error("429 without Retry-After")
	}
	expect(t, "right password after the limit", in.Call(t, "victim", pass, "GET", "/api/v1/namespaces", nil), 429, "TOO_MANY_REQUESTS")
	req, _ := http.NewRequest("GET", in.URL+"/token?scope=repository:a/b:pull", nil)
	req.SetBasicAuth("victim", pass)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 429 {
		t.Fatalf("registry login after the limit: %d, want 429", resp.StatusCode)
	}
	expect(t, "another user", in.Call(t, "bystander", other, "GET", "/api/v1/namespaces", nil), 200)

	// 30 failures from one address block every login from it.
	for i := 1; i <= 20; i++ {
		expect(t, fmt.Sprint("unknown user ", i), in.Call(t, fmt.Sprintf("ghost-%d", i), "whatever-pass", "GET", "/api/v1/namespaces", nil), 401)
	}
	expect(t, "another user after 30 failures from the address", in.Call(t, "bystander", other, "GET", "/api/v1/namespaces", nil), 429, "TOO_MANY_REQUESTS")
}

// TestLoginTimingUnknownUserVsWrongPassword: an unknown user and a wrong password take comparable time to be
// refused (both pay one bcrypt comparison), so timing does not reveal which user names exist. The bound is
// loose on purpose; it catches a skipped hash (a difference of ~50×), not noise.
func TestLoginTimingUnknownUserVsWrongPassword(t *testing.T) {
	in := apptest.Start(t, apptest.Options{})
	newUser(t, in, "known", nil)
	measure := func(user string) time.Duration {
		start := time.Now()
		expect(t, "login "+user, in.Call(t, user, "wrong-password", "GET", "/api/v1/namespaces", nil), 401)
		return time.Since(start)
	}
	var unknown, wrong []time.Duration
	for i := range 7 { // 14 failures: under both the per-user (10) and the per-address (30) limits
		unknown = append(unknown, measure(fmt.Sprintf("nobody-%d", i)))
		wrong = append(wrong, measure("known"))
	}
	median := func(d []time.Duration) time.Duration {
		sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
		return d[len(d)/2]
	}
	mu, mw := median(unknown), median(wrong)
	t.Logf("median refusal: unknown user %v, wrong password %v", mu, mw)
	if mu < mw/3 || mw < mu/3 {
		t.Fatalf("unknown user %v vs wrong password %v: the difference reveals which users exist", mu, mw)
	}
}
