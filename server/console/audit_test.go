package console_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/server/app/apptest"
)

// TestConsoleAuditLog: console sign-ins (failed and not), a change made through a form and a sign-out are in
// the audit log; the administrator's page lists them with the API's filters, and the nav links it only for
// those who may read it.
func TestConsoleAuditLog(t *testing.T) {
	in := apptest.Start(t, apptest.Options{})
	in.Admin(t, "POST", "/api/v1/users", map[string]any{"name": "dev", "password": "dev-password-1"})
	b := newBrowser(t, in)
	if st := b.signIn("admin", "wrong-password"); st != http.StatusUnauthorized {
		t.Fatalf("wrong password: %d", st)
	}
	if st := b.signIn("admin", apptest.AdminPassword); st != http.StatusSeeOther {
		t.Fatalf("sign in: %d", st)
	}
	if st, _, body := b.post("/namespaces", url.Values{"name": {"team"}, "default_visibility": {"PRIVATE"}}); st != http.StatusSeeOther {
		t.Fatalf("create namespace: %d %s", st, body)
	}
	// A form from another origin is refused before it reaches the API: still an entry.
	if st, _, _ := b.do("POST", "/namespaces", url.Values{"name": {"evil"}, "csrf": {b.csrf}},
		map[string]string{"Origin": "http://evil.example"}); st != http.StatusForbidden {
		t.Fatalf("cross-origin form: %d", st)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := in.Audit.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	r := in.Admin(t, "GET", "/api/v1/audit-logs?action=console:SubmitForm", nil)
	if items := r.Items(); len(items) != 1 || items[0]["user"] != "admin" || items[0]["status"] != float64(403) {
		t.Fatalf("refused form entry: %s", r.Body)
	}
	st, body := b.get("/audit-logs?user=admin")
	if st != 200 || !strings.Contains(body, `href="/audit-logs"`) {
		t.Fatalf("audit page: %d %s", st, body)
	}
	rows := strings.Count(body, "<tr><td>")
	for _, want := range []string{"<code>cr:CreateNamespace</code>", "<td>201</td>", "<code>ram:Login</code>", "<td>303</td>", "<td>401</td>"} {
		if !strings.Contains(body, want) {
			t.Errorf("the audit page lacks %s:\n%s", want, body)
		}
	}
	if rows != 5 {
		t.Errorf("%d rows for user=admin, want 5 (create user, failed sign-in, sign-in, create namespace, refused form)", rows)
	}
	if _, body := b.get("/audit-logs?action=cr:CreateNamespace"); strings.Count(body, "<tr><td>") != 1 {
		t.Errorf("action filter: %s", body)
	}
	if st, body := b.get("/audit-logs?since=yesterday"); st != http.StatusBadRequest || !strings.Contains(body, "RFC 3339") {
		t.Errorf("bad since: %d %s", st, body)
	}
	if st, _, _ := b.post("/logout", nil); st != http.StatusSeeOther {
		t.Fatalf("sign out: %d", st)
	}

	// A user without cr:ListAuditLogs has no link and no page.
	d := newBrowser(t, in)
	if st := d.signIn("dev", "dev-password-1"); st != http.StatusSeeOther {
		t.Fatalf("dev signs in: %d", st)
	}
	if _, body := d.get("/namespaces"); strings.Contains(body, `href="/audit-logs"`) {
		t.Errorf("dev sees the audit log link")
	}
	if st, _ := d.get("/audit-logs"); st != http.StatusForbidden {
		t.Errorf("dev opens the audit log: %d", st)
	}
	if err := in.Audit.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	r = in.Admin(t, "GET", "/api/v1/audit-logs?action=ram:Logout", nil)
	if items := r.Items(); len(items) != 1 || items[0]["user"] != "admin" || items[0]["status"] != float64(303) {
		t.Fatalf("sign-out entry: %s", r.Body)
	}
}
