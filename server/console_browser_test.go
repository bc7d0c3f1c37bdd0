package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/berth-dev/berth/server/app"
	"github.com/berth-dev/berth/server/app/apptest"
)

// xss is put into every attacker-controlled text the console shows. Were any of it interpreted as markup, the
// page would hold an <img onerror> or a second <script>, and (CSP aside) window.__xss and the title would change.
const xss = `<script>window.__xss=1;document.title='pwned'</script><img src=x onerror="window.__xss=2;document.title='pwned'">`

// chrome drives one headless Chromium (Debian's chromium) for a test.
type chrome struct {
	t   *testing.T
	ctx context.Context
	url string // Berth's
}

func newChrome(t *testing.T, baseURL string) *chrome {
	t.Helper()
	bin, err := exec.LookPath("chromium")
	need(t, "chromium (apt-get install chromium; scripts/install-test-deps.sh)", err)
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(bin), chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1280, 900),
		chromedp.Flag("headless", true), chromedp.Flag("no-sandbox", true), chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true), chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("disable-dev-shm-usage", true),
	}
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelC := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelC(); cancelA() })
	c := &chrome{t: t, ctx: ctx, url: baseURL}
	// The first run starts the browser, under the context of the whole test (a timeout here would stop it).
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, 900)); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return c
}

func (c *chrome) fatal(err error) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(c.ctx, 5*time.Second)
	defer cancel()
	loc, _ := chromedp.Run(ctx, chromedp.Location())
	body, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
	c.t.Fatalf("chromium: %v\nat %s:\n%s", err, loc, body)
}

func (c *chrome) do(actions ...chromedp.Action[chromedp.Void]) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(c.ctx, 45*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		c.fatal(err)
	}
}

// eval runs JavaScript and decodes its value into out (nil: ignored); promises are awaited.
func (c *chrome) eval(js string, out any) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(c.ctx, 45*time.Second)
	defer cancel()
	raw, err := chromedp.Run(ctx, chromedp.Evaluate[[]byte](js, chromedp.EvalAwaitPromise))
	if err != nil {
		c.fatal(err)
	}
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			c.t.Fatalf("decode %s: %v", raw, err)
		}
	}
}

// open loads a console page and checks the XSS canaries.
func (c *chrome) open(path string) {
	c.t.Helper()
	c.do(chromedp.Navigate(c.url + path))
	c.noXSS()
}

// submit fills a form's fields (selector → value) and submits it, then waits for the next page.
func (c *chrome) submit(form string, fields map[string]string) {
	c.t.Helper()
	js := "window.__page = 1; var f = document.querySelector(" + quoteJS(form) + "); if (!f) throw new Error('no form ' + " + quoteJS(form) + ");\n"
	for sel, v := range fields {
		js += "f.querySelector(" + quoteJS(sel) + ").value = " + quoteJS(v) + ";\n"
	}
	js += "f.requestSubmit(); true"
	c.eval(js, nil)
	c.waitJS(`window.__page === undefined && document.readyState === "complete"`, 20*time.Second)
	c.noXSS()
}

// click clicks a link and waits for the next page.
func (c *chrome) click(sel string) {
	c.t.Helper()
	c.eval("window.__page = 1; document.querySelector("+quoteJS(sel)+").click(); true", nil)
	c.waitJS(`window.__page === undefined && document.readyState === "complete"`, 20*time.Second)
	c.noXSS()
}

func quoteJS(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// waitJS polls a JavaScript condition.
func (c *chrome) waitJS(cond string, timeout time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(c.ctx, 5*time.Second)
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`!!(`+cond+`)`))
		cancel()
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("waited %v for %s (%v); page:\n%s", timeout, cond, err, c.text("body"))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (c *chrome) text(sel string) string {
	c.t.Helper()
	var s string
	c.eval(`(function(){var e=document.querySelector(`+quoteJS(sel)+`);return e?e.innerText:""})()`, &s)
	return s
}

func (c *chrome) location() string {
	c.t.Helper()
	var s string
	c.eval(`location.href`, &s)
	return s
}

func (c *chrome) has(sel string) bool {
	c.t.Helper()
	var ok bool
	c.eval(`!!document.querySelector(`+quoteJS(sel)+`)`, &ok)
	return ok
}

