package server_test

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/berth-dev/berth/policies/signature"
	"github.com/berth-dev/berth/server/app"
	"github.com/berth-dev/berth/server/app/apptest"
	"github.com/berth-dev/berth/workers/scandb"
)

// sourceRoot is the repository root (the test runs in server/).
func sourceRoot(t testing.TB) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// scannerBin is <repo>/bin/berth-scanner, which `task test` builds before the tests. Without it the scan
// tests skip, except in CI, where they fail.
func scannerBin(t testing.TB) string {
	t.Helper()
	p := filepath.Join(sourceRoot(t), "bin", "berth-scanner")
	if _, err := os.Stat(p); err != nil {
		msg := fmt.Sprintf("%s is missing: build it with `task build-scanner` (cd workers/scanner && GOEXPERIMENT=jsonv2 go build -o ../../bin/berth-scanner ./cmd/berth-scanner)", p)
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return p
}

// scanDB builds a vulnerability DB from real public advisories (workers/scandb/testdata/advisories.json):
// CVE-2025-26519 in Alpine 3.22's musl, fixed in 1.2.5-r9, and CVE-2021-23337 in lodash < 4.17.21, both HIGH.
func scanDB(t testing.TB) string {
	t.Helper()
	f, err := os.Open(filepath.Join(sourceRoot(t), "workers", "scandb", "testdata", "advisories.json"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	adv, err := scandb.LoadAdvisories(f)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := scandb.Build(context.Background(), adv, dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

// scanInstance is a Berth whose scanner child is bin/berth-scanner over dbDir; loopback trigger receivers allowed.
func scanInstance(t *testing.T, dbDir string, configure func(*app.Config)) *apptest.Instance {
	bin := scannerBin(t)
	in := apptest.Start(t, apptest.Options{Configure: func(c *app.Config) {
		c.ScanDBDir = dbDir
		c.ScannerBin = bin
		c.TriggerAllow = []string{"127.0.0.0/8"}
		if configure != nil {
			configure(c)
		}
	}})
	if r := in.Admin(t, "POST", "/api/v1/namespaces", map[string]any{"name": "demo", "auto_create_repo": true}); r.Status != 201 {
		t.Fatalf("namespace: %d %s", r.Status, r.Body)
	}
	return in
}

// alpineFiles is a minimal Alpine 3.22.0 root with musl installed at version musl.
func alpineFiles(musl string) map[string]string {
	return map[string]string{
		"etc/alpine-release": "3.22.0\n",
		"etc/os-release":     "NAME=\"Alpine Linux\"\nID=alpine\nVERSION_ID=3.22.0\nPRETTY_NAME=\"Alpine Linux v3.22\"\n",
		"lib/apk/db/installed": "C:Q1" + strings.Repeat("A", 27) + "=\nP:musl\nV:" + musl +
			"\nA:x86_64\nS:1000\nI:2000\nT:the musl c library\nU:https://musl.libc.org/\nL:MIT\no:musl\n\n",
	}
}

// nodeFiles installs lodash at version under /app/node_modules.
func nodeFiles(lodash string) map[string]string {
	return map[string]string{
		"app/node_modules/lodash/package.json": fmt.Sprintf(`{"name": "lodash", "version": %q, "license": "MIT"}`, lodash),
		"app/package.json":                     fmt.Sprintf(`{"name": "app", "version": "1.0.0", "dependencies": {"lodash": %q}}`, lodash),
	}
}

func tarOf(t testing.TB, files map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	dirs := map[string]bool{}
	for _, n := range names {
		var parents []string
		for d := filepath.Dir(n); d != "." && !dirs[d]; d = filepath.Dir(d) {
			parents = append(parents, d)
			dirs[d] = true
		}
		for i := len(parents) - 1; i >= 0; i-- {
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: parents[i] + "/", Mode: 0o755}); err != nil {
				t.Fatal(err)
			}
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: n, Mode: 0o644, Size: int64(len(files[n]))}); err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(tw, files[n]); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// fileImage is a linux/arch image with one layer per file map.
func fileImage(t testing.TB, arch string, layers ...map[string]string) v1.Image {
	t.Helper()
	img := empty.Image
	for _, files := range layers {
		data := tarOf(t, files)
		l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
		if err != nil {
			t.Fatal(err)
		}
		if img, err = mutate.AppendLayers(img, l); err != nil {
			t.Fatal(err)
		}
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", arch
	cf.Config.Cmd = []string{"/bin/sh"}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

var adminAuth = remote.WithAuth(&authn.Basic{Username: "admin", Password: apptest.AdminPassword})

func pushImg(t testing.TB, in *apptest.Instance, ref string, img v1.Image) string {
	t.Helper()
	r, err := name.ParseReference(in.Host+"/"+ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img, adminAuth); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

func pushIndex(t testing.TB, in *apptest.Instance, ref string, idx v1.ImageIndex) string {
	t.Helper()
	r, err := name.ParseReference(in.Host+"/"+ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(r, idx, adminAuth); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
	d, err := idx.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

// pull GETs and HEADs the manifest of ref ("ns/repo:tag" or "ns/repo@digest") as the administrator with
// go-containerregistry's client. It returns nil, or the registry's error.
func pull(t testing.TB, in *apptest.Instance, ref string) *transport.Error {
	t.Helper()
	return pullWith(t, in, ref, adminAuth)
}

// pullWith is pull with another client's credentials and options.
func pullWith(t testing.TB, in *apptest.Instance, ref string, opts ...remote.Option) *transport.Error {
	t.Helper()
	r, err := name.ParseReference(in.Host+"/"+ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	_, err = remote.Get(r, opts...)
	_, herr := remote.Head(r, opts...)
	if (err == nil) != (herr == nil) {
		t.Fatalf("pull %s: GET says %v, HEAD says %v", ref, err, herr)
	}
	if err == nil {
		return nil
	}
	var te *transport.Error
	if !errors.As(err, &te) {
		t.Fatalf("pull %s: %v", ref, err)
	}
	return te
}

// wantDenied asserts that ref's pull is refused with 403 DENIED and a message holding each of parts.
func wantDenied(t testing.TB, in *apptest.Instance, ref string, parts ...string) {
	t.Helper()
	wantDeniedWith(t, in, adminAuth, ref, parts...)
}

// wantDeniedWith is wantDenied with another client's credentials.
func wantDeniedWith(t testing.TB, in *apptest.Instance, auth remote.Option, ref string, parts ...string) {
	t.Helper()
	te := pullWith(t, in, ref, auth)
	if te == nil {
		t.Fatalf("pull %s succeeded; want 403 DENIED", ref)
	}
	if te.StatusCode != http.StatusForbidden || len(te.Errors) == 0 || te.Errors[0].Code != transport.DeniedErrorCode {
		t.Fatalf("pull %s: %d %v; want 403 DENIED", ref, te.StatusCode, te.Errors)
	}
	for _, p := range parts {
		if !strings.Contains(te.Errors[0].Message, p) {
			t.Errorf("pull %s: message %q does not say %q", ref, te.Errors[0].Message, p)
		}
	}
}

func wantPulls(t testing.TB, in *apptest.Instance, ref string) {
	t.Helper()
	wantPullsWith(t, in, adminAuth, ref)
}

// wantPullsWith is wantPulls with another client's credentials.
func wantPullsWith(t testing.TB, in *apptest.Instance, auth remote.Option, ref string) {
	t.Helper()
	if te := pullWith(t, in, ref, auth); te != nil {
		t.Fatalf("pull %s: %v; want it to pass", ref, te)
	}
}

// waitScan polls a tag's scan until its status is final (DONE or FAILED).
func waitScan(t testing.TB, in *apptest.Instance, repo, tag string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		r := in.Admin(t, "GET", "/api/v1/repositories/"+repo+"/tags/"+tag+"/scan", nil)
		if r.Status != 200 {
			t.Fatalf("scan of %s:%s: %d %s", repo, tag, r.Status, r.Body)
		}
		if s := r.JSON["status"]; s == "DONE" || s == "FAILED" {
			return r.JSON
		}
		if time.Now().After(deadline) {
			t.Fatalf("scan of %s:%s never finished: %s", repo, tag, r.Body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func putPolicy(t testing.TB, in *apptest.Instance, path string, p map[string]any) map[string]any {
	t.Helper()
	r := in.Admin(t, "PUT", path, p)
	if r.Status != 200 {
		t.Fatalf("PUT %s %v: %d %s", path, p, r.Status, r.Body)
	}
	return r.JSON
}

type vuln struct{ id, pkg, installed, fixed, severity string }

func vulnsOf(t testing.TB, scan map[string]any) []vuln {
	t.Helper()
	raw, _ := scan["vulnerabilities"].([]any)
	var out []vuln
	for _, x := range raw {
		m, _ := x.(map[string]any)
		s := func(k string) string { v, _ := m[k].(string); return v }
		out = append(out, vuln{s("id"), s("package"), s("installed_version"), s("fixed_version"), s("severity")})
		if s("title") == "" || !strings.HasPrefix(s("link"), "https://") {
			t.Errorf("vulnerability %s has no title or link: %v", s("id"), m)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out
}

func summaryOf(m map[string]any, key string) map[string]float64 {
	s, _ := m[key].(map[string]any)
	out := map[string]float64{}
	for k, v := range s {
		out[k], _ = v.(float64)
	}
	return out
}

var (
	vulnerableFiles = []map[string]string{alpineFiles("1.2.5-r8"), nodeFiles("4.17.20")}
	cleanFiles      = []map[string]string{alpineFiles("1.2.5-r9"), nodeFiles("4.17.21")}
	wantVulns       = []vuln{
		{"CVE-2021-23337", "lodash", "4.17.20", "4.17.21", "HIGH"},
		{"CVE-2025-26519", "musl", "1.2.5-r8", "1.2.5-r9", "HIGH"},
	}
)

// TestScanAndBlock pushes a vulnerable and a clean image (and an index of both) with a real client, has the
// real scanner (bin/berth-scanner over a DB of real advisories) scan them, and checks the findings, the
// tag list, the pull gate under block_severity=HIGH with allowlist and repository override, and the triggers
// of a blocked version.
func TestScanAndBlock(t *testing.T) {
	in := scanInstance(t, scanDB(t), nil)
	vulnDigest := pushImg(t, in, "demo/app:vuln", fileImage(t, "amd64", vulnerableFiles...))
	cleanDigest := pushImg(t, in, "demo/app:clean", fileImage(t, "amd64", cleanFiles...))

	scan := waitScan(t, in, "demo/app", "vuln")
	if scan["status"] != "DONE" {
		t.Fatalf("scan of the vulnerable image: %v", scan)
	}
	if got := vulnsOf(t, scan); fmt.Sprint(got) != fmt.Sprint(wantVulns) {
		t.Errorf("vulnerabilities\n got %v\nwant %v", got, wantVulns)
	}
	if s := summaryOf(scan, "summary"); s["high"] != 2 || s["medium"] != 0 || s["low"] != 0 || s["unrated"] != 0 {
		t.Errorf("summary %v; want 2 high", s)
	}
	if scan["scanner"] != "trivy 0.74.0" || scan["db_version"] != "2026-01-02T03:04:05Z" || scan["started_at"] == nil || scan["finished_at"] == nil {
		t.Errorf("scanner, DB version, times: %v", scan)
	}
	clean := waitScan(t, in, "demo/app", "clean")
	if clean["status"] != "DONE" || len(vulnsOf(t, clean)) != 0 || summaryOf(clean, "summary")["high"] != 0 {
		t.Errorf("clean image: %v", clean)
	}

	tags := func() map[string]map[string]any {
		r := in.Admin(t, "GET", "/api/v1/repositories/demo/app/tags", nil)
		out := map[string]map[string]any{}
		for _, it := range r.Items() {
			out[it["tag"].(string)] = it
		}
		return out
	}
	ts := tags()
	if v := ts["vuln"]; v["scan_status"] != "DONE" || summaryOf(v, "vulnerabilities")["high"] != 2 || v["blocked"] != false {
		t.Errorf("tag vuln before any policy: %v", v)
	}
	if v := ts["clean"]; v["scan_status"] != "DONE" || summaryOf(v, "vulnerabilities")["high"] != 0 || v["blocked"] != false {
		t.Errorf("tag clean: %v", v)
	}
	wantPulls(t, in, "demo/app:vuln") // the default policy blocks nothing

	// block_severity=HIGH on the namespace.
	if got := in.Admin(t, "GET", "/api/v1/namespaces/demo/security-policy", nil); got.JSON["block_severity"] != "NONE" {
		t.Errorf("default policy: %s", got.Body)
	}
	putPolicy(t, in, "/api/v1/namespaces/demo/security-policy", map[string]any{"block_severity": "HIGH"})
	for _, ref := range []string{"demo/app:vuln", "demo/app@" + vulnDigest} {
		wantDenied(t, in, ref, "2 high vulnerabilities", "namespace demo", "block_severity=HIGH")
	}
	wantPulls(t, in, "demo/app:clean")
	wantPulls(t, in, "demo/app@"+cleanDigest)
	if ts := tags(); ts["vuln"]["blocked"] != true || ts["clean"]["blocked"] != false {
		t.Errorf("blocked flags: vuln %v, clean %v", ts["vuln"]["blocked"], ts["clean"]["blocked"])
	}
	if r := in.Admin(t, "GET", "/api/v1/repositories/demo/app/tags/vuln", nil); r.JSON["blocked"] != true {
		t.Errorf("GET tag: %s", r.Body)
	}

	// The allowlist: one CVE leaves one high; both unblock; an expired entry counts again.
	putPolicy(t, in, "/api/v1/namespaces/demo/security-policy", map[string]any{"block_severity": "HIGH",
		"allowlist": []map[string]any{{"id": "CVE-2025-26519"}}})
	wantDenied(t, in, "demo/app:vuln", "1 high vulnerability")
	putPolicy(t, in, "/api/v1/namespaces/demo/security-policy", map[string]any{"block_severity": "HIGH",
		"allowlist": []map[string]any{{"id": "CVE-2025-26519"}, {"id": "cve-2021-23337", "expires_at": time.Now().Add(time.Hour)}}})
	wantPulls(t, in, "demo/app:vuln")
	putPolicy(t, in, "/api/v1/namespaces/demo/security-policy", map[string]any{"block_severity": "HIGH",
		"allowlist": []map[string]any{{"id": "CVE-2025-26519"}, {"id": "CVE-2021-23337", "expires_at": time.Now().Add(-time.Hour)}}})
	wantDenied(t, in, "demo/app:vuln", "1 high vulnerability")
	putPolicy(t, in, "/api/v1/namespaces/demo/security-policy", map[string]any{"block_severity": "HIGH"})

	// A repository override replaces the namespace's policy whole; dropping it restores the namespace's.
	if r := in.Admin(t, "GET", "/api/v1/repositories/demo/app/security-policy", nil); r.JSON["override"] != false || r.JSON["block_severity"] != "HIGH" {
		t.Errorf("inherited policy: %s", r.Body)
	}
	got := putPolicy(t, in, "/api/v1/repositories/demo/app/security-policy", map[string]any{"block_severity": "CRITICAL"})
	if got["override"] != true {
		t.Errorf("PUT override: %v", got)
	}
	wantPulls(t, in, "demo/app:vuln") // HIGH findings, CRITICAL threshold
	putPolicy(t, in, "/api/v1/repositories/demo/app/security-policy", map[string]any{"block_severity": "MEDIUM",
		"allowlist": []map[string]any{{"id": "CVE-2021-23337"}}})
	wantDenied(t, in, "demo/app:vuln", "1 high vulnerability", "repository demo/app", "block_severity=MEDIUM")
	if r := in.Admin(t, "DELETE", "/api/v1/repositories/demo/app/security-policy", nil); r.Status != 204 {
		t.Fatalf("DELETE override: %d %s", r.Status, r.Body)
	}
	if r := in.Admin(t, "DELETE", "/api/v1/repositories/demo/app/security-policy", nil); r.Status != 404 {
		t.Errorf("DELETE missing override: %d %s", r.Status, r.Body)
	}
	wantDenied(t, in, "demo/app:vuln", "2 high vulnerabilities", "namespace demo")

	// Triggers: a blocked version records NOT_TRIGGERED with reason BLOCKED; a clean one is delivered.
	rcv := newReceiver(t)
	trig, _ := createTrigger(t, in, "demo/app", map[string]any{"name": "deploy", "url": rcv.URL + "/hook"})
	pushImg(t, in, "demo/app:vuln-again", fileImage(t, "amd64", vulnerableFiles...))
	pushImg(t, in, "demo/app:clean-again", fileImage(t, "amd64", cleanFiles...))
	recs := byTag(t, waitRecords(t, in, "demo/app", trig, func(rs []map[string]any) bool {
		n := 0
		for _, r := range rs {
			if r["status"] != "FAILED" || !strings.Contains(fmt.Sprint(r["reason"]), "will retry") {
				n++
			}
		}
		return n >= 2
	}))
	if r := recs["vuln-again"]; r["status"] != "NOT_TRIGGERED" || !strings.HasPrefix(fmt.Sprint(r["reason"]), "BLOCKED: ") ||
		!strings.Contains(fmt.Sprint(r["reason"]), "2 high") {
		t.Errorf("record of the blocked version: %v", r)
	}
	if r := recs["clean-again"]; r["status"] != "TRIGGERED" {
		t.Errorf("record of the clean version: %v", r)
	}
	if len(rcv.hitsOn("/hook")) != 1 {
		t.Errorf("receiver got %d deliveries; want 1 (the clean version)", len(rcv.hitsOn("/hook")))
	}

	// An index is blocked when any platform image is; its children are judged on their own by digest.
	idx := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex),
		mutate.IndexAddendum{Add: fileImage(t, "amd64", vulnerableFiles...), Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
		mutate.IndexAddendum{Add: fileImage(t, "arm64", cleanFiles...), Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64"}}})
	pushIndex(t, in, "demo/multi:1", idx)
	iscan := waitScan(t, in, "demo/multi", "1")
	if iscan["status"] != "DONE" || fmt.Sprint(vulnsOf(t, iscan)) != fmt.Sprint(wantVulns) {
		t.Errorf("index scan: %v", iscan)
	}
	wantDenied(t, in, "demo/multi:1", "2 high vulnerabilities")
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	wantDenied(t, in, "demo/multi@"+im.Manifests[0].Digest.String(), "2 high vulnerabilities")
	wantPulls(t, in, "demo/multi@"+im.Manifests[1].Digest.String())

	// A rescan by API: 202 SCANNING, then DONE again; the previous result stays in force meanwhile.
	r := in.Admin(t, "POST", "/api/v1/repositories/demo/app/tags/clean/scan", nil)
	if r.Status != 202 || (r.JSON["status"] != "SCANNING" && r.JSON["status"] != "DONE") {
		t.Fatalf("POST scan: %d %s", r.Status, r.Body)
	}
	if again := waitScan(t, in, "demo/app", "clean"); again["status"] != "DONE" || len(vulnsOf(t, again)) != 0 {
		t.Errorf("rescan: %v", again)
	}
	if r := in.Admin(t, "GET", "/api/v1/repositories/demo/nope/tags/x/scan", nil); r.Status != 404 {
		t.Errorf("scan of a missing repository: %d", r.Status)
	}
}

// heldScanner is a real berth-scanner behind a proxy that holds POST /scan until released.
type heldScanner struct {
	addr    string
	mu      sync.Mutex
	release chan struct{}
	held    chan struct{}
}

// startScannerServe runs `berth-scanner serve` over dbDir until the test ends and returns its address.
func startScannerServe(t *testing.T, dbDir string) string {
	cmd := exec.Command(scannerBin(t), "serve", "--addr", "127.0.0.1:0", "--db-dir", dbDir, "--cache-dir", t.TempDir())
	cmd.Stderr = testLogWriter{t}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Signal(syscall.SIGTERM); _ = cmd.Wait() })
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if a, ok := strings.CutPrefix(sc.Text(), "listening on "); ok {
			go func() { _, _ = io.Copy(io.Discard, out) }()
			return a
		}
	}
	t.Fatalf("berth-scanner serve did not say where it listens")
	return ""
}

func newHeldScanner(t *testing.T, dbDir string) *heldScanner {
	target, _ := url.Parse("http://" + startScannerServe(t, dbDir))
	h := &heldScanner{release: make(chan struct{}), held: make(chan struct{}, 16)}
	proxy := httputil.NewSingleHostReverseProxy(target)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/scan" {
			h.held <- struct{}{}
			h.mu.Lock()
			rel := h.release
			h.mu.Unlock()
			<-rel
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(h.Release)
	h.addr = strings.TrimPrefix(srv.URL, "http://")
	return h
}

func (h *heldScanner) Release() {
	h.mu.Lock()
	defer h.mu.Unlock()
	select {
	case <-h.release:
	default:
		close(h.release)
	}
}

// TestScanBlockUnscanned: with block_unscanned an image is refused until its scan ends DONE (the scanner,
// reached through --scanner-addr, is held mid-scan), and its triggers wait for the verdict.
func TestScanBlockUnscanned(t *testing.T) {
	held := newHeldScanner(t, scanDB(t))
	in := scanInstance(t, "", func(c *app.Config) { c.ScannerAddr = held.addr })
	putPolicy(t, in, "/api/v1/namespaces/demo/security-policy", map[string]any{"block_severity": "NONE", "block_unscanned": true})
	rcv := newReceiver(t)
	createRepo(t, in, "demo", "svc", "PRIVATE")
	trig, _ := createTrigger(t, in, "demo/svc", map[string]any{"name": "deploy", "url": rcv.URL + "/hook"})

	digest := pushImg(t, in, "demo/svc:1", fileImage(t, "amd64", vulnerableFiles...))
	select {
	case <-held.held:
	case <-time.After(30 * time.Second):
		t.Fatal("the scanner was never asked")
	}
	if r := in.Admin(t, "GET", "/api/v1/repositories/demo/svc/tags/1/scan", nil); r.JSON["status"] != "SCANNING" {
		t.Errorf("scan while held: %s", r.Body)
	}
	wantDenied(t, in, "demo/svc:1", "block_unscanned", "not been scanned")
	wantDenied(t, in, "demo/svc@"+digest, "block_unscanned")
	if ts := in.Admin(t, "GET", "/api/v1/repositories/demo/svc/tags/1", nil); ts.JSON["blocked"] != true || ts.JSON["scan_status"] != "SCANNING" {
		t.Errorf("tag while scanning: %s", ts.Body)
	}
	time.Sleep(200 * time.Millisecond)
	if n := rcv.total(); n != 0 {
		t.Errorf("the trigger fired before the scan ended (%d deliveries)", n)
	}

	held.Release()
	if s := waitScan(t, in, "demo/svc", "1"); s["status"] != "DONE" || len(vulnsOf(t, s)) != 2 {
		t.Fatalf("scan after release: %v", s)
	}
	wantPulls(t, in, "demo/svc:1") // block_severity NONE: DONE is all block_unscanned asks
	recs := waitRecords(t, in, "demo/svc", trig, settled(1))
	if recs[0]["status"] != "TRIGGERED" {
		t.Errorf("trigger after the scan: %v", recs[0])
	}
}

// TestScanWithoutDB: without a vulnerability DB scans end FAILED with "no vulnerability DB" — from the
// scanner itself (503 NO_VULN_DB, via --scanner-addr) and from serve's own check before starting its child —
// and block_unscanned decides whether the image pulls and whether its triggers fire.
func TestScanWithoutDB(t *testing.T) {
	for _, mode := range []string{"scanner-addr", "child"} {
		t.Run(mode, func(t *testing.T) {
			empty := t.TempDir()
			in := scanInstance(t, empty, func(c *app.Config) {
				if mode == "scanner-addr" {
					c.ScannerAddr = startScannerServe(t, empty)
				}
			})
			rcv := newReceiver(t)
			createRepo(t, in, "demo", "app", "PRIVATE")
			trig, _ := createTrigger(t, in, "demo/app", map[string]any{"name": "deploy", "url": rcv.URL + "/hook"})

			pushImg(t, in, "demo/app:open", fileImage(t, "amd64", vulnerableFiles...))
			s := waitScan(t, in, "demo/app", "open")
			if s["status"] != "FAILED" || !strings.Contains(fmt.Sprint(s["error"]), "no vulnerability DB") {
				t.Fatalf("scan without a DB: %v", s)
			}
			if s["finished_at"] == nil {
				t.Errorf("a FAILED scan has no finished_at: %v", s)
			}
			wantPulls(t, in, "demo/app:open") // block_unscanned off: a failed scan blocks nothing

			putPolicy(t, in, "/api/v1/namespaces/demo/security-policy", map[string]any{"block_severity": "HIGH", "block_unscanned": true})
			wantDenied(t, in, "demo/app:open", "block_unscanned", "scan failed")
			pushImg(t, in, "demo/app:closed", fileImage(t, "amd64", cleanFiles...))
			recs := byTag(t, waitRecords(t, in, "demo/app", trig, settled(2)))
			if r := recs["open"]; r["status"] != "TRIGGERED" {
				t.Errorf("trigger of the version pushed before block_unscanned: %v", r)
			}
			if r := recs["closed"]; r["status"] != "NOT_TRIGGERED" || !strings.HasPrefix(fmt.Sprint(r["reason"]), "BLOCKED: ") {
				t.Errorf("trigger of the version pushed under block_unscanned: %v", r)
			}
		})
	}
}

// TestSecurityPolicyAPI checks validation and 404s of the security policy routes.
func TestSecurityPolicyAPI(t *testing.T) {
	in := apptest.Start(t, apptest.Options{})
	if r := in.Admin(t, "POST", "/api/v1/namespaces", map[string]any{"name": "demo"}); r.Status != 201 {
		t.Fatal(r.Status)
	}
	createRepo(t, in, "demo", "app", "PRIVATE")
	for _, c := range []struct {
		body any
		want string
	}{
		{map[string]any{"block_severity": "SEVERE"}, "block_severity"},
		{map[string]any{"block_severity": "HIGH", "allowlist": []map[string]any{{"id": ""}}}, "allowlist[0].id"},
		{map[string]any{"block_severity": "HIGH", "allowlist": []map[string]any{{"id": "CVE-1"}, {"id": "cve-1"}}}, "repeats"},
		{map[string]any{"block_severity": "HIGH", "unknown": true}, "unknown"},
		{`{"block_severity": 3}`, "block_severity"},
		{map[string]any{"require_signature": true, "trusted_keys": []string{"not a key"}}, `trusted_keys[0]: not a PEM \"PUBLIC KEY\" block`},
		{map[string]any{"trusted_keys": make([]string, 11)}, "trusted_keys has 11 keys; the limit is 10"},
		{map[string]any{"trusted_keys": "one"}, "trusted_keys"},
	} {
		for _, path := range []string{"/api/v1/namespaces/demo/security-policy", "/api/v1/repositories/demo/app/security-policy"} {
			r := in.Admin(t, "PUT", path, c.body)
			if r.Status != 400 || !strings.Contains(string(r.Body), c.want) {
				t.Errorf("PUT %s %v: %d %s", path, c.body, r.Status, r.Body)
			}
		}
	}
	// Lower-case severities are accepted; the answer has every field.
	r := in.Admin(t, "PUT", "/api/v1/namespaces/demo/security-policy", map[string]any{"block_severity": "medium", "only_fixable": true})
	if r.Status != 200 || r.JSON["block_severity"] != "MEDIUM" || r.JSON["only_fixable"] != true || r.JSON["block_unscanned"] != false {
		t.Errorf("PUT: %d %s", r.Status, r.Body)
	}
	if l, ok := r.JSON["allowlist"].([]any); !ok || len(l) != 0 {
		t.Errorf("allowlist: %s", r.Body)
	}
	if l, ok := r.JSON["trusted_keys"].([]any); !ok || len(l) != 0 || r.JSON["require_signature"] != false {
		t.Errorf("trusted_keys: %s", r.Body)
	}
	if r := in.Admin(t, "GET", "/api/v1/repositories/demo/app/security-policy", nil); r.JSON["block_severity"] != "MEDIUM" || r.JSON["override"] != false {
		t.Errorf("inherited: %s", r.Body)
	}
	for _, p := range []string{"/api/v1/namespaces/nope/security-policy", "/api/v1/repositories/demo/nope/security-policy"} {
		if r := in.Admin(t, "GET", p, nil); r.Status != 404 {
			t.Errorf("GET %s: %d", p, r.Status)
		}
	}
	// The override dies with its repository.
	putPolicy(t, in, "/api/v1/repositories/demo/app/security-policy", map[string]any{"block_severity": "LOW"})
	if r := in.Admin(t, "DELETE", "/api/v1/repositories/demo/app", nil); r.Status != 204 {
		t.Fatal(r.Status)
	}
	createRepo(t, in, "demo", "app", "PRIVATE")
	if r := in.Admin(t, "GET", "/api/v1/repositories/demo/app/security-policy", nil); r.JSON["override"] != false {
		t.Errorf("override outlived its repository: %s", r.Body)
	}
	// A trusted key is kept as given and read back.
	key, _ := signature.GenerateKey()
	pub, _ := signature.PublicKeyPEM(key.Public())
	putPolicy(t, in, "/api/v1/repositories/demo/app/security-policy", map[string]any{"block_severity": "NONE",
		"require_signature": true, "trusted_keys": []string{string(pub)}})
	if r := in.Admin(t, "GET", "/api/v1/repositories/demo/app/security-policy", nil); r.JSON["require_signature"] != true ||
		fmt.Sprint(r.JSON["trusted_keys"]) != fmt.Sprint([]any{string(pub)}) {
		t.Errorf("require_signature: %s", r.Body)
	}
}

// TestScanBlocksBuild: a Git-driven build whose image the security policy blocks ends BLOCKED after its
// SCANNING stage, with the gate's message; a clean one ends SUCCESS.
func TestScanBlocksBuild(t *testing.T) {
	bk := buildkitAddr(t)
	in := scanInstance(t, scanDB(t), func(c *app.Config) { c.BuildkitAddr = bk })
	allowBuilds(t, in.Host)
	putPolicy(t, in, "/api/v1/namespaces/demo/security-policy", map[string]any{"block_severity": "HIGH"})
	createRepo(t, in, "demo", "built", "PRIVATE")
	const repo = "demo/built"
	api := "/api/v1/repositories/" + repo
	rootfs := func(musl string) map[string]string {
		files := map[string]string{"Dockerfile": "FROM scratch\nCOPY rootfs/ /\n"}
		for p, c := range alpineFiles(musl) {
			files["rootfs/"+p] = c
		}
		return files
	}
	g := newGitRepo(t)
	first := g.commit(t, rootfs("1.2.5-r8"), "vulnerable musl")
	r := in.Admin(t, "PUT", api+"/source", map[string]any{"provider": "github", "url": g.URL})
	if r.Status != 201 {
		t.Fatalf("put source: %d %s", r.Status, r.Body)
	}
	hookURL, secret := r.JSON["webhook_url"].(string), r.JSON["webhook_secret"].(string)
	if r := in.Admin(t, "POST", api+"/build-rules", map[string]any{"source_type": "BRANCH", "source_ref": "main", "image_tag": "latest"}); r.Status != 201 {
		t.Fatalf("rule: %d %s", r.Status, r.Body)
	}
	build := func(delivery, before, after string) map[string]any {
		status, ans := sendHook(t, hookURL, secret, "push", delivery, githubPush("refs/heads/main", before, after))
		ids := hookBuilds(t, ans)
		if status != http.StatusAccepted || len(ids) != 1 {
			t.Fatalf("hook: %d %v", status, ans)
		}
		return waitBuild(t, in, repo, ids[0], buildTimeout)
	}
	stages := func(b map[string]any) string {
		var names []string
		for _, s := range b["stages"].([]any) {
			names = append(names, s.(map[string]any)["name"].(string))
		}
		return strings.Join(names, ",")
	}

	b := build("d1", strings.Repeat("0", 40), first)
	if b["status"] != "BLOCKED" || !strings.Contains(fmt.Sprint(b["error"]), "1 high vulnerability") ||
		!strings.Contains(fmt.Sprint(b["error"]), "namespace demo") || stages(b) != "CLONING,BUILDING,PUSHING,SCANNING" {
		t.Fatalf("build of the vulnerable image: %v\n%s", b, buildLog(t, in, repo, b["id"].(string)))
	}
	if log := buildLog(t, in, repo, b["id"].(string)); !strings.Contains(log, "scan DONE") {
		t.Errorf("build log without the scan:\n%s", log)
	}
	wantDenied(t, in, repo+":latest", "1 high vulnerability")

	second := g.commit(t, rootfs("1.2.5-r9"), "fixed musl")
	b = build("d2", first, second)
	if b["status"] != "SUCCESS" {
		t.Fatalf("build of the clean image: %v\n%s", b, buildLog(t, in, repo, b["id"].(string)))
	}
	wantPulls(t, in, repo+":latest")
}

// TestScanDBDropIn: a DB dropped into --scan-db-dir is noticed (its UpdatedAt), and images pushed in the last
// days are rescanned with it — those that failed for want of a DB, and again when a newer DB replaces it.
func TestScanDBDropIn(t *testing.T) {
	dbDir := t.TempDir()
	in := scanInstance(t, dbDir, func(c *app.Config) { c.ScanDBCheckInterval = 100 * time.Millisecond })
	pushImg(t, in, "demo/app:1", fileImage(t, "amd64", vulnerableFiles...))
	if s := waitScan(t, in, "demo/app", "1"); s["status"] != "FAILED" {
		t.Fatalf("scan without a DB: %v", s)
	}
	f, err := os.Open(filepath.Join(sourceRoot(t), "workers", "scandb", "testdata", "advisories.json"))
	if err != nil {
		t.Fatal(err)
	}
	adv, err := scandb.LoadAdvisories(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	waitDBVersion := func(version string) map[string]any {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for {
			s := waitScan(t, in, "demo/app", "1")
			if s["status"] == "DONE" && s["db_version"] == version {
				return s
			}
			if time.Now().After(deadline) {
				t.Fatalf("never rescanned with DB %s: %v", version, s)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	if err := scandb.Build(context.Background(), adv, dbDir); err != nil {
		t.Fatal(err)
	}
	if s := waitDBVersion("2026-01-02T03:04:05Z"); fmt.Sprint(vulnsOf(t, s)) != fmt.Sprint(wantVulns) {
		t.Errorf("rescan with the dropped-in DB: %v", s)
	}
	adv.UpdatedAt = time.Date(2026, 2, 3, 4, 5, 6, 0, time.UTC)
	if err := scandb.Build(context.Background(), adv, dbDir); err != nil {
		t.Fatal(err)
	}
	waitDBVersion("2026-02-03T04:05:06Z")
}

// TestScanRecoveredAfterRestart: a scan cut off by a restart (its task gone with the queue) is queued again
// when Berth starts, and the push waiting for it still reaches its trigger.
func TestScanRecoveredAfterRestart(t *testing.T) {
	held := newHeldScanner(t, scanDB(t))
	dir := t.TempDir()
	configure := func(c *app.Config) {
		c.ScannerAddr = held.addr
		c.TriggerAllow = []string{"127.0.0.0/8"}
	}
	in := apptest.Start(t, apptest.Options{DataDir: dir, Configure: configure})
	if r := in.Admin(t, "POST", "/api/v1/namespaces", map[string]any{"name": "demo", "auto_create_repo": true}); r.Status != 201 {
		t.Fatalf("namespace: %s", r.Body)
	}
	rcv := newReceiver(t)
	createRepo(t, in, "demo", "app", "PRIVATE")
	trig, _ := createTrigger(t, in, "demo/app", map[string]any{"name": "deploy", "url": rcv.URL + "/hook"})
	pushImg(t, in, "demo/app:1", fileImage(t, "amd64", vulnerableFiles...))
	select {
	case <-held.held:
	case <-time.After(30 * time.Second):
		t.Fatal("the scanner was never asked")
	}
	in.Stop()
	held.Release()

	in = apptest.Start(t, apptest.Options{DataDir: dir, Configure: configure})
	if s := waitScan(t, in, "demo/app", "1"); s["status"] != "DONE" || len(vulnsOf(t, s)) != 2 {
		t.Fatalf("scan after the restart: %v", s)
	}
	if recs := waitRecords(t, in, "demo/app", trig, settled(1)); recs[0]["status"] != "TRIGGERED" {
		t.Errorf("trigger after the restart: %v", recs[0])
	}
}
