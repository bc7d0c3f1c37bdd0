package server_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/berth-dev/berth/server/app/apptest"
	"github.com/berth-dev/berth/workers/buildkit"
	"github.com/berth-dev/berth/workers/buildkit/buildkittest"
)

// The build tests share one buildkitd, started on first use and stopped by TestMain.
var sharedBK struct {
	once   sync.Once
	daemon *buildkit.Daemon
	root   string
	err    error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if sharedBK.daemon != nil {
		if err := sharedBK.daemon.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stop buildkitd:", err)
		}
	}
	if sharedBK.root != "" {
		os.RemoveAll(sharedBK.root)
	}
	os.Exit(code)
}

// need fails in CI, and skips elsewhere, when something a build test runs for real is missing.
func need(t *testing.T, what string, err error) {
	t.Helper()
	if err == nil {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("CI is set and %s is missing: %v", what, err)
	}
	t.Skipf("skipping: %s is missing: %v", what, err)
}

// buildkitAddr returns the address of the shared buildkitd.
func buildkitAddr(t *testing.T) string {
	t.Helper()
	bin, err := buildkit.FindBinary()
	need(t, "buildkitd (scripts/install-buildkit.sh), runc or root", err)
	for _, tool := range []string{"git", "skopeo"} {
		_, err := exec.LookPath(tool)
		need(t, tool, err)
	}
	_, err = os.Stat("/bin/busybox")
	need(t, "/bin/busybox (apt-get install busybox-static)", err)
	sharedBK.once.Do(func() {
		if sharedBK.root, sharedBK.err = os.MkdirTemp("", "berth-bk-"); sharedBK.err != nil {
			return
		}
		logf, _ := os.Create(filepath.Join(sharedBK.root, "buildkitd.log"))
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		sharedBK.daemon, sharedBK.err = buildkit.Start(ctx, buildkit.DaemonConfig{Binary: bin, RootDir: sharedBK.root,
			GCKeepBytes: 1 << 30, LogWriter: logf})
	})
	if sharedBK.err != nil {
		t.Fatalf("shared buildkitd: %v", sharedBK.err)
	}
	return sharedBK.daemon.Addr()
}