// noXSS fails when anything injected ran or became markup.
func (c *chrome) noXSS() {
	c.t.Helper()
	var res struct {
		XSS     any    `json:"xss"`
		Title   string `json:"title"`
		Imgs    int    `json:"imgs"`
		Scripts int    `json:"scripts"`
	}
	c.eval(`({xss: window.__xss === undefined ? null : window.__xss, title: document.title,
		imgs: document.querySelectorAll("img").length, scripts: document.scripts.length})`, &res)
	if res.XSS != nil || strings.Contains(res.Title, "pwned") || res.Imgs != 0 || res.Scripts > 1 {
		c.t.Fatalf("injected markup on the page: %+v\n%s", res, c.text("body"))
	}
}

func (c *chrome) screenshot(path string) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(c.ctx, 20*time.Second)
	defer cancel()
	buf, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		c.fatal(err)
	}
	if err := os.WriteFile(path, buf, 0o644); err != nil {
		c.t.Fatal(err)
	}
}

// TestConsoleInBrowser drives the web console in headless Chromium against a whole Berth (buildkitd, the scanner
// and a Git repository served by git http-backend): the core flow from sign-in to a built, scanned version and
// a trigger's record; a read-only user; injected markup everywhere it can be shown; a cross-site form. It writes
// docs/console-versions.png, docs/console-version.png and docs/console-build.png.
func TestConsoleInBrowser(t *testing.T) {
	bk := buildkitAddr(t)
	scanner := scannerBin(t)
	db := scanDB(t)
	c0 := time.Now()
	in := apptest.Start(t, apptest.Options{Configure: func(c *app.Config) {
		c.BuildkitAddr = bk
		c.ScanDBDir = db
		c.ScannerBin = scanner
		c.TriggerAllow = []string{"127.0.0.0/8"}
	}})
	allowBuilds(t, in.Host)
	if r := in.Admin(t, "POST", "/api/v1/namespaces", map[string]any{"name": "library", "default_visibility": "PUBLIC"}); r.Status != 201 {
		t.Fatalf("namespace: %s", r.Body)
	}
	base := pushBusybox(t, in)
	rootfs := map[string]string{"Dockerfile": "FROM " + base + "\nCOPY rootfs/ /\n" +
		"RUN echo 'log: " + strings.ReplaceAll(xss, "'", "") + "' && sleep 3 && echo build-step-done\n"}
	for p, v := range alpineFiles("1.2.5-r8") {
		rootfs["rootfs/"+p] = v
	}
	g := newGitRepo(t)
	g.commit(t, rootfs, "first: "+xss)
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprint(w, "deployed "+xss)
	}))
	t.Cleanup(receiver.Close)
	docs := filepath.Join(sourceRoot(t), "docs")

	c := newChrome(t, in.URL)
	c.open("/")
	c.submit(`form[action="/login"]`, map[string]string{"#username": "admin", "#password": apptest.AdminPassword})
	if h := c.text("h1"); h != "Namespaces" {
		t.Fatalf("after sign-in: %q: %s", h, c.text("main"))
	}

	// Namespaces until the 4th (library is the 1st) is refused, with the limit message on the page.
	for _, ns := range []string{"team", "other"} {
		c.open("/namespaces")
		c.submit(`form[action="/namespaces"]`, map[string]string{"#ns-name": ns})
		if h := c.text("h1"); h != ns {
			t.Fatalf("after creating %s: %q", ns, h)
		}
	}
	c.open("/namespaces")
	c.submit(`form[action="/namespaces"]`, map[string]string{"#ns-name": "fourth"})
	if msg := c.text(".alert.error"); !strings.Contains(msg, "NAMESPACE_LIMIT_EXCEEDED") || !strings.Contains(msg, "3 namespaces, the limit") {
		t.Fatalf("4th namespace: %q", msg)
	}

	// A PRIVATE repository with a description holding markup.
	c.open("/namespaces/team")
	c.submit(`form[action="/namespaces/team/repositories"]`, map[string]string{"#repo-name": "app", "#repo-vis": "PRIVATE",
		"#repo-summary": "The app", "#repo-desc": "# App\n\nRuns **fast**. " + xss})
	if s := c.text(".steps [aria-current]"); s != "Code source" {
		t.Fatalf("after step 1: %q", s)
	}
	c.click("#skip")
	if d := c.text(".markdown"); !strings.Contains(d, "<script>window.__xss=1") || !strings.Contains(d, "fast") {
		t.Fatalf("description: %q", d)
	}
	if r := in.Admin(t, "GET", "/api/v1/repositories/team/app", nil); r.JSON["visibility"] != "PRIVATE" {
		t.Fatalf("repository: %s", r.Body)
	}

	// The Git repository, with the webhook secret shown once, and a branch rule.
	c.open("/repositories/team/app/build")
	c.submit(`form[action="/repositories/team/app/source"]`, map[string]string{"#provider": "github", "#src-url": g.URL})
	if s := c.text(".panel.secret"); !strings.Contains(s, in.URL+"/hooks/") || !strings.Contains(s, "shown only now") {
		t.Fatalf("webhook panel: %q", s)
	}
	c.submit(`form[action="/repositories/team/app/build-rules"]`, map[string]string{"#rule-type": "BRANCH", "#rule-ref": "main", "#rule-tag": "latest"})

	// Build now: log lines appear while the build runs, and the status reaches SUCCESS without a reload.
	c.submit(`form[action$="/build"]`, nil)
	c.eval(`window.__samePage = 1; true`, nil)
	deadline := time.Now().Add(buildTimeout)
	sawLive := false
	for {
		var st struct {
			Status string `json:"status"`
			Log    string `json:"log"`
		}
		c.eval(`({status: document.getElementById("build-status").textContent, log: document.getElementById("build-log").textContent})`, &st)
		if !finalStatus[st.Status] && strings.Contains(st.Log, "log: <script>window.__xss=1") && !sawLive {
			sawLive = true
			c.eval(`document.querySelector("#build h2").scrollIntoView(); var l = document.getElementById("build-log"); l.scrollTop = l.scrollHeight; true`, nil)
			c.screenshot(filepath.Join(docs, "console-build.png"))
		}
		if finalStatus[st.Status] {
			if st.Status != "SUCCESS" {
				t.Fatalf("build ended %s:\n%s", st.Status, st.Log)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("build still %s; log:\n%s", st.Status, st.Log)
		}
		time.Sleep(150 * time.Millisecond)
	}
	if !sawLive {
		t.Fatal("no log line was shown while the build ran")
	}
	c.waitJS(`document.getElementById("build-log").textContent.includes("build-step-done")`, 10*time.Second)
	if l := c.text("#build-log"); !strings.Contains(l, ": first: <script>window.__xss=1") {
		t.Fatalf("the commit message is not in the log as text:\n%s", l)
	}
	c.noXSS()
	var same bool
	c.eval(`window.__samePage === 1`, &same)
	if !same {
		t.Fatal("the build page reloaded")
	}

	// The version: digest, layers with their Dockerfile steps, and the scan.
	tagAPI := in.Admin(t, "GET", "/api/v1/repositories/team/app/tags/latest", nil)
	c.click("#build-version")
	if p := c.text("h2"); !strings.HasPrefix(p, "Version latest") {
		t.Fatalf("version page: %q", p)
	}
	if d := c.text("code.digest"); d != tagAPI.JSON["digest"] {
		t.Fatalf("digest on the page %q, API %v", d, tagAPI.JSON["digest"])
	}
	if l := c.text("table.layers"); !strings.Contains(l, "COPY rootfs/ /") || !strings.Contains(l, "sleep 3") {
		t.Fatalf("layers: %q", l)
	}
	if s := c.text("table.vulns"); !strings.Contains(s, "CVE-2025-26519") || !strings.Contains(s, "1.2.5-r9") {
		t.Fatalf("scan: %q", s)
	}
	// Signed by the instance key, its provenance (the commit built) and the SBOM the scanner made (SPEC §15).
	prov, _ := tagAPI.JSON["provenance"].(map[string]any)
	commit, _ := prov["commit"].(string)
	if f := c.text("dl.facts"); !strings.Contains(f, "SIGNED by the instance key") {
		t.Fatalf("signature on the version page: %q", f)
	}
	gitURL, _ := prov["git_url"].(string)
	if p := c.text("dl.provenance"); len(commit) != 40 || !strings.Contains(p, commit) || !strings.Contains(p, "Dockerfile") ||
		!strings.HasPrefix(gitURL, "http://127.0.0.1:") || !strings.Contains(p, gitURL) {
		t.Fatalf("provenance on the version page: %q (API: %v)", p, prov)
	}
	if a := c.text("table.accessories"); !strings.Contains(a, "signature") || !strings.Contains(a, "https://cyclonedx.org/bom") {
		t.Fatalf("accessories on the version page: %q", a)
	}
	var sbomLink bool
	c.eval(`document.querySelector('a[href$="/tags/latest/sbom"]') !== null`, &sbomLink)
	if !sbomLink {
		t.Fatal("no SBOM download on the version page")
	}
	c.eval(`document.getElementById("supply-chain").scrollIntoView(); true`, nil)
	c.screenshot(filepath.Join(docs, "console-version.png"))
	c.open("/repositories/team/app/tags")
	if v := c.text("table.versions"); !strings.Contains(v, "latest") || !strings.Contains(v, "DONE") {
		t.Fatalf("versions: %q", v)
	}
	c.screenshot(filepath.Join(docs, "console-versions.png"))
	// The version row's Scan opens its scan; the build row's Log opens its log.
	c.click(`table.versions a[href$="/tags/latest#scan"]`)
	if s := c.text("table.vulns"); !strings.Contains(s, "CVE-2025-26519") || !strings.HasSuffix(c.location(), "/tags/latest#scan") {
		t.Fatalf("Scan from the versions list: %q", s)
	}
	c.open("/repositories/team/app/builds")
	c.click(`table.builds a[href$="#log-h"]`)
	c.waitJS(`document.getElementById("build-log").textContent.includes("build-step-done")`, 10*time.Second)

	// A trigger; after a second build its record is TRIGGERED, the receiver's answer shown as text.
	c.open("/repositories/team/app/triggers")
	c.submit(`form[action="/repositories/team/app/triggers"]`, map[string]string{"#tr-name": "deploy", "#tr-url": receiver.URL + "/hook"})
	if s := c.text(".panel.secret"); !strings.Contains(s, "shown only now") {
		t.Fatalf("trigger secret: %q", s)
	}
	g.commit(t, map[string]string{"rootfs/etc/motd": "second\n"}, "second: "+xss)
	c.open("/repositories/team/app/build")
	c.submit(`form[action$="/build"]`, nil)
	c.waitJS(`document.getElementById("build-status").textContent === "SUCCESS"`, buildTimeout)
	c.open("/repositories/team/app/triggers")
	c.click(`table a[href*="/triggers/"]`)
	deadline = time.Now().Add(30 * time.Second)
	for !strings.Contains(c.text("table.records"), "TRIGGERED") {
		if time.Now().After(deadline) {
			t.Fatalf("no TRIGGERED record:\n%s", c.text("main"))
		}
		time.Sleep(300 * time.Millisecond)
		c.do(chromedp.Reload())
	}
	c.eval(`document.querySelectorAll("details").forEach(function(d){d.open=true}); true`, nil)
	if r := c.text("table.records"); !strings.Contains(r, "deployed <script>window.__xss=1") || !strings.Contains(r, "200") {
		t.Fatalf("record: %q", r)
	}
	c.noXSS()

	// Policies: markup in a name comes back in the error message as text; an invalid document is explained in
	// place; a read-only policy for one namespace.
	c.open("/policies")
	c.submit(`form[action="/policies"]`, map[string]string{"#p-name": xss, "#p-desc": xss})
	if e := c.text(".alert.error"); !strings.Contains(e, "<script>") {
		t.Fatalf("policy name error: %q", e)
	}
	c.submit(`form[action="/policies"]`, map[string]string{"#p-name": "team-read", "#p-desc": "Read team " + xss,
		"#p-doc": `{"Version":"1","Statement":[{"Effect":"Maybe","Action":"cr:Get*","Resource":"*"}]}`})
	if e := c.text("#doc-error"); !strings.Contains(e, "Effect") {
		t.Fatalf("INVALID_POLICY in place: %q (%s)", e, c.text(".alert.error"))
	}
	c.submit(`form[action="/policies"]`, map[string]string{"#p-name": "team-read", "#p-desc": "Read team " + xss,
		"#p-doc": `{"Version":"1","Statement":[{"Effect":"Allow","Action":["cr:Get*","cr:List*"],"Resource":["acs:cr:*:*:repository/team","acs:cr:*:*:repository/team/*"]},` +
			`{"Effect":"Allow","Action":["cr:ListNamespace","cr:ListRepository"],"Resource":"*"}]}`})
	if h := c.text("h1"); h != "team-read" {
		t.Fatalf("policy page: %q %s", h, c.text(".alert.error"))
	}
	c.open("/policies")
	if !strings.Contains(c.text("table"), "Read team <script>") {
		t.Fatalf("policies list: %q", c.text("table"))
	}
	c.open("/users")
	c.submit(`form[action="/users"]`, map[string]string{"#u-name": "viewer", "#u-pw": "viewer-password-1"})
	c.submit(`form[action="/users/viewer/policies"]`, map[string]string{"#attach": "team-read"})
	if !strings.Contains(c.text("main"), "team-read") {
		t.Fatalf("attach: %s", c.text("main"))
	}

	// The read-only user: other namespaces absent, no write action offered, a forged POST refused.
	c.submit(`form[action="/logout"]`, nil)
	c.submit(`form[action="/login"]`, map[string]string{"#username": "viewer", "#password": "viewer-password-1"})
	// It lists namespaces (cr:ListNamespace on *): every name shows, a link only to team's page.
	var links []string
	c.eval(`Array.from(document.querySelectorAll("main table a")).map(function(a){return a.getAttribute("href")})`, &links)
	if l := c.text("table"); !strings.Contains(l, "team") || !strings.Contains(l, "other") || strings.Join(links, " ") != "/namespaces/team" {
		t.Fatalf("viewer's namespaces: %q, links %v", l, links)
	}
	if c.has(`form[action="/namespaces"]`) {
		t.Fatal("viewer is offered to create a namespace")
	}
	for _, p := range []string{"/namespaces/team", "/repositories", "/repositories/team/app", "/repositories/team/app/build", "/repositories/team/app/connect",
		"/repositories/team/app/tags/latest", "/repositories/team/app/triggers"} {
		c.open(p)
		var forms []string
		c.eval(`Array.from(document.querySelectorAll("main form[method=post]")).map(function(f){return f.getAttribute("action")})`, &forms)
		if len(forms) != 0 {
			t.Fatalf("%s offers the viewer %v", p, forms)
		}
	}
	var forged struct {
		Status int    `json:"status"`
		Body   string `json:"body"`
	}
	c.open("/namespaces/team")
	c.eval(`(async function(){
		var tok = document.querySelector('input[name=csrf]').value;
		var r = await fetch('/namespaces/team/repositories', {method: 'POST', body: new URLSearchParams({csrf: tok, name: 'forged', visibility: 'PUBLIC'})});
		return {status: r.status, body: await r.text()};
	})()`, &forged)
	if forged.Status != http.StatusForbidden || !strings.Contains(forged.Body, "cr:CreateRepository") {
		t.Fatalf("forged POST: %d\n%s", forged.Status, forged.Body)
	}
	if r := in.Admin(t, "GET", "/api/v1/repositories/team/forged", nil); r.Status != 404 {
		t.Fatalf("the forged POST made a repository: %d", r.Status)
	}

	// A form on another origin (same site: 127.0.0.1, another port) posting with the viewer's cookie is refused.
	var token string
	c.eval(`document.querySelector('input[name=csrf]').value`, &token)
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!doctype html><form id=f method=post action="%s/namespaces/team/repositories"><input name=csrf value="%s"><input name=name value=csrf-made></form><script>document.getElementById('f').submit()</script>`, in.URL, token)
	}))
	defer evil.Close()
	c.do(chromedp.Navigate(evil.URL))
	c.waitJS(`location.href.startsWith(`+quoteJS(in.URL)+`) && document.readyState === "complete"`, 10*time.Second)
	if b := c.text("main"); !strings.Contains(b, "did not come from a page of this console") {
		t.Fatalf("cross-site form: %s", b)
	}
	if r := in.Admin(t, "GET", "/api/v1/repositories/team/csrf-made", nil); r.Status != 404 {
		t.Fatalf("the cross-site form made a repository: %d", r.Status)
	}
	// At phone width the pages fit the screen (wide tables scroll inside their own box).
	c.do(chromedp.EmulateViewport(390, 844))
	for _, p := range []string{"/namespaces", "/namespaces/team", "/repositories", "/repositories/team/app", "/repositories/team/app/tags",
		"/repositories/team/app/tags/latest", "/repositories/team/app/builds", "/repositories/team/app/build", "/repositories/team/app/connect"} {
		c.open(p)
		var width int
		c.eval(`document.documentElement.scrollWidth`, &width)
		if width > 390 {
			t.Errorf("%s is %d px wide at phone width (390 px)", p, width)
		}
	}
	t.Logf("console browser test: %v", time.Since(c0).Round(time.Millisecond))
}
