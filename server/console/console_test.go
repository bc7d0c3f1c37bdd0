package console_test

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/berth-dev/berth/server/app/apptest"
)

// browser is a cookie-keeping HTTP client that signs in and posts forms the way a browser does.
type browser struct {
	t    testing.TB
	in   *apptest.Instance
	c    *http.Client
	csrf string
}

func newBrowser(t testing.TB, in *apptest.Instance) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, in: in, c: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}}
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func (b *browser) do(method, path string, form url.Values, hdr map[string]string) (int, http.Header, string) {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, b.in.URL+path, body)
	if err != nil {
		b.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", b.in.URL)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if m := csrfRE.FindSubmatch(data); m != nil {
		b.csrf = string(m[1])
	}
	return resp.StatusCode, resp.Header, string(data)
}

func (b *browser) get(path string) (int, string) {
	b.t.Helper()
	st, _, body := b.do("GET", path, nil, nil)
	return st, body
}

// post sends a form with the page's CSRF token.
func (b *browser) post(path string, form url.Values) (int, http.Header, string) {
	b.t.Helper()
	if form == nil {
		form = url.Values{}
	}
	if form.Get("csrf") == "" {
		form.Set("csrf", b.csrf)
	}
	return b.do("POST", path, form, nil)
}

func (b *browser) signIn(user, pass string) int {
	b.t.Helper()
	if st, _ := b.get("/login"); st != 200 {
		b.t.Fatalf("login page: %d", st)
	}
	st, h, _ := b.post("/login", url.Values{"username": {user}, "password": {pass}, "next": {"/namespaces"}})
	if st == http.StatusSeeOther {
		if loc := h.Get("Location"); loc != "/namespaces" {
			b.t.Fatalf("sign-in went to %q", loc)
		}
		b.get("/namespaces") // the session's CSRF token
	}
	return st
}

func TestConsoleSessionsAndCSRF(t *testing.T) {
	in := apptest.Start(t, apptest.Options{})
	b := newBrowser(t, in)

	// Signed out: pages send to the sign-in page; the console's headers are on every answer.
	st, h, _ := b.do("GET", "/namespaces", nil, nil)
	if st != http.StatusSeeOther || !strings.HasPrefix(h.Get("Location"), "/login?next=") {
		t.Fatalf("signed out: %d %v", st, h)
	}
	csp := h.Get("Content-Security-Policy")
	if !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") || strings.Contains(csp, "unsafe-inline") {
		t.Fatalf("CSP: %q", csp)
	}
	// The API keeps its JSON answers.
	if r := in.Call(t, "", "", "GET", "/api/v1/nothing", nil); r.Status != 404 || r.Code() != "NOT_FOUND" {
		t.Fatalf("API 404: %d %s", r.Status, r.Body)
	}

	if st := b.signIn("admin", "wrong-password"); st != http.StatusUnauthorized {
		t.Fatalf("wrong password: %d", st)
	}
	if st := b.signIn("admin", apptest.AdminPassword); st != http.StatusSeeOther {
		t.Fatalf("sign in: %d", st)
	}
	var cookie *http.Cookie
	u, _ := url.Parse(in.URL)
	for _, c := range b.c.Jar.Cookies(u) {
		if c.Name == "berth_session" {
			cookie = c
		}
	}
	if cookie == nil {
		t.Fatal("no session cookie")
	}

	// A form from another origin, with the session cookie and even the right token, changes nothing.
	st, _, body := b.do("POST", "/namespaces", url.Values{"name": {"evil"}, "csrf": {b.csrf}},
		map[string]string{"Origin": "http://evil.example"})
	if st != http.StatusForbidden || !strings.Contains(body, "did not come from a page of this console") {
		t.Fatalf("cross-origin POST: %d\n%s", st, body)
	}
	st, _, _ = b.do("POST", "/namespaces", url.Values{"name": {"evil"}, "csrf": {b.csrf}},
		map[string]string{"Origin": in.URL, "Sec-Fetch-Site": "same-site"})
	if st != http.StatusForbidden {
		t.Fatalf("same-site POST: %d", st)
	}
	st, _, _ = b.do("POST", "/namespaces", url.Values{"name": {"evil"}, "csrf": {"forged"}}, nil)
	if st != http.StatusForbidden {
		t.Fatalf("POST with a wrong token: %d", st)
	}
	if r := in.Admin(t, "GET", "/api/v1/namespaces/evil", nil); r.Status != 404 {
		t.Fatalf("a refused POST made the namespace: %d", r.Status)
	}

	// The namespace limit's message is shown on the page.
	for i, ns := range []string{"one", "two", "three"} {
		if st, h, body := b.post("/namespaces", url.Values{"name": {ns}, "default_visibility": {"PRIVATE"}}); st != http.StatusSeeOther {
			t.Fatalf("create namespace %d: %d %v\n%s", i, st, h, body)
		}
	}
	st, _, body = b.post("/namespaces", url.Values{"name": {"four"}, "default_visibility": {"PRIVATE"}})
	if st != http.StatusConflict || !strings.Contains(body, "NAMESPACE_LIMIT_EXCEEDED") || !strings.Contains(body, "the limit") {
		t.Fatalf("4th namespace: %d\n%s", st, body)
	}

	// A repository; its description is rendered as safe Markdown.
	st, h, body = b.post("/namespaces/one/repositories", url.Values{"name": {"web"}, "visibility": {"PRIVATE"},
		"summary": {"<b>sum</b>"}, "description": {"# Title\n\n**bold** <script>alert(1)</script> [x](javascript:alert(1))"}})
	if st != http.StatusSeeOther || h.Get("Location") != "/repositories/one/web/connect" {
		t.Fatalf("create repository: %d %v\n%s", st, h, body)
	}
	st, body = b.get("/repositories/one/web")
	if st != 200 || !strings.Contains(body, "<strong>bold</strong>") || strings.Contains(body, "<script>alert") ||
		!strings.Contains(body, "&lt;script&gt;alert(1)&lt;/script&gt;") || strings.Contains(body, `href="javascript`) ||
		!strings.Contains(body, "&lt;b&gt;sum&lt;/b&gt;") || !strings.Contains(body, "docker pull "+in.Host+"/one/web:latest") {
		t.Fatalf("repository page: %d\n%s", st, body)
	}

	// Every page renders.
	for _, p := range []string{"/namespaces", "/repositories", "/repositories?namespace=one&q=we", "/namespaces/one", "/namespaces/one?q=we", "/namespaces/one/settings",
		"/repositories/one/web/tags", "/repositories/one/web/build", "/repositories/one/web/builds",
		"/repositories/one/web/triggers", "/repositories/one/web/security", "/users", "/users/admin", "/policies",
		"/policies/AliyunContainerRegistryReadOnlyAccess", "/credentials"} {
		if st, body := b.get(p); st != 200 {
			t.Errorf("%s: %d\n%s", p, st, body)
		}
	}
	if st, _ := b.get("/no/such/page"); st != 404 {
		t.Errorf("unknown page: %d", st)
	}

	// A changed password ends the session.
	if r := in.Admin(t, "PATCH", "/api/v1/users/admin", map[string]any{"password": "another-password-1"}); r.Status != 200 {
		t.Fatalf("change password: %d %s", r.Status, r.Body)
	}
	if st, _ := b.get("/namespaces"); st != http.StatusSeeOther {
		t.Fatalf("session after a password change: %d", st)
	}
}

