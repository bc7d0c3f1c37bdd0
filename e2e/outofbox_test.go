// Package e2e runs Berth as a new user does: the README's first command in a fresh clone, then the walkthrough.
package e2e

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/berth-dev/berth/workers/buildkit/buildkittest"
)

const password = "out-of-the-box-password"

// firstCommand is the README's first command, read from README.md so the test runs it as written.
func firstCommand(t *testing.T, root string) []string {
	t.Helper()
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?m)^(go run \\S+ run|task run)$").FindSubmatch(readme)
	if m == nil {
		t.Fatal("README.md has no first command line `go run … run` or `task run`")
	}
	return strings.Fields(string(m[1]))
}

func need(t *testing.T, what string, err error) {
	t.Helper()
	if err == nil {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("CI is set and %s is missing: %v", what, err)
	}
	t.Skipf("%s is missing: %v", what, err)
}

func run(t *testing.T, dir string, name string, args ...string) string {
	t.Helper()
	c := exec.Command(name, args...)
	c.Dir = dir
	out, err := c.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// berthProcess is the README command running in its own process group, its output kept and logged.
type berthProcess struct {
	cmd  *exec.Cmd
	mu   sync.Mutex
	out  bytes.Buffer
	done chan struct{}
}

func start(t *testing.T, dir string, argv []string, env []string) *berthProcess {
	t.Helper()
	p := &berthProcess{cmd: exec.Command(argv[0], argv[1:]...), done: make(chan struct{})}
	p.cmd.Dir = dir
	p.cmd.Env = env
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	pr, pw := io.Pipe()
	p.cmd.Stdout, p.cmd.Stderr = pw, pw
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			p.mu.Lock()
			p.out.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
			if strings.HasPrefix(sc.Text(), "prepare:") || strings.Contains(sc.Text(), "level=WARN") {
				t.Log(sc.Text())
			}
		}
	}()
	go func() { _ = p.cmd.Wait(); pw.Close(); close(p.done) }()
	return p
}

func (p *berthProcess) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// stop sends SIGTERM to the whole group (task, berth and its children) and waits.
func (p *berthProcess) stop(t *testing.T) {
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(60 * time.Second):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
		t.Errorf("the README command did not stop within 60 s of SIGTERM")
	}
}

func waitReady(t *testing.T, p *berthProcess, url string, timeout time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		if resp, err := http.Get(url + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return time.Since(start)
			}
		}
		select {
		case <-p.done:
			t.Fatalf("the README command exited before /readyz answered:\n%s", p.output())
		default:
		}
		if time.Since(start) > timeout {
			t.Fatalf("not ready within %v:\n%s", timeout, p.output())
		}
		time.Sleep(250 * time.Millisecond)
	}
}

type client struct {
	t   *testing.T
	url string
}

func (c client) call(method, path string, body any) (int, map[string]any) {
	c.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, c.url+path, rd)
	req.SetBasicAuth("admin", password)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m
}

func (c client) must(want int, method, path string, body any) map[string]any {
	c.t.Helper()
	code, m := c.call(method, path, body)
	if code != want {
		c.t.Fatalf("%s %s: %d %v, want %d", method, path, code, m, want)
	}
	return m
}

