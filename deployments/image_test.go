// Package deployments holds the shipped deployment files; its test builds and runs the image.
package deployments

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/berth-dev/berth/workers/buildkit/buildkittest"
	"github.com/berth-dev/berth/workers/scandb"
)

const password = "image-test-password"

func needDocker(t *testing.T) {
	t.Helper()
	if out, err := exec.Command("docker", "info", "--format", "{{.ServerVersion}}").CombinedOutput(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("CI is set and there is no Docker Engine: %v %s", err, out)
		}
		t.Skipf("no Docker Engine: %v %s", err, out)
	}
}

func sh(t *testing.T, dir string, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	c := exec.CommandContext(ctx, name, args...)
	c.Dir = dir
	out, err := c.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// vulnerableImage is a minimal Alpine 3.22 root with musl 1.2.5-r8 (CVE-2025-26519, fixed in 1.2.5-r9).
func vulnerableImage(t *testing.T) v1.Image {
	t.Helper()
	files := map[string]string{
		"etc/alpine-release": "3.22.0\n",
		"etc/os-release":     "NAME=\"Alpine Linux\"\nID=alpine\nVERSION_ID=3.22.0\n",
		"lib/apk/db/installed": "C:Q1" + strings.Repeat("A", 27) + "=\nP:musl\nV:1.2.5-r8\nA:x86_64\nS:1000\nI:2000\n" +
			"T:the musl c library\nU:https://musl.libc.org/\nL:MIT\no:musl\n\n",
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, d := range []string{"etc/", "lib/", "lib/apk/", "lib/apk/db/"} {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d, Mode: 0o755}); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range []string{"etc/alpine-release", "etc/os-release", "lib/apk/db/installed"} {
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
	data := buf.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(empty.Image, l)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// buildImage stages the image's files and builds deployments/Dockerfile with the real engine (FROM scratch:
// nothing pulled), as `task image` does; the image is removed when the test ends.
func buildImage(t *testing.T) (root, image string) {
	t.Helper()
	needDocker(t)
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	sh(t, root, "scripts/image-rootfs.sh")
	image = fmt.Sprintf("berth-image-test:%d", time.Now().UnixNano())
	start := time.Now()
	sh(t, root, "docker", "build", "-q", "-f", "deployments/Dockerfile", "-t", image, ".")
	t.Logf("docker build: %v", time.Since(start))
	t.Cleanup(func() { _ = exec.Command("docker", "rmi", "-f", image).Run() })
	return root, image
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// removeOnCleanup removes the container when the test ends, logging its last lines if the test failed.
func removeOnCleanup(t *testing.T, container string) {
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := exec.Command("docker", "logs", "--tail", "60", container).CombinedOutput()
			t.Logf("container log:\n%s", out)
		}
		_ = exec.Command("docker", "rm", "-f", "-v", container).Run()
	})
}

// TestImage builds deployments/Dockerfile with the real engine (FROM scratch: nothing pulled), runs it, waits
// for /readyz, mirrors a vulnerability DB in Trivy's artifact format into the running Berth itself (named by
// BERTH_SCAN_DB_REPOSITORY), pushes a vulnerable image into it and sees the scan find the advisory's CVE.
func TestImage(t *testing.T) {
	root, image := buildImage(t)
	start := time.Now()
	port := freePort(t)
	host := fmt.Sprintf("127.0.0.1:%d", port)
	dbRepo := host + "/mirror/trivy-db:2"
	container := strings.TrimSpace(sh(t, root, "docker", "run", "-d", "-p", fmt.Sprintf("%s:%d", host, port),
		"-e", "BERTH_ADMIN_PASSWORD="+password, "-e", "BERTH_SCAN_DB_REPOSITORY="+dbRepo,
		"-e", "BERTH_SCAN_DB_USERNAME=admin", "-e", "BERTH_SCAN_DB_PASSWORD="+password,
		"-e", "BERTH_SCAN_DB_CHECK_INTERVAL=500ms", image,
		"serve", "--addr", fmt.Sprintf("0.0.0.0:%d", port), "--data-dir", "/var/lib/berth", "--public-url", "http://"+host))
	removeOnCleanup(t, container)

	call := func(method, path string, body any) (int, map[string]any) {
		t.Helper()
		var rd io.Reader
		if body != nil {
			b, _ := json.Marshal(body)
			rd = bytes.NewReader(b)
		}
		req, _ := http.NewRequest(method, "http://"+host+path, rd)
		req.SetBasicAuth("admin", password)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, nil
		}
		defer resp.Body.Close()
		var m map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&m)
		return resp.StatusCode, m
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		code, ready := call("GET", "/readyz", nil)
		if code == 200 {
			t.Logf("/readyz after %v: %v", time.Since(start), ready)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz never 200: %d %v", code, ready)
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, ns := range []string{"mirror", "demo"} {
		if code, m := call("POST", "/api/v1/namespaces", map[string]any{"name": ns, "auto_create_repo": true}); code != 201 {
			t.Fatalf("namespace %s: %d %v", ns, code, m)
		}
	}

	f, err := os.Open(filepath.Join(root, "workers", "scandb", "testdata", "advisories.json"))
	if err != nil {
		t.Fatal(err)
	}
	adv, err := scandb.LoadAdvisories(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	dbDir := t.TempDir()
	if err := scandb.Build(context.Background(), adv, dbDir); err != nil {
		t.Fatal(err)
	}
	if _, err := scandb.Push(context.Background(), dbDir, scandb.Remote{Repository: dbRepo, Username: "admin", Password: password}); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(60 * time.Second)
	for {
		_, st := call("GET", "/api/v1/system/scanner", nil)
		if st["state"] == "ready" {
			if st["db_version"] != "2026-01-02T03:04:05Z" || st["scanner"] != "/usr/local/bin/berth-scanner" {
				t.Fatalf("scanner status: %v", st)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the scanner never got the DB: %v", st)
		}
		time.Sleep(200 * time.Millisecond)
	}

	ref, err := name.ParseReference(host + "/demo/app:1")
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, vulnerableImage(t), remote.WithAuth(&authn.Basic{Username: "admin", Password: password})); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(2 * time.Minute)
	for {
		code, scan := call("GET", "/api/v1/repositories/demo/app/tags/1/scan", nil)
		if code == 200 && (scan["status"] == "DONE" || scan["status"] == "FAILED") {
			vulns, _ := scan["vulnerabilities"].([]any)
			if scan["status"] != "DONE" || len(vulns) != 1 || vulns[0].(map[string]any)["id"] != "CVE-2025-26519" {
				t.Fatalf("scan in the image: %v", scan)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("scan never finished: %d %v", code, scan)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestImageLoginAsDocumented runs the image as the README says, with nothing but BERTH_ADMIN_PASSWORD and a
// published port (its own --addr 0.0.0.0:5000, no --public-url), and uses it with the real Docker CLI and
// Engine: the challenge names the address the client used, not [::]:5000 or 0.0.0.0:5000; `docker login`,
// `docker push` of a local busybox image and `docker pull` of it work.
func TestImageLoginAsDocumented(t *testing.T) {
	_, image := buildImage(t)
	host := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	out, err := exec.Command("docker", "run", "-d", "-p", host+":5000", "-e", "BERTH_ADMIN_PASSWORD="+password, image).CombinedOutput()
	if err != nil {
		t.Fatalf("docker run: %v\n%s", err, out)
	}
	removeOnCleanup(t, strings.TrimSpace(string(out)))
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get("http://" + host + "/v2/")
		if err == nil {
			resp.Body.Close()
			want := `Bearer realm="http://` + host + `/token",service="` + host + `"`
			if got := resp.Header.Get("WWW-Authenticate"); resp.StatusCode == 401 && got != want {
				t.Fatalf("GET /v2/: challenge %q, want %q", got, want)
			} else if resp.StatusCode == 401 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the registry never answered: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	req, _ := http.NewRequest("POST", "http://"+host+"/api/v1/namespaces", strings.NewReader(`{"name":"demo","auto_create_repo":true}`))
	req.SetBasicAuth("admin", password)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 201 {
		t.Fatalf("namespace: %v %v", err, resp)
	}
	resp.Body.Close()

	// A local image, made here (nothing can be pulled): busybox-static in one layer, loaded into the engine.
	img, err := buildkittest.BusyboxImage()
	if err != nil {
		t.Fatalf("no local image to push: %v", err)
	}
	ref := host + "/demo/busybox:1"
	tag, err := name.NewTag(ref)
	if err != nil {
		t.Fatal(err)
	}
	tarPath := filepath.Join(t.TempDir(), "busybox.tar")
	if err := tarball.WriteToFile(tarPath, tag, img); err != nil {
		t.Fatal(err)
	}
	dockerCfg := t.TempDir()
	docker := func(stdin string, args ...string) string {
		t.Helper()
		c := exec.Command("docker", args...)
		c.Env = append(os.Environ(), "DOCKER_CONFIG="+dockerCfg)
		c.Stdin = strings.NewReader(stdin)
		out, err := c.CombinedOutput()
		if err != nil {
			t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	docker("", "load", "-i", tarPath)
	t.Cleanup(func() { _ = exec.Command("docker", "rmi", "-f", ref).Run() })
	docker(password, "login", host, "-u", "admin", "--password-stdin")
	docker("", "push", ref)
	docker("", "rmi", ref)
	docker("", "pull", ref)
	if out := docker("", "run", "--rm", ref, "echo", "pulled from berth"); !strings.Contains(out, "pulled from berth") {
		t.Fatalf("docker run of the pulled image: %s", out)
	}
}