// TestLoginRedirectStaysOnSite: whatever next a sign-in link carries, the redirect after signing in leaves the
// browser on this site, read as browsers read a Location (tabs and newlines dropped, backslashes as slashes).
func TestLoginRedirectStaysOnSite(t *testing.T) {
	in := apptest.Start(t, apptest.Options{})
	base, _ := url.Parse(in.URL + "/login")
	for _, next := range []string{
		"/\t/evil.example", "/\n/evil.example", "/\r\n/evil.example", "\t//evil.example", "/\\evil.example",
		"\\\\evil.example", "/\\/evil.example", "//evil.example", "///evil.example", "/%2F/evil.example",
		"/%2f/evil.example", "/%5Cevil.example", "/%5C%5Cevil.example", "%2F%2Fevil.example", "/%252F/evil.example",
		"/%09/evil.example", "/ /evil.example", " //evil.example", "javascript:alert(1)", "JaVaScRiPt:alert(1)",
		"http://evil.example", "https://evil.example/", "http:/evil.example", "//evil.example/%2e%2e", "/@evil.example",
		"/.//evil.example", "/../evil.example", "/..//evil.example", "evil.example", "/\u3000/evil.example",
		"/\x00/evil.example", "", "/namespaces", "/namespaces/one?q=a%20b",
	} {
		t.Run(strings.ToValidUTF8(strconv.Quote(next), "?"), func(t *testing.T) {
			b := newBrowser(t, in)
			if st, _ := b.get("/login?next=" + url.QueryEscape(next)); st != 200 {
				t.Fatalf("login page: %d", st)
			}
			st, h, body := b.post("/login", url.Values{"username": {"admin"}, "password": {apptest.AdminPassword}, "next": {next}})
			if st != http.StatusSeeOther {
				t.Fatalf("sign in: %d\n%s", st, body)
			}
			loc := h.Get("Location")
			asRead := strings.NewReplacer("\t", "", "\n", "", "\r", "", "\\", "/").Replace(loc)
			u, err := url.Parse(asRead)
			if err != nil {
				t.Fatalf("Location %q: %v", loc, err)
			}
			if to := base.ResolveReference(u); to.Scheme != "http" || to.Host != in.Host {
				t.Fatalf("next %q: Location %q takes the browser to %s", next, loc, to)
			}
			if (next == "/namespaces" || next == "/namespaces/one?q=a%20b") && loc != next {
				t.Fatalf("next %q: Location %q, want it unchanged", next, loc)
			}
		})
	}
}
