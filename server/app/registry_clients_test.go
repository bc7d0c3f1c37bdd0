package app_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/berth-dev/berth/server/app/apptest"
)

// needTool skips when a client is missing outside CI; in CI (the test command installs them) it fails.
func needTool(t *testing.T, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("%s is not installed; the test command installs it (scripts/install-test-deps.sh)", n)
			}
			t.Skipf("%s is not installed (run scripts/install-test-deps.sh)", n)
		}
	}
}

func pushRandom(t *testing.T, ref, user, pass string) string {
	t.Helper()
	img, err := random.Image(2048, 2)
	if err != nil {
		t.Fatal(err)
	}
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img, remote.WithAuth(&authn.Basic{Username: user, Password: pass})); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
	d, _ := img.Digest()
	return d.String()
}

// podmanService runs `podman system service` as a stand-in Docker engine for the docker CLI, with its own
// storage and a registries.conf that lets it speak plain HTTP to localhost registries.
func podmanService(t *testing.T) (env []string) {
	t.Helper()
	dir, err := os.MkdirTemp("/tmp", "berth-pm-") // short: the socket path must stay under 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	conf := write("containers.conf", "[containers]\ndefault_ulimits = [\"nofile=1024:1024\"]\n[engine]\nruntime = \"runc\"\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\n")
	regs := write("registries.conf", "unqualified-search-registries = []\n[[registry]]\nprefix = \"localhost\"\nlocation = \"localhost\"\ninsecure = true\n")
	sock := filepath.Join(dir, "podman.sock")
	cmd := exec.Command("podman", "--root", filepath.Join(dir, "root"), "--runroot", filepath.Join(dir, "run"),
		"--storage-driver", "vfs", "system", "service", "--time=0", "unix://"+sock)
	cmd.Env = append(os.Environ(), "CONTAINERS_CONF="+conf, "CONTAINERS_REGISTRIES_CONF="+regs)
	out, _ := os.Create(filepath.Join(dir, "service.log"))
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		_ = exec.Command("umount", "-R", filepath.Join(dir, "root")).Run()
	})
	env = append(os.Environ(), "DOCKER_HOST=unix://"+sock, "DOCKER_CONFIG="+filepath.Join(dir, "docker"))
	for i := 0; ; i++ {
		if c := exec.Command("docker", "version"); true {
			c.Env = env
			if c.Run() == nil {
				return env
			}
		}
		if i > 100 {
			log, _ := os.ReadFile(filepath.Join(dir, "service.log"))
			t.Fatalf("podman system service did not answer: %s", log)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// dockerConfigDir is the DOCKER_CONFIG of env.
func dockerConfigDir(env []string) string {
	for _, e := range env {
		if v, ok := strings.CutPrefix(e, "DOCKER_CONFIG="); ok {
			return v
		}
	}
	return ""
}

// TestDockerCLI drives the real docker CLI (against podman's Docker API; TestDockerEngine in server/ uses the
// real Docker Engine) through login, push, a PRIVATE pull,
// and a PUBLIC pull after logout, while an anonymous PRIVATE pull is refused.
func TestDockerCLI(t *testing.T) {
	needTool(t, "docker", "podman", "runc")
	in := apptest.Start(t, apptest.Options{})
	in.Admin(t, "POST", "/api/v1/namespaces", map[string]any{"name": "team"})
	in.Admin(t, "POST", "/api/v1/namespaces/team/repositories", map[string]any{"name": "pub", "visibility": "PUBLIC"})
	// Podman's Docker API only drops TLS for "localhost:" registries, so the CLI uses that host name.
	host := strings.Replace(in.Host, "127.0.0.1", "localhost", 1)
	pushRandom(t, in.Host+"/team/private:v1", "admin", apptest.AdminPassword)

	env := podmanService(t)
	docker := func(args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		c := exec.CommandContext(ctx, "docker", args...)
		c.Env = env
		out, err := c.CombinedOutput()
		return string(out), err
	}
	must := func(args ...string) {
		t.Helper()
		if out, err := docker(args...); err != nil {
			t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	// Podman's answer to a refused pull: the registry's 401 for the manifest after an anonymous token.
	refused := "initializing source docker://" + host + "/team/private:v1: reading manifest v1 in " + host +
		"/team/private: errors:\ndenied: requested access to the resource is denied\nunauthorized: authentication required"
	if out, err := docker("pull", host+"/team/private:v1"); err == nil || strings.TrimSpace(out) != refused {
		t.Fatalf("anonymous pull of a PRIVATE image: err=%v\n got %s\nwant %s", err, out, refused)
	}
	if out, err := docker("image", "inspect", host+"/team/private:v1"); err == nil {
		t.Fatalf("the refused image is in the engine:\n%s", out)
	}
	out, err := docker("login", host, "-u", "admin", "-p", "wrong-password")
	if want := "Error response from daemon: login attempt to " + host + " failed with status: 401 Unauthorized"; err == nil ||
		!strings.HasSuffix(strings.TrimSpace(out), "\n"+want) {
		t.Fatalf("login with a wrong password: err=%v\n got %s\nwant %s", err, out, want)
	}
	if cfg, _ := os.ReadFile(filepath.Join(dockerConfigDir(env), "config.json")); strings.Contains(string(cfg), host) {
		t.Fatalf("a refused login was stored: %s", cfg)
	}
	must("login", host, "-u", "admin", "-p", apptest.AdminPassword)
	must("pull", host+"/team/private:v1")
	must("tag", host+"/team/private:v1", host+"/team/pub:v2")
	must("push", host+"/team/pub:v2")
	must("logout", host)
	must("rmi", host+"/team/pub:v2")
	must("pull", host+"/team/pub:v2")
	if out, err := docker("pull", host+"/team/private:v1"); err == nil || strings.TrimSpace(out) != refused {
		t.Fatalf("PRIVATE pull after logout: err=%v\n got %s\nwant %s", err, out, refused)
	}
	r := in.Admin(t, "GET", "/api/v1/repositories/team/pub/tags/v2", nil)
	if r.Status != 200 || !strings.HasPrefix(fmt.Sprint(r.JSON["digest"]), "sha256:") {
		t.Fatalf("pushed version not recorded: %s", r.Body)
	}
}

// TestAnonymousAccess checks the token flow for PRIVATE and PUBLIC repositories without a client library.
func TestAnonymousAccess(t *testing.T) {
	in := apptest.Start(t, apptest.Options{})
	in.Admin(t, "POST", "/api/v1/namespaces", map[string]any{"name": "team"})
	in.Admin(t, "POST", "/api/v1/namespaces/team/repositories", map[string]any{"name": "open", "visibility": "PUBLIC"})
	pushRandom(t, in.Host+"/team/secret:v1", "admin", apptest.AdminPassword)
	pushRandom(t, in.Host+"/team/open:v1", "admin", apptest.AdminPassword)
	r := in.Admin(t, "GET", "/api/v1/repositories/team/secret", nil)
	if r.JSON["origin"] != "PUSH" || r.JSON["visibility"] != "PRIVATE" {
		t.Fatalf("auto-created repository: %s", r.Body)
	}
	for _, c := range []struct {
		repo string
		ok   bool
	}{{"team/open", true}, {"team/secret", false}} {
		ref, _ := name.ParseReference(in.Host+"/"+c.repo+":v1", name.Insecure)
		_, err := remote.Get(ref, remote.WithAuth(authn.Anonymous))
		if (err == nil) != c.ok {
			t.Fatalf("anonymous pull of %s: err=%v, want ok=%v", c.repo, err, c.ok)
		}
		if !c.ok && !strings.Contains(err.Error(), "UNAUTHORIZED") {
			t.Fatalf("anonymous PRIVATE pull should be UNAUTHORIZED: %v", err)
		}
	}
	resp, err := http.Get(in.URL + "/v2/team/secret/manifests/v1")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 || !strings.Contains(resp.Header.Get("WWW-Authenticate"), `scope="repository:team/secret:pull"`) {
		t.Fatalf("challenge: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	// auto_create_repo off: a push to a new name is refused with NAME_UNKNOWN and says why.
	in.Admin(t, "PATCH", "/api/v1/namespaces/team", map[string]any{"auto_create_repo": false})
	img, _ := random.Image(100, 1)
	ref, _ := name.ParseReference(in.Host+"/team/brand-new:v1", name.Insecure)
	err = remote.Write(ref, img, remote.WithAuth(&authn.Basic{Username: "admin", Password: apptest.AdminPassword}))
	if err == nil || !strings.Contains(err.Error(), "NAME_UNKNOWN") || !strings.Contains(err.Error(), "auto_create_repo") {
		t.Fatalf("push with auto_create_repo off: %v", err)
	}
	// A namespace that does not exist.
	ref, _ = name.ParseReference(in.Host+"/nons/x1:v1", name.Insecure)
	err = remote.Write(ref, img, remote.WithAuth(&authn.Basic{Username: "admin", Password: apptest.AdminPassword}))
	if err == nil || !strings.Contains(err.Error(), "NAME_UNKNOWN") {
		t.Fatalf("push to a missing namespace: %v", err)
	}
}