// allowBuilds opens the shared buildkitd's path to the registry at host (host:port, an instance's public URL):
// buildkitd runs in a network namespace of its own and reaches Berth's registry only through such a path,
// which `berth serve` opens itself for the buildkitd it starts.
func allowBuilds(t *testing.T, host string) {
	t.Helper()
	remove, err := sharedBK.daemon.AllowRegistry(t.Context(), host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(remove)
}

// gitRepo is a Git repository served by `git http-backend` on loopback (what go-git clones from), with a
// working copy that commits and pushes into it.
type gitRepo struct {
	bare, work, URL string
}

func newGitRepo(t *testing.T) *gitRepo {
	t.Helper()
	root := t.TempDir()
	g := &gitRepo{bare: filepath.Join(root, "app.git"), work: filepath.Join(root, "work")}
	run(t, "", "git", "init", "-q", "--bare", "-b", "main", g.bare)
	run(t, g.bare, "git", "config", "uploadpack.allowReachableSHA1InWant", "true")
	run(t, "", "git", "init", "-q", "-b", "main", g.work)
	run(t, g.work, "git", "config", "user.email", "dev@example.com")
	run(t, g.work, "git", "config", "user.name", "Dev")
	out, err := exec.Command("git", "--exec-path").Output()
	if err != nil {
		t.Fatal(err)
	}
	backend := filepath.Join(strings.TrimSpace(string(out)), "git-http-backend")
	srv := httptest.NewServer(&cgi.Handler{Path: backend, Env: []string{"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1"}})
	t.Cleanup(srv.Close)
	g.URL = srv.URL + "/app.git"
	return g
}

func run(t *testing.T, dir string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// commit writes files (path → content) into the working copy, commits them on main and pushes main; it
// returns the commit.
func (g *gitRepo) commit(t *testing.T, files map[string]string, msg string) string {
	t.Helper()
	for p, c := range files {
		full := filepath.Join(g.work, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	run(t, g.work, "git", "add", "-A")
	run(t, g.work, "git", "commit", "-q", "-m", msg)
	g.push(t, "HEAD:refs/heads/main")
	return run(t, g.work, "git", "rev-parse", "HEAD")
}

// push pushes a refspec of the working copy into the served repository.
func (g *gitRepo) push(t *testing.T, refspec string) {
	t.Helper()
	run(t, g.work, "git", "push", "-q", "-f", g.bare, refspec)
}

// githubPush is the body of a GitHub push delivery.
func githubPush(ref, before, after string) map[string]any {
	return map[string]any{"ref": ref, "before": before, "after": after, "deleted": false,
		"head_commit": map[string]any{"id": after}, "pusher": map[string]any{"name": "dev"},
		"repository": map[string]any{"clone_url": "https://github.com/team/app.git"}}
}

// sendHook posts a GitHub-format delivery to a webhook URL, signed with secret.
func sendHook(t testing.TB, url, secret, event, delivery string, payload any) (int, map[string]any) {
	t.Helper()
	st, ans, err := deliverHook(url, secret, event, delivery, payload)
	if err != nil {
		t.Fatal(err)
	}
	return st, ans
}

// deliverHook is sendHook for other goroutines than the test's: it returns its error.
func deliverHook(url, secret, event, delivery string, payload any) (int, map[string]any, error) {
	body, err := json.Marshal(payload)
	if err != nil {
		return 0, nil, err
	}
	req, err := http.NewRequest("POST", url, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-GitHub-Event", event)
	req.Header.Set("X-GitHub-Delivery", delivery)
	req.Header.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(mac.Sum(nil)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	var ans map[string]any
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil, err
	}
	_ = json.Unmarshal(data, &ans)
	return resp.StatusCode, ans, nil
}

// hookBuilds returns the build ids of a webhook answer.
func hookBuilds(t testing.TB, ans map[string]any) []string {
	t.Helper()
	raw, ok := ans["builds"].([]any)
	if !ok {
		t.Fatalf("answer without builds: %v", ans)
	}
	ids := make([]string, len(raw))
	for i, v := range raw {
		ids[i], _ = v.(string)
	}
	return ids
}

var finalStatus = map[string]bool{"SUCCESS": true, "FAILED": true, "CANCELED": true, "BLOCKED": true}

// waitBuild polls a build until it is final (or until status, when given), and returns it.
func waitBuild(t testing.TB, in *apptest.Instance, repo, id string, timeout time.Duration, until ...string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		r := in.Admin(t, "GET", "/api/v1/repositories/"+repo+"/builds/"+id, nil)
		if r.Status != 200 {
			t.Fatalf("get build: %d %s", r.Status, r.Body)
		}
		st, _ := r.JSON["status"].(string)
		if finalStatus[st] || (len(until) > 0 && st == until[0]) {
			return r.JSON
		}
		if time.Now().After(deadline) {
			t.Fatalf("build %s still %s after %v; log:\n%s", id, st, timeout, buildLog(t, in, repo, id))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func buildLog(t testing.TB, in *apptest.Instance, repo, id string) string {
	t.Helper()
	r := in.Admin(t, "GET", "/api/v1/repositories/"+repo+"/builds/"+id+"/logs", nil)
	if r.Status != 200 {
		t.Fatalf("build log: %d %s", r.Status, r.Body)
	}
	return string(r.Body)
}

// requireSuccess fails the test with the build's log unless it succeeded.
func requireSuccess(t testing.TB, in *apptest.Instance, repo string, b map[string]any) {
	t.Helper()
	if b["status"] != "SUCCESS" {
		t.Fatalf("build %v is %v (%v); log:\n%s", b["id"], b["status"], b["error"], buildLog(t, in, repo, b["id"].(string)))
	}
}

// stepRE matches the vertices the Dockerfile frontend names after its instructions ("[2/3] RUN …",
// "[build 1/2] RUN …"), as workers/buildkit counts them.
var stepRE = regexp.MustCompile(`^\[[^\]]*\b\d+/\d+\] `)

// cachedSteps returns the Dockerfile steps a plain progress log shows as CACHED, FROM excluded, and all steps.
func cachedSteps(log string) (cached, steps []string) {
	names := map[string]string{}
	for _, line := range strings.Split(log, "\n") {
		id, rest, ok := strings.Cut(line, " ")
		if !ok || !strings.HasPrefix(id, "#") {
			continue
		}
		if loc := stepRE.FindStringIndex(rest); loc != nil && !strings.HasPrefix(rest[loc[1]:], "FROM ") && names[id] == "" {
			names[id] = rest
			steps = append(steps, rest)
		}
		if rest == "CACHED" && names[id] != "" {
			cached = append(cached, names[id])
		}
	}
	return cached, steps
}

// pushBusybox makes HOST/library/busybox:latest from Debian's busybox-static, pushed as the administrator.
func pushBusybox(t *testing.T, in *apptest.Instance) string {
	t.Helper()
	img, err := buildkittest.BusyboxImage()
	need(t, buildkittest.BusyboxBinary, err)
	ref := in.Host + "/library/busybox:latest"
	tag, err := name.NewTag(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(tag, img, remote.WithAuth(&authn.Basic{Username: "admin", Password: apptest.AdminPassword}),
		remote.WithContext(t.Context())); err != nil {
		t.Fatalf("push base image: %v", err)
	}
	return ref
}

// pulledFiles pulls ref out of the registry with skopeo (as the administrator) and returns its regular files
// (path → content), busybox itself left out.
func pulledFiles(t *testing.T, ref string) map[string]string {
	t.Helper()
	dir := t.TempDir()
	out, err := exec.Command("skopeo", "copy", "-q", "--src-tls-verify=false", "--src-creds", "admin:"+apptest.AdminPassword,
		"docker://"+ref, "oci:"+dir+":img").CombinedOutput()
	if err != nil {
		t.Fatalf("skopeo copy %s: %v\n%s", ref, err, out)
	}
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil || len(im.Manifests) != 1 {
		t.Fatalf("oci layout: %v %v", im, err)
	}
	img, err := idx.Image(im.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	files, err := buildkittest.Files(img)
	if err != nil {
		t.Fatal(err)
	}
	return files
}
