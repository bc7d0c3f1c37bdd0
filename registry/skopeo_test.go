package registry_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
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
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

const refNameAnnotation = "org.opencontainers.image.ref.name"

// skopeoBinary finds skopeo; outside CI a missing skopeo skips the test, in
// CI it fails (install it with apt-get install skopeo).
func skopeoBinary(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("skopeo")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("skopeo is required in CI (apt-get install -y skopeo)")
		}
		t.Skip("skopeo not installed")
	}
	return p
}

func runSkopeo(t *testing.T, bin string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{"--insecure-policy"}, args...)...)
	home := t.TempDir()
	cmd.Env = append(os.Environ(), "REGISTRY_AUTH_FILE="+filepath.Join(home, "auth.json"), "HOME="+home, "XDG_RUNTIME_DIR="+home)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func ociImage(t *testing.T, size int64, layers int64) v1.Image {
	t.Helper()
	img, err := random.Image(size, layers)
	if err != nil {
		t.Fatal(err)
	}
	img = mutate.MediaType(img, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	return img
}

// layoutDigest returns the digest of the manifest named ref in an OCI layout.
func layoutDigest(t *testing.T, dir, ref string) v1.Hash {
	t.Helper()
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range im.Manifests {
		if d.Annotations[refNameAnnotation] == ref {
			return d.Digest
		}
	}
	t.Fatalf("%s: no manifest named %q in %+v", dir, ref, im.Manifests)
	return v1.Hash{}
}

// TestSkopeoRoundTrip copies a multi-arch OCI index and a single image into
// the registry with skopeo and back out to an OCI layout, comparing digests;
// a Docker schema2 image pushed with go-containerregistry is inspected by
// skopeo; anonymous access to the private repository is refused.
func TestSkopeoRoundTrip(t *testing.T) {
	bin := skopeoBinary(t)
	s := startServer(t, defaultAuthz(), nil)

	amd64 := ociImage(t, 2048, 2)
	arm64 := ociImage(t, 4096, 1)
	single := ociImage(t, 3000, 3)
	src := filepath.Join(t.TempDir(), "src")
	lp, err := layout.Write(src, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	// The index is written by hand: skopeo 1.9 rewrites descriptors carrying
	// artifactType (which mutate.AppendManifests adds), changing the digest.
	im := v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex}
	for _, e := range []struct {
		img  v1.Image
		plat v1.Platform
	}{{amd64, v1.Platform{OS: "linux", Architecture: "amd64"}}, {arm64, v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}}} {
		if err := lp.WriteImage(e.img); err != nil {
			t.Fatal(err)
		}
		d, _ := e.img.Digest()
		sz, _ := e.img.Size()
		plat := e.plat
		im.Manifests = append(im.Manifests, v1.Descriptor{MediaType: types.OCIManifestSchema1, Size: sz, Digest: d, Platform: &plat})
	}
	rawIdx, err := json.Marshal(im)
	if err != nil {
		t.Fatal(err)
	}
	idxDigest, _, _ := v1.SHA256(bytes.NewReader(rawIdx))
	if err := lp.WriteBlob(idxDigest, io.NopCloser(bytes.NewReader(rawIdx))); err != nil {
		t.Fatal(err)
	}
	if err := lp.AppendDescriptor(v1.Descriptor{MediaType: types.OCIImageIndex, Size: int64(len(rawIdx)), Digest: idxDigest, Annotations: map[string]string{refNameAnnotation: "multi"}}); err != nil {
		t.Fatal(err)
	}
	if err := lp.AppendImage(single, layout.WithAnnotations(map[string]string{refNameAnnotation: "single"})); err != nil {
		t.Fatal(err)
	}
	singleDigest, _ := single.Digest()
	amdDigest, _ := amd64.Digest()

	creds := "alice:alice-pw"
	if out, err := runSkopeo(t, bin, "copy", "--all", "--preserve-digests", "--dest-tls-verify=false", "--dest-creds", creds, "oci:"+src+":multi", "docker://"+s.host+"/ns/multi:v1"); err != nil {
		t.Fatalf("skopeo copy index in: %v\n%s", err, out)
	}
	if out, err := runSkopeo(t, bin, "copy", "--preserve-digests", "--dest-tls-verify=false", "--dest-creds", creds, "oci:"+src+":single", "docker://"+s.host+"/ns/single:v1"); err != nil {
		t.Fatalf("skopeo copy image in: %v\n%s", err, out)
	}
	ctx := context.Background()
	if d, err := s.reg.ResolveTag(ctx, "ns/multi", "v1"); err != nil || d != idxDigest.String() {
		t.Fatalf("index in registry: %s %v, want %s", d, err, idxDigest)
	}
	if mt, _, _, err := s.reg.GetManifest(ctx, "ns/multi", amdDigest.String()); err != nil || mt != string(types.OCIManifestSchema1) {
		t.Fatalf("child manifest: %q %v", mt, err)
	}
	if d, err := s.reg.ResolveTag(ctx, "ns/single", "v1"); err != nil || d != singleDigest.String() {
		t.Fatalf("image in registry: %s %v, want %s", d, err, singleDigest)
	}

	out := filepath.Join(t.TempDir(), "out")
	if o, err := runSkopeo(t, bin, "copy", "--all", "--preserve-digests", "--src-tls-verify=false", "--src-creds", creds, "docker://"+s.host+"/ns/multi:v1", "oci:"+out+":multi"); err != nil {
		t.Fatalf("skopeo copy index out: %v\n%s", err, o)
	}
	if o, err := runSkopeo(t, bin, "copy", "--preserve-digests", "--src-tls-verify=false", "--src-creds", creds, "docker://"+s.host+"/ns/single:v1", "oci:"+out+":single"); err != nil {
		t.Fatalf("skopeo copy image out: %v\n%s", err, o)
	}
	if got := layoutDigest(t, out, "multi"); got != idxDigest {
		t.Fatalf("index digest after round trip %s, want %s", got, idxDigest)
	}
	if got := layoutDigest(t, out, "single"); got != singleDigest {
		t.Fatalf("image digest after round trip %s, want %s", got, singleDigest)
	}
	// every layer came back intact
	top, err := layout.ImageIndexFromPath(out)
	if err != nil {
		t.Fatal(err)
	}
	multi, err := top.ImageIndex(idxDigest)
	if err != nil {
		t.Fatal(err)
	}
	pulled, err := multi.Image(amdDigest)
	if err != nil {
		t.Fatal(err)
	}
	ls, _ := pulled.Layers()
	orig, _ := amd64.Layers()
	if len(ls) != len(orig) {
		t.Fatalf("layers %d, want %d", len(ls), len(orig))
	}
	for i := range ls {
		a, _ := ls[i].Digest()
		b, _ := orig[i].Digest()
		if a != b {
			t.Fatalf("layer %d: %s != %s", i, a, b)
		}
		rc, err := ls[i].Compressed()
		if err != nil {
			t.Fatal(err)
		}
		h, _, err := v1.SHA256(rc)
		rc.Close()
		if err != nil || h != b {
			t.Fatalf("layer %d content hashes to %s (%v), want %s", i, h, err, b)
		}
	}

	// Docker schema2: push with go-containerregistry, read with skopeo
	dockerImg, err := random.Image(1500, 2)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference(s.host+"/ns/docker:v2", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, dockerImg, remote.WithAuth(&authn.Basic{Username: "alice", Password: "alice-pw"})); err != nil {
		t.Fatal(err)
	}
	dockerDigest, _ := dockerImg.Digest()
	o, err := runSkopeo(t, bin, "inspect", "--tls-verify=false", "--creds", creds, "--format", "{{.Digest}}", "docker://"+s.host+"/ns/docker:v2")
	if err != nil || strings.TrimSpace(o) != dockerDigest.String() {
		t.Fatalf("skopeo inspect docker image: %v %q, want %s", err, o, dockerDigest)
	}
	if mt, _, _, err := s.reg.GetManifest(ctx, "ns/docker", "v2"); err != nil || mt != string(types.DockerManifestSchema2) {
		t.Fatalf("docker manifest type %q %v", mt, err)
	}

	// anonymous pull of a repository the Authorizer denies
	o, err = runSkopeo(t, bin, "inspect", "--raw", "--tls-verify=false", "--no-creds", "docker://"+s.host+"/ns/multi:v1")
	if err == nil || !(strings.Contains(o, "401") || strings.Contains(strings.ToLower(o), "unauthorized") || strings.Contains(strings.ToLower(o), "authentication required")) {
		t.Fatalf("anonymous inspect: err %v\n%s", err, o)
	}
	resp, b := s.do("GET", "/v2/ns/multi/manifests/v1", nil)
	expect(t, resp, b, 401, "UNAUTHORIZED")
	// wrong credentials fail at the token service, with our message
	if o, err := runSkopeo(t, bin, "inspect", "--raw", "--tls-verify=false", "--creds", "alice:wrong", "docker://"+s.host+"/ns/multi:v1"); err == nil ||
		!strings.Contains(o, "unable to retrieve auth token: invalid username/password: unauthorized: invalid username or password") {
		t.Fatalf("inspect with a bad password: err %v, want the token service's refusal:\n%s", err, o)
	}
	resp, b = s.do("GET", "/token?service="+s.host+"&scope=repository:ns/multi:pull", nil, withBasic("alice", "wrong"))
	expect(t, resp, b, 401, "UNAUTHORIZED")
}
