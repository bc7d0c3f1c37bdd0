package server_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/berth-dev/berth/server/app/apptest"
)

// repoContent is what a repository held: every manifest and blob digest pushed into it.
type repoContent struct {
	manifests []string // index, its children, the older version, the signature
	blobs     []string // layers and configs of every image
	index     string   // subject of the signature
}

// fillRepository pushes into repo an index of two images (tag multi), an image later replaced under latest
// (so untagged), the image now under latest, and a signature artifact whose subject is the index (pushed by
// digest only, as cosign and notation do with the referrers API).
func fillRepository(t *testing.T, in *apptest.Instance, repo string) repoContent {
	t.Helper()
	var c repoContent
	addImage := func(img v1.Image) {
		d, _ := img.Digest()
		c.manifests = append(c.manifests, d.String())
		cd, _ := img.ConfigName()
		c.blobs = append(c.blobs, cd.String())
		layers, _ := img.Layers()
		for _, l := range layers {
			ld, _ := l.Digest()
			c.blobs = append(c.blobs, ld.String())
		}
	}
	a, _ := random.Image(300, 2)
	b, _ := random.Image(300, 1)
	idx := mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: a, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
		mutate.IndexAddendum{Add: b, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64"}}})
	c.index = pushIndex(t, in, repo+":multi", idx)
	c.manifests = append(c.manifests, c.index)
	addImage(a)
	addImage(b)

	old, _ := random.Image(200, 1)
	pushImg(t, in, repo+":latest", old)
	addImage(old)
	cur, _ := random.Image(200, 1)
	pushImg(t, in, repo+":latest", cur)
	addImage(cur)

	idxDesc, err := partialDescriptor(idx)
	if err != nil {
		t.Fatal(err)
	}
	sigBase, _ := random.Image(100, 1)
	sig := mutate.Subject(mutate.MediaType(sigBase, types.OCIManifestSchema1), idxDesc).(v1.Image)
	sd, _ := sig.Digest()
	pushImg(t, in, repo+"@"+sd.String(), sig)
	addImage(sig)
	if refs := referrers(t, in, repo, c.index); len(refs) != 1 || refs[0] != sd.String() {
		t.Fatalf("referrers of the index before the delete: %v, want [%s]", refs, sd)
	}
	return c
}

func partialDescriptor(idx v1.ImageIndex) (v1.Descriptor, error) {
	d, err := idx.Digest()
	if err != nil {
		return v1.Descriptor{}, err
	}
	sz, err := idx.Size()
	if err != nil {
		return v1.Descriptor{}, err
	}
	mt, err := idx.MediaType()
	return v1.Descriptor{Digest: d, Size: sz, MediaType: mt}, err
}

// registryClient is an HTTP client holding the administrator's registry token for pull and push on repo.
func registryClient(t testing.TB, in *apptest.Instance, repo string) *http.Client {
	t.Helper()
	r, err := name.NewRepository(in.Host+"/"+repo, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := transport.NewWithContext(context.Background(), r.Registry, &authn.Basic{Username: "admin", Password: apptest.AdminPassword}, http.DefaultTransport,
		[]string{r.Scope(transport.PushScope)})
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Transport: tr}
}

// registryGet GETs /v2/<repo>/<path> as the administrator: the status and the first OCI error code.
func registryGet(t testing.TB, in *apptest.Instance, repo, path string) (int, string, []byte) {
	t.Helper()
	resp, err := registryClient(t, in, repo).Get(in.URL + "/v2/" + repo + "/" + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var e struct {
		Errors []struct{ Code string } `json:"errors"`
	}
	_ = json.Unmarshal(body, &e)
	code := ""
	if len(e.Errors) > 0 {
		code = e.Errors[0].Code
	}
	return resp.StatusCode, code, body
}

// referrers lists the digests the referrers API gives for subject.
func referrers(t testing.TB, in *apptest.Instance, repo, subject string) []string {
	t.Helper()
	st, _, body := registryGet(t, in, repo, "referrers/"+subject)
	if st != 200 {
		t.Fatalf("referrers of %s in %s: %d %s", subject, repo, st, body)
	}
	var idx v1.IndexManifest
	if err := json.Unmarshal(body, &idx); err != nil {
		t.Fatal(err)
	}
	out := []string{}
	for _, m := range idx.Manifests {
		out = append(out, m.Digest.String())
	}
	return out
}

// assertNothingReadable checks that none of c's manifests or blobs can be read under repo any more, by digest,
// and that the signature is no longer listed as a referrer.
func assertNothingReadable(t *testing.T, in *apptest.Instance, repo string, c repoContent) {
	t.Helper()
	for _, d := range c.manifests {
		if st, code, body := registryGet(t, in, repo, "manifests/"+d); st != 404 || code != "MANIFEST_UNKNOWN" {
			t.Errorf("manifest %s of the deleted %s: %d %s, want 404 MANIFEST_UNKNOWN", d, repo, st, body)
		}
	}
	for _, d := range c.blobs {
		if st, code, body := registryGet(t, in, repo, "blobs/"+d); st != 404 || code != "BLOB_UNKNOWN" {
			t.Errorf("blob %s of the deleted %s: %d %s, want 404 BLOB_UNKNOWN", d, repo, st, body)
		}
	}
	if refs := referrers(t, in, repo, c.index); len(refs) != 0 {
		t.Errorf("referrers of the old index in the new %s: %v, want none", repo, refs)
	}
}

// TestDeletedRepositoryLeavesNothing deletes a repository, and a namespace with force, holding an index and its
// children, an older untagged version and a signature; once the names exist again, not one old digest answers.
func TestDeletedRepositoryLeavesNothing(t *testing.T) {
	in := apptest.Start(t, apptest.Options{})
	if r := in.Admin(t, "POST", "/api/v1/namespaces", map[string]any{"name": "team"}); r.Status != 201 {
		t.Fatalf("create namespace: %d %s", r.Status, r.Body)
	}

	t.Run("repository", func(t *testing.T) {
		c := fillRepository(t, in, "team/app")
		if r := in.Admin(t, "DELETE", "/api/v1/repositories/team/app", nil); r.Status != 204 {
			t.Fatalf("delete repository: %d %s", r.Status, r.Body)
		}
		if r := in.Admin(t, "POST", "/api/v1/namespaces/team/repositories", map[string]any{"name": "app"}); r.Status != 201 {
			t.Fatalf("create the repository again: %d %s", r.Status, r.Body)
		}
		assertNothingReadable(t, in, "team/app", c)
		// and the name works as new: a push and a pull
		img, _ := random.Image(100, 1)
		d := pushImg(t, in, "team/app:v1", img)
		if st, _, body := registryGet(t, in, "team/app", "manifests/"+d); st != 200 {
			t.Fatalf("pull of the new image: %d %s", st, body)
		}
		if st, _, body := registryGet(t, in, "team/app", "tags/list"); st != 200 || string(body) != `{"name":"team/app","tags":["v1"]}` {
			t.Fatalf("tags of the new repository: %d %s", st, body)
		}
	})

	t.Run("namespace with force", func(t *testing.T) {
		if r := in.Admin(t, "POST", "/api/v1/namespaces", map[string]any{"name": "gone"}); r.Status != 201 {
			t.Fatalf("create namespace: %d %s", r.Status, r.Body)
		}
		c := fillRepository(t, in, "gone/app")
		if r := in.Admin(t, "DELETE", "/api/v1/namespaces/gone?force=true", nil); r.Status != 204 {
			t.Fatalf("delete namespace: %d %s", r.Status, r.Body)
		}
		if r := in.Admin(t, "POST", "/api/v1/namespaces", map[string]any{"name": "gone"}); r.Status != 201 {
			t.Fatalf("create the namespace again: %d %s", r.Status, r.Body)
		}
		// re-created by a push of something else (auto_create_repo)
		img, _ := random.Image(100, 1)
		pushImg(t, in, "gone/app:other", img)
		assertNothingReadable(t, in, "gone/app", c)
	})
}