// gitServer serves a bare repository with `git http-backend` and commits files into it.
func gitServer(t *testing.T, files map[string]string) (url, commit string) {
	t.Helper()
	root := t.TempDir()
	bare, work := filepath.Join(root, "app.git"), filepath.Join(root, "work")
	run(t, "", "git", "init", "-q", "--bare", "-b", "main", bare)
	run(t, "", "git", "init", "-q", "-b", "main", work)
	for p, body := range files {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(work, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(work, p), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	run(t, work, "git", "add", "-A")
	run(t, work, "git", "-c", "user.email=dev@example.com", "-c", "user.name=Dev", "commit", "-q", "-m", "app")
	run(t, work, "git", "push", "-q", bare, "main")
	commit = strings.TrimSpace(run(t, work, "git", "rev-parse", "HEAD"))
	execPath := strings.TrimSpace(run(t, "", "git", "--exec-path"))
	srv := httptest.NewServer(&cgi.Handler{Path: filepath.Join(execPath, "git-http-backend"),
		Env: []string{"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1"}})
	t.Cleanup(srv.Close)
	return srv.URL + "/app.git", commit
}

// TestOutOfTheBox runs the README's first command, as written, in a fresh clone with no bin/ (so it installs
// runc, builds buildkitd, buildctl, berth-scanner and berth), then the walkthrough with nothing else: a DB
// built with `berth admin scan-db build` and pushed with `berth admin scan-db push` as Trivy's artifact into
// Berth's own registry (named by --scan-db-repository), a git http-backend repository connected, a signed push
// webhook, build SUCCESS, scan DONE finding the advisory's CVE, and `docker pull` by the real Docker Engine.
// Then it runs the command again and shows it ready within 30 s.
func TestOutOfTheBox(t *testing.T) {
	for _, tool := range []string{"git", "docker"} {
		_, err := exec.LookPath(tool)
		need(t, tool, err)
	}
	_, err := os.Stat(buildkittest.BusyboxBinary)
	need(t, "busybox-static", err)
	if os.Geteuid() != 0 {
		need(t, "root (BuildKit's runc worker)", fmt.Errorf("uid %d", os.Geteuid()))
	}
	if out, err := exec.Command("docker", "info", "--format", "{{.ServerVersion}}").CombinedOutput(); err != nil {
		need(t, "a running Docker Engine", fmt.Errorf("%v: %s", err, out))
	}
	src, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	clone := filepath.Join(tmp, "berth")
	run(t, "", "git", "clone", "-q", src, clone)
	if _, err := os.Stat(filepath.Join(clone, "bin")); !os.IsNotExist(err) {
		t.Fatalf("the fresh clone has bin/: %v", err)
	}
	argv := firstCommand(t, clone)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	host := ln.Addr().String()
	ln.Close()
	url := "http://" + host
	dbRepo := host + "/mirror/trivy-db:2"
	env := append(os.Environ(), "BERTH_ADMIN_PASSWORD="+password, "BERTH_SCAN_DB_REPOSITORY="+dbRepo,
		"BERTH_SCAN_DB_USERNAME=admin", "BERTH_SCAN_DB_PASSWORD="+password, "BERTH_SCAN_DB_CHECK_INTERVAL=1s")
	args := append(append([]string{}, argv...), "ADDR="+host, "DATA_DIR="+filepath.Join(tmp, "data"))

	begin := time.Now()
	p := start(t, clone, args, env)
	t.Cleanup(func() { p.stop(t) })
	took := waitReady(t, p, url, 25*time.Minute)
	t.Logf("first run (%s): ready in %v", strings.Join(args, " "), took.Round(time.Second))
	for _, step := range []string{"prepare: 2/4 building buildkitd", "prepare: 3/4 building berth-scanner", "prepare: 4/4 building berth"} {
		if !strings.Contains(p.output(), step) {
			t.Errorf("the first run does not show %q:\n%s", step, p.output())
		}
	}
	for _, bin := range []string{"buildkitd", "buildctl", "berth-scanner", "berth"} {
		if _, err := os.Stat(filepath.Join(clone, "bin", bin)); err != nil {
			t.Errorf("bin/%s: %v", bin, err)
		}
	}
	c := client{t, url}
	code, ready := c.call("GET", "/readyz", nil)
	if b, _ := ready["checks"].(map[string]any)["builds"].(map[string]any); code != 200 || b["ok"] != true {
		t.Fatalf("/readyz after the first run: %d %v", code, ready)
	}

	// The vulnerability DB: built and pushed with the clone's own berth, into Berth's registry.
	c.must(201, "POST", "/api/v1/namespaces", map[string]any{"name": "mirror"})
	berth := filepath.Join(clone, "bin", "berth")
	run(t, clone, berth, "admin", "scan-db", "build", "--advisories", "workers/scandb/testdata/advisories.json", "--out", filepath.Join(tmp, "db"))
	push := exec.Command(berth, "admin", "scan-db", "push", "--from", filepath.Join(tmp, "db"), "--to", dbRepo, "--username", "admin")
	push.Env = append(os.Environ(), "BERTH_SCAN_DB_PASSWORD="+password)
	if out, err := push.CombinedOutput(); err != nil || !strings.Contains(string(out), "pushed "+dbRepo+"@sha256:") {
		t.Fatalf("berth admin scan-db push: %v\n%s", err, out)
	}

	// A base image (busybox-static) in a PUBLIC namespace, and the application's repository.
	c.must(201, "POST", "/api/v1/namespaces", map[string]any{"name": "library", "default_visibility": "PUBLIC"})
	c.must(201, "POST", "/api/v1/namespaces", map[string]any{"name": "team"})
	bb, err := buildkittest.BusyboxImage()
	if err != nil {
		t.Fatal(err)
	}
	base := host + "/library/busybox:latest"
	ref, _ := name.ParseReference(base)
	if err := remote.Write(ref, bb, remote.WithAuth(&authn.Basic{Username: "admin", Password: password})); err != nil {
		t.Fatal(err)
	}
	c.must(201, "POST", "/api/v1/namespaces/team/repositories", map[string]any{"name": "app", "visibility": "PRIVATE"})
	gitURL, commit := gitServer(t, map[string]string{
		"Dockerfile":                  "FROM " + base + "\nCOPY rootfs/ /\nCMD [\"cat\", \"/hello.txt\"]\n",
		"rootfs/hello.txt":            "hello out of the box\n",
		"rootfs/etc/alpine-release":   "3.22.0\n",
		"rootfs/etc/os-release":       "NAME=\"Alpine Linux\"\nID=alpine\nVERSION_ID=3.22.0\n",
		"rootfs/lib/apk/db/installed": "C:Q1" + strings.Repeat("A", 27) + "=\nP:musl\nV:1.2.5-r8\nA:x86_64\nS:1000\nI:2000\nT:musl\nU:https://musl.libc.org/\nL:MIT\no:musl\n\n",
	})
	src2 := c.must(201, "PUT", "/api/v1/repositories/team/app/source", map[string]any{"provider": "github", "url": gitURL})
	c.must(201, "POST", "/api/v1/repositories/team/app/build-rules", map[string]any{"source_type": "BRANCH", "source_ref": "main", "image_tag": "latest"})

	// The signed push webhook.
	body, _ := json.Marshal(map[string]any{"ref": "refs/heads/main", "before": strings.Repeat("0", 40), "after": commit,
		"head_commit": map[string]any{"id": commit}, "repository": map[string]any{"clone_url": gitURL}})
	mac := hmac.New(sha256.New, []byte(src2["webhook_secret"].(string)))
	mac.Write(body)
	req, _ := http.NewRequest("POST", src2["webhook_url"].(string), bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-GitHub-Event", "push")
	req.Header.Set("X-GitHub-Delivery", "out-of-the-box-1")
	req.Header.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(mac.Sum(nil)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var hook map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&hook)
	resp.Body.Close()
	ids, _ := hook["builds"].([]any)
	if resp.StatusCode != 202 || len(ids) != 1 {
		t.Fatalf("webhook: %d %v", resp.StatusCode, hook)
	}
	deadline := time.Now().Add(5 * time.Minute)
	for {
		b := c.must(200, "GET", fmt.Sprintf("/api/v1/repositories/team/app/builds/%s", ids[0]), nil)
		if b["status"] == "SUCCESS" {
			break
		}
		if s := b["status"]; s == "FAILED" || s == "CANCELED" || s == "BLOCKED" || time.Now().After(deadline) {
			t.Fatalf("build: %v", b)
		}
		time.Sleep(500 * time.Millisecond)
	}
	deadline = time.Now().Add(3 * time.Minute)
	for {
		s := c.must(200, "GET", "/api/v1/repositories/team/app/tags/latest/scan", nil)
		vulns, _ := s["vulnerabilities"].([]any)
		if s["status"] == "DONE" && s["db_version"] == "2026-01-02T03:04:05Z" {
			if len(vulns) != 1 || vulns[0].(map[string]any)["id"] != "CVE-2025-26519" {
				t.Fatalf("scan: %v", s)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("scan never DONE with the registry's DB: %v\n%v", s, c.must(200, "GET", "/api/v1/system/scanner", nil))
		}
		time.Sleep(500 * time.Millisecond)
	}

	// docker pull by the real engine, logged in with temporary credentials.
	tok := c.must(200, "POST", "/api/v1/auth/token", map[string]any{})
	dockerCfg := t.TempDir()
	docker := func(stdin string, args ...string) string {
		t.Helper()
		cmd := exec.Command("docker", args...)
		cmd.Env = append(os.Environ(), "DOCKER_CONFIG="+dockerCfg)
		cmd.Stdin = strings.NewReader(stdin)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	image := host + "/team/app:latest"
	t.Cleanup(func() { _ = exec.Command("docker", "rmi", "-f", image).Run() })
	docker(tok["password"].(string), "login", host, "-u", "admin", "--password-stdin")
	docker("", "pull", image)
	if out := docker("", "run", "--rm", "--network", "none", image); out != "hello out of the box\n" {
		t.Fatalf("docker run printed %q", out)
	}
	t.Logf("first run to docker pull: %v", time.Since(begin).Round(time.Second))

	// The second run: nothing is rebuilt, ready within 30 s.
	p.stop(t)
	p = start(t, clone, args, env)
	took = waitReady(t, p, url, 30*time.Second)
	t.Logf("second run: ready in %v", took.Round(100*time.Millisecond))
	if out := p.output(); strings.Contains(out, "building buildkitd") || strings.Contains(out, "building berth-scanner") {
		t.Errorf("the second run rebuilt:\n%s", out)
	}
}
