package console_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/server"
	"github.com/berth-dev/berth/server/app"
	"github.com/berth-dev/berth/server/app/apptest"
	"github.com/berth-dev/berth/server/console"
)

// TestConsoleSessionEnds: sessions end when idle too long, at their absolute expiry, and when their user is
// disabled; cookies are Secure behind an https public URL.
func TestConsoleSessionEnds(t *testing.T) {
	in := apptest.Start(t, apptest.Options{})
	if r := in.Admin(t, "POST", "/api/v1/users", map[string]any{"name": "dev", "password": "dev-password-1",
		"policies": []string{"AliyunContainerRegistryReadOnlyAccess"}}); r.Status != 201 {
		t.Fatalf("user: %d %s", r.Status, r.Body)
	}
	start := func(idle, abs time.Duration) *apptest.Instance {
		cons, err := console.New(console.Deps{API: in.Handler, Auth: in.Access, Store: in.Store,
			Authz:       server.Authorization{Region: in.Cfg.Region, AccountID: in.Instance.AccountID},
			IdleTimeout: idle, AbsoluteTimeout: abs})
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(cons)
		t.Cleanup(srv.Close)
		return &apptest.Instance{App: in.App, URL: srv.URL, Host: strings.TrimPrefix(srv.URL, "http://")}
	}
	signedIn := func(b *browser) bool {
		st, _ := b.get("/namespaces")
		return st == http.StatusOK
	}

	idle := start(time.Second, time.Hour)
	b := newBrowser(t, idle)
	if st := b.signIn("dev", "dev-password-1"); st != http.StatusSeeOther || !signedIn(b) {
		t.Fatalf("sign in: %d", st)
	}
	time.Sleep(1500 * time.Millisecond)
	if signedIn(b) {
		t.Fatal("an idle session lived on")
	}

	abs := start(time.Hour, 2*time.Second)
	b = newBrowser(t, abs)
	b.signIn("dev", "dev-password-1")
	for i := 0; i < 4; i++ { // in use, but not beyond its absolute expiry
		if !signedIn(b) {
			t.Fatalf("session ended early, after %d uses", i)
		}
		time.Sleep(300 * time.Millisecond)
	}
	time.Sleep(1500 * time.Millisecond)
	if signedIn(b) {
		t.Fatal("a session lived beyond its absolute expiry")
	}

	b = newBrowser(t, abs)
	b.signIn("dev", "dev-password-1")
	if r := in.Admin(t, "PATCH", "/api/v1/users/dev", map[string]any{"enabled": false}); r.Status != 200 {
		t.Fatalf("disable: %d %s", r.Status, r.Body)
	}
	if signedIn(b) {
		t.Fatal("a disabled user's session lived on")
	}
	if r := in.Admin(t, "PATCH", "/api/v1/users/dev", map[string]any{"enabled": true}); r.Status != 200 {
		t.Fatalf("enable: %d %s", r.Status, r.Body)
	}
	if signedIn(b) {
		t.Fatal("re-enabling the user brought its old session back")
	}
}

func TestConsoleSecureCookies(t *testing.T) {
	in := apptest.Start(t, apptest.Options{Configure: func(c *app.Config) { c.PublicURL = "https://registry.example.com" }})
	b := newBrowser(t, in)
	b.get("/login")
	_, h, _ := b.do("POST", "/login", map[string][]string{"username": {"admin"}, "password": {apptest.AdminPassword},
		"csrf": {b.csrf}}, map[string]string{"Origin": "https://registry.example.com"})
	ck := strings.Join(h.Values("Set-Cookie"), "\n")
	if !strings.Contains(ck, "__Host-berth_session=") || !strings.Contains(ck, "Secure") || !strings.Contains(ck, "HttpOnly") ||
		!strings.Contains(ck, "SameSite=Lax") {
		t.Fatalf("cookies: %s", ck)
	}
}
