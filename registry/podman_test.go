package registry_test

import (
	"context"
	"errors"
	"io/fs"
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

	"github.com/berth-dev/berth/registry"
)

// TestPodmanPullPush pulls an image with podman (token flow with
// credentials), pushes it to another repository (podman recompresses, so
// layers are re-uploaded and verified), and checks that pulling without
// credentials is refused. Skipped when podman is not installed.
func TestPodmanPullPush(t *testing.T) {
	bin, err := exec.LookPath("podman")
	if err != nil {
		t.Skip("podman not installed")
	}
	s := startServer(t, defaultAuthz(), nil)
	img, err := random.Image(2000, 2)
	if err != nil {
		t.Fatal(err)
	}
	ref, _ := name.ParseReference(s.host+"/ns/podman:v1", name.Insecure)
	if err := remote.Write(ref, img, remote.WithAuth(&authn.Basic{Username: "alice", Password: "alice-pw"})); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "auth.json"), []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	podman := func(args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		base := []string{"--root", filepath.Join(dir, "root"), "--runroot", filepath.Join(dir, "run"), "--storage-driver", "vfs"}
		cmd := exec.CommandContext(ctx, bin, append(base, args...)...)
		cmd.Env = append(os.Environ(), "REGISTRY_AUTH_FILE="+filepath.Join(dir, "auth.json"), "HOME="+dir)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := podman("pull", "--tls-verify=false", "--creds", "alice:alice-pw", s.host+"/ns/podman:v1"); err != nil {
		t.Fatalf("podman pull: %v\n%s", err, out)
	}
	if out, err := podman("push", "--tls-verify=false", "--creds", "alice:alice-pw", s.host+"/ns/podman:v1", s.host+"/ns/podman-copy:v1"); err != nil {
		t.Fatalf("podman push: %v\n%s", err, out)
	}
	if _, err := s.reg.ResolveTag(context.Background(), "ns/podman-copy", "v1"); err != nil {
		t.Fatalf("pushed tag: %v", err)
	}
	// bob may pull ns/* but not push there
	if out, err := podman("push", "--tls-verify=false", "--creds", "bob:bob-pw", s.host+"/ns/podman:v1", s.host+"/ns/podman-bob:v1"); err == nil ||
		!strings.Contains(out, "initiating layer upload to /v2/ns/podman-bob/blobs/uploads/ in "+s.host+": denied: requested access to the resource is denied") {
		t.Fatalf("push without push rights: err %v, want DENIED on the upload:\n%s", err, out)
	}
	// and nothing of the repository was created: no tag, no upload, no directory
	if _, err := s.reg.ListTags(context.Background(), "ns/podman-bob"); registry.ErrorCode(err) != registry.CodeNameUnknown {
		t.Fatalf("tags of the refused repository: %v, want NAME_UNKNOWN", err)
	}
	if _, err := os.Stat(filepath.Join(s.root, "repositories", "ns", "podman-bob")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the refused push left a repository directory: %v", err)
	}
	if ents, err := os.ReadDir(filepath.Join(s.root, "uploads")); err == nil && len(ents) != 0 {
		t.Fatalf("the refused push left %d upload sessions", len(ents))
	}
	out, err := podman("pull", "--tls-verify=false", s.host+"/ns/podman-copy:v1")
	if err == nil || !(strings.Contains(out, "401") || strings.Contains(strings.ToLower(out), "unauthorized") || strings.Contains(strings.ToLower(out), "authentication required")) {
		t.Fatalf("anonymous pull: %v\n%s", err, out)
	}
}
