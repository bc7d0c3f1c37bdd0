package app_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/berth-dev/berth/server/app/apptest"
)

// run runs a client command and returns its combined output, failing the test when it fails.
func run(t *testing.T, env []string, bin string, args ...string) string {
	t.Helper()
	out, err := runErr(env, bin, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", bin, strings.Join(args, " "), err, out)
	}
	return out
}

func runErr(env []string, bin string, args ...string) (string, error) {
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestCrane: crane logs in, pushes a three-layer image, lists, resolves, pulls it back byte for byte and
// copies it to a new tag; without credentials its push is refused (401).
func TestCrane(t *testing.T) {
	crane := apptest.GoTool(t, "crane")
	in := apptest.Start(t, apptest.Options{})
	if r := in.Admin(t, "POST", "/api/v1/namespaces", map[string]any{"name": "team", "auto_create_repo": true}); r.Status != 201 {
		t.Fatalf("namespace: %s", r.Body)
	}
	dir := t.TempDir()
	img, err := random.Image(64<<10, 3)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := img.Digest()
	ref := in.Host + "/team/crane:v1"
	tag, _ := name.NewTag(ref, name.Insecure)
	if err := tarball.WriteToFile(filepath.Join(dir, "img.tar"), tag, img); err != nil {
		t.Fatal(err)
	}

	anon := []string{"DOCKER_CONFIG=" + t.TempDir()}
	if out, err := runErr(anon, crane, "push", "--insecure", filepath.Join(dir, "img.tar"), ref); err == nil ||
		!strings.Contains(out, "401 Unauthorized") {
		t.Fatalf("anonymous crane push: %v\n%s", err, out)
	}

	env := []string{"DOCKER_CONFIG=" + t.TempDir()}
	run(t, env, crane, "auth", "login", "--insecure", in.Host, "-u", "admin", "-p", apptest.AdminPassword)
	if out := run(t, env, crane, "push", "--insecure", filepath.Join(dir, "img.tar"), ref); !strings.Contains(out, want.String()) {
		t.Fatalf("crane push printed %q, want the digest %s", out, want)
	}
	if out := strings.TrimSpace(run(t, env, crane, "digest", "--insecure", ref)); out != want.String() {
		t.Fatalf("crane digest: %q, want %s", out, want)
	}
	run(t, env, crane, "copy", "--insecure", ref, in.Host+"/team/crane:v2")
	if out := strings.Fields(run(t, env, crane, "ls", "--insecure", in.Host+"/team/crane")); strings.Join(out, ",") != "v1,v2" {
		t.Fatalf("crane ls: %q", out)
	}
	run(t, env, crane, "pull", "--insecure", "--format", "tarball", in.Host+"/team/crane:v2", filepath.Join(dir, "pulled.tar"))
	pulled, err := tarball.ImageFromPath(filepath.Join(dir, "pulled.tar"), nil)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := pulled.Digest()
	layers, _ := pulled.Layers()
	if got != want || len(layers) != 3 {
		t.Fatalf("pulled %s with %d layers, pushed %s with 3", got, len(layers), want)
	}
}

// TestOras: oras pushes an artifact of two files with its own artifact type, pulls the files back, attaches
// a signature-like artifact to it as a referrer, and discovers that referrer through the registry.
func TestOras(t *testing.T) {
	oras := apptest.GoTool(t, "oras")
	in := apptest.Start(t, apptest.Options{})
	if r := in.Admin(t, "POST", "/api/v1/namespaces", map[string]any{"name": "team", "auto_create_repo": true}); r.Status != 201 {
		t.Fatalf("namespace: %s", r.Body)
	}
	work := t.TempDir()
	for f, body := range map[string]string{"readme.txt": "hello from oras\n", "config.json": `{"a":1}`} {
		if err := os.WriteFile(filepath.Join(work, f), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cfg := []string{"--registry-config", filepath.Join(t.TempDir(), "auth.json")}
	ref := in.Host + "/team/artifact:v1"
	orasIn := func(args ...string) string {
		cmd := exec.Command(oras, args...)
		cmd.Dir = work
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("oras %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	anon := exec.Command(oras, "push", "--plain-http", "--registry-config", filepath.Join(t.TempDir(), "none.json"), ref, "readme.txt")
	anon.Dir = work
	if out, err := anon.CombinedOutput(); err == nil || !strings.Contains(string(out), "401") {
		t.Fatalf("anonymous oras push: %v\n%s", err, out)
	}
	orasIn(append([]string{"login", "--plain-http", in.Host, "-u", "admin", "-p", apptest.AdminPassword}, cfg...)...)
	out := orasIn(append([]string{"push", "--plain-http", "--artifact-type", "application/vnd.berth.test", ref,
		"readme.txt:text/plain", "config.json:application/json"}, cfg...)...)
	if !strings.Contains(out, "Digest: sha256:") {
		t.Fatalf("oras push: %s", out)
	}
	manifest := orasIn(append([]string{"manifest", "fetch", "--plain-http", ref}, cfg...)...)
	if !strings.Contains(manifest, `"artifactType":"application/vnd.berth.test"`) || !strings.Contains(manifest, `"org.opencontainers.image.title":"readme.txt"`) {
		t.Fatalf("manifest: %s", manifest)
	}
	outDir := t.TempDir()
	orasIn(append([]string{"pull", "--plain-http", "-o", outDir, ref}, cfg...)...)
	for f, body := range map[string]string{"readme.txt": "hello from oras\n", "config.json": `{"a":1}`} {
		if got, err := os.ReadFile(filepath.Join(outDir, f)); err != nil || string(got) != body {
			t.Errorf("pulled %s: %q, %v", f, got, err)
		}
	}
	if err := os.WriteFile(filepath.Join(work, "sig.txt"), []byte("signed\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	orasIn(append([]string{"attach", "--plain-http", "--artifact-type", "application/vnd.berth.signature", ref, "sig.txt"}, cfg...)...)
	disc := orasIn(append([]string{"discover", "--plain-http", "--format", "json", ref}, cfg...)...)
	if !strings.Contains(disc, "application/vnd.berth.signature") {
		t.Fatalf("oras discover found no referrer: %s", disc)
	}
}
