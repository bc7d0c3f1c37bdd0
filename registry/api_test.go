package registry_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/berth-dev/berth/registry"
	"github.com/berth-dev/berth/registry/registrytest"
	"github.com/berth-dev/berth/registry/storage/driver/inmemory"
)

type recordingHooks struct {
	mu       sync.Mutex
	pushed   []registry.ManifestEvent
	deleted  []string
	tagsGone []string
	refuse   map[string]error // repository -> EnsureRepository error
	blocked  map[string]bool  // digest -> CheckPull refuses
	failPush bool
}

func (h *recordingHooks) EnsureRepository(ctx context.Context, subj registry.Subject, name string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.refuse[name]
}

func (h *recordingHooks) ManifestPushed(ctx context.Context, ev registry.ManifestEvent) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.pushed = append(h.pushed, ev)
	if h.failPush {
		return errors.New("metadata store down")
	}
	return nil
}

func (h *recordingHooks) ManifestDeleted(ctx context.Context, name, dgst string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.deleted = append(h.deleted, name+"@"+dgst)
	return nil
}

func (h *recordingHooks) TagDeleted(ctx context.Context, name, tag string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.tagsGone = append(h.tagsGone, name+":"+tag)
	return nil
}

func (h *recordingHooks) CheckPull(ctx context.Context, subj registry.Subject, name, dgst, mediaType string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.blocked[dgst] {
		return registry.ErrDenied("blocked by policy default: 3 HIGH vulnerabilities")
	}
	return nil
}

func TestHooks(t *testing.T) {
	hooks := &recordingHooks{
		refuse:  map[string]error{"ns/closed": registry.ErrNameUnknown("repository ns/closed does not exist and auto_create_repo is off")},
		blocked: map[string]bool{},
	}
	s := startServer(t, defaultAuthz(), hooks)
	tok := s.token("alice", "alice-pw", "repository:ns/app:pull,push,delete")

	dg, m := s.pushImage(tok, "ns/app", "v1", "h")
	if len(hooks.pushed) != 1 {
		t.Fatalf("events %v", hooks.pushed)
	}
	ev := hooks.pushed[0]
	if ev.Repository != "ns/app" || ev.Tag != "v1" || ev.Digest != dg || ev.MediaType != "application/vnd.oci.image.manifest.v1+json" || ev.Size != int64(len(m)) || !bytes.Equal(ev.Payload, m) || ev.Subject.Name != "alice" || ev.PushedAt.IsZero() {
		t.Fatalf("event %+v", ev)
	}
	// by digest: empty tag
	resp, b := s.do("PUT", "/v2/ns/app/manifests/"+dg, m, withBearer(tok), withHeader("Content-Type", "application/vnd.oci.image.manifest.v1+json"))
	expect(t, resp, b, 201, "")
	if hooks.pushed[1].Tag != "" {
		t.Fatalf("by-digest event tag %q", hooks.pushed[1].Tag)
	}
	// a failing ManifestPushed does not fail the push
	hooks.failPush = true
	resp, b = s.do("PUT", "/v2/ns/app/manifests/v2", m, withBearer(tok), withHeader("Content-Type", "application/vnd.oci.image.manifest.v1+json"))
	expect(t, resp, b, 201, "")
	resp, b = s.do("GET", "/v2/ns/app/manifests/v2", nil, withBearer(tok))
	expect(t, resp, b, 200, "")

	// EnsureRepository refuses before anything is stored
	ctok := s.token("alice", "alice-pw", "repository:ns/closed:pull,push")
	before := snapshot(t, s.root, false)
	resp, b = s.do("POST", "/v2/ns/closed/blobs/uploads/", nil, withBearer(ctok))
	expect(t, resp, b, 404, "NAME_UNKNOWN")
	if !strings.Contains(string(b), "auto_create_repo is off") {
		t.Fatalf("message lost: %s", b)
	}
	resp, b = s.do("POST", "/v2/ns/closed/blobs/uploads/?digest="+sha256Digest([]byte("x")), []byte("x"), withBearer(ctok))
	expect(t, resp, b, 404, "NAME_UNKNOWN")
	resp, b = s.do("PUT", "/v2/ns/closed/manifests/v1", []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}`), withBearer(ctok), withHeader("Content-Type", "application/vnd.oci.image.index.v1+json"))
	expect(t, resp, b, 404, "NAME_UNKNOWN")
	sameSnapshot(t, "EnsureRepository refusal", before, snapshot(t, s.root, false))

	// CheckPull blocks GET and HEAD by tag and by digest
	hooks.blocked[dg] = true
	for _, ref := range []string{"v1", dg} {
		resp, b = s.do("GET", "/v2/ns/app/manifests/"+ref, nil, withBearer(tok))
		expect(t, resp, b, 403, "DENIED")
		if !strings.Contains(string(b), "blocked by policy") {
			t.Fatalf("message %s", b)
		}
		resp, _ = s.do("HEAD", "/v2/ns/app/manifests/"+ref, nil, withBearer(tok))
		if resp.StatusCode != 403 {
			t.Fatalf("HEAD %d", resp.StatusCode)
		}
	}
	hooks.blocked[dg] = false

	// deletes: tag, then manifest (which drops the remaining tags)
	resp, b = s.do("DELETE", "/v2/ns/app/manifests/v1", nil, withBearer(tok))
	expect(t, resp, b, 202, "")
	resp, b = s.do("DELETE", "/v2/ns/app/manifests/"+dg, nil, withBearer(tok))
	expect(t, resp, b, 202, "")
	if !slices.Equal(hooks.tagsGone, []string{"ns/app:v1", "ns/app:v2"}) || !slices.Equal(hooks.deleted, []string{"ns/app@" + dg}) {
		t.Fatalf("delete hooks: tags %v manifests %v", hooks.tagsGone, hooks.deleted)
	}
	resp, b = s.do("GET", "/v2/ns/app/manifests/v2", nil, withBearer(tok))
	expect(t, resp, b, 404, "MANIFEST_UNKNOWN")
}

func TestGoAPI(t *testing.T) {
	hooks := &recordingHooks{}
	s := startServer(t, defaultAuthz(), hooks)
	tok := s.token("alice", "alice-pw", "repository:ns/app:pull,push")
	dg, m := s.pushImage(tok, "ns/app", "v1", "g")
	s.pushImage(tok, "ns/app", "v0", "g0")
	ctx := context.Background()
	r := s.reg

	got, err := r.ResolveTag(ctx, "ns/app", "v1")
	if err != nil || got != dg {
		t.Fatalf("ResolveTag %q %v", got, err)
	}
	if _, err := r.ResolveTag(ctx, "ns/app", "nope"); !errors.Is(err, &registry.Error{Code: registry.CodeManifestUnknown}) {
		t.Fatalf("missing tag: %v", err)
	}
	if _, err := r.ResolveTag(ctx, "../etc", "v1"); registry.ErrorCode(err) != registry.CodeNameInvalid {
		t.Fatalf("bad name: %v", err)
	}
	for _, ref := range []string{"v1", dg} {
		mt, payload, d, err := r.GetManifest(ctx, "ns/app", ref)
		if err != nil || mt != "application/vnd.oci.image.manifest.v1+json" || !bytes.Equal(payload, m) || d != dg {
			t.Fatalf("GetManifest(%s) = %q %d %q %v", ref, mt, len(payload), d, err)
		}
	}
	config := []byte(`{"architecture":"amd64","os":"linux","seed":"g"}`)
	rc, size, err := r.OpenBlob(ctx, "ns/app", sha256Digest(config))
	if err != nil || size != int64(len(config)) {
		t.Fatalf("OpenBlob %d %v", size, err)
	}
	b, _ := io.ReadAll(rc)
	rc.Close()
	if !bytes.Equal(b, config) {
		t.Fatal("OpenBlob content")
	}
	if _, _, err := r.OpenBlob(ctx, "ns/other", sha256Digest(config)); registry.ErrorCode(err) != registry.CodeBlobUnknown {
		t.Fatalf("OpenBlob from another repository: %v", err)
	}
	if _, _, err := r.OpenBlob(ctx, "ns/app", "sha256:../../etc/passwd"); registry.ErrorCode(err) != registry.CodeDigestInvalid {
		t.Fatalf("OpenBlob bad digest: %v", err)
	}
	tags, err := r.ListTags(ctx, "ns/app")
	if err != nil || !slices.Equal(tags, []string{"v0", "v1"}) {
		t.Fatalf("ListTags %v %v", tags, err)
	}
	if _, err := r.ListTags(ctx, "ns/never"); registry.ErrorCode(err) != registry.CodeNameUnknown {
		t.Fatalf("ListTags unknown repo: %v", err)
	}
	if err := r.DeleteTag(ctx, "ns/app", "v0"); err != nil {
		t.Fatal(err)
	}
	if err := r.DeleteTag(ctx, "ns/app", "v0"); registry.ErrorCode(err) != registry.CodeManifestUnknown {
		t.Fatalf("second DeleteTag: %v", err)
	}
	if err := r.DeleteManifest(ctx, "ns/app", dg); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := r.GetManifest(ctx, "ns/app", "v1"); registry.ErrorCode(err) != registry.CodeManifestUnknown {
		t.Fatalf("after DeleteManifest: %v", err)
	}
	if !slices.Contains(hooks.tagsGone, "ns/app:v0") || !slices.Contains(hooks.tagsGone, "ns/app:v1") || len(hooks.deleted) != 1 {
		t.Fatalf("hooks %v %v", hooks.tagsGone, hooks.deleted)
	}
}

// TestCacheInvalidation: the tag and manifest caches follow puts and deletes.
func TestCacheInvalidation(t *testing.T) {
	s := startServer(t, defaultAuthz(), nil)
	tok := s.token("alice", "alice-pw", "repository:ns/app:pull,push,delete")
	d1, _ := s.pushImage(tok, "ns/app", "latest", "one")
	for range 3 {
		resp, _ := s.do("GET", "/v2/ns/app/manifests/latest", nil, withBearer(tok))
		if resp.Header.Get("Docker-Content-Digest") != d1 {
			t.Fatal("first push not served")
		}
	}
	d2, m2 := s.pushImage(tok, "ns/app", "latest", "two")
	resp, b := s.do("GET", "/v2/ns/app/manifests/latest", nil, withBearer(tok))
	if resp.Header.Get("Docker-Content-Digest") != d2 || !bytes.Equal(b, m2) {
		t.Fatal("retag not visible")
	}
	resp, b = s.do("DELETE", "/v2/ns/app/manifests/latest", nil, withBearer(tok))
	expect(t, resp, b, 202, "")
	resp, b = s.do("GET", "/v2/ns/app/manifests/latest", nil, withBearer(tok))
	expect(t, resp, b, 404, "MANIFEST_UNKNOWN")
	resp, b = s.do("GET", "/v2/ns/app/manifests/"+d1, nil, withBearer(tok))
	expect(t, resp, b, 200, "")
	resp, b = s.do("DELETE", "/v2/ns/app/manifests/"+d1, nil, withBearer(tok))
	expect(t, resp, b, 202, "")
	resp, b = s.do("HEAD", "/v2/ns/app/manifests/"+d1, nil, withBearer(tok))
	expect(t, resp, b, 404, "")
}

// TestUploadResumeAfterRestart: an upload started on one Registry continues
// on a new one over the same root, with and without the saved hash state.
func TestUploadResumeAfterRestart(t *testing.T) {
	for _, dropState := range []bool{false, true} {
		name := "with hash state"
		if dropState {
			name = "rehash"
		}
		t.Run(name, func(t *testing.T) {
			root := t.TempDir()
			key := filepath.Join(t.TempDir(), "key.pem")
			withKey := func(c *registry.Config) { c.SigningKeyFile, c.Service = key, "registry.test" }
			s := startServerAt(t, root, defaultAuthz(), nil, withKey)
			tok := s.token("alice", "alice-pw", "repository:ns/app:pull,push")
			body := bytes.Repeat([]byte("resumable-"), 50000) // 500 kB
			resp, b := s.do("POST", "/v2/ns/app/blobs/uploads/", nil, withBearer(tok))
			expect(t, resp, b, 202, "")
			loc := resp.Header.Get("Location")
			resp, b = s.do("PATCH", loc, body[:200000], withBearer(tok), withHeader("Content-Range", "0-199999"))
			expect(t, resp, b, 202, "")
			s.stop()
			if dropState {
				states, _ := filepath.Glob(filepath.Join(root, "uploads", "*", "hashstates", "sha256", "*"))
				if len(states) != 1 {
					t.Fatalf("hash states %v", states)
				}
				os.Remove(states[0])
			}
			// new process, same root and key: the old token still works
			s2 := startServerAt(t, root, defaultAuthz(), nil, withKey)
			loc2 := loc
			resp, b = s2.do("GET", loc2, nil, withBearer(tok))
			expect(t, resp, b, 204, "")
			if resp.Header.Get("Range") != "0-199999" {
				t.Fatalf("Range %q", resp.Header.Get("Range"))
			}
			resp, b = s2.do("PATCH", loc2, body[200000:400000], withBearer(tok), withHeader("Content-Range", "200000-399999"))
			expect(t, resp, b, 202, "")
			dg := sha256Digest(body)
			resp, b = s2.do("PUT", loc2+"?digest="+dg, body[400000:], withBearer(tok), withHeader("Content-Range", "400000-499999"))
			expect(t, resp, b, 201, "")
			resp, b = s2.do("GET", "/v2/ns/app/blobs/"+dg, nil, withBearer(tok))
			expect(t, resp, b, 200, "")
			if !bytes.Equal(b, body) {
				t.Fatal("resumed blob differs")
			}
		})
	}
}

func TestAbandonedUploadsPurged(t *testing.T) {
	s := startServer(t, defaultAuthz(), nil, func(c *registry.Config) { c.UploadGrace = time.Second })
	tok := s.token("alice", "alice-pw", "repository:ns/app:pull,push")
	resp, b := s.do("POST", "/v2/ns/app/blobs/uploads/", nil, withBearer(tok))
	expect(t, resp, b, 202, "")
	loc := resp.Header.Get("Location")
	resp, b = s.do("PATCH", loc, []byte("partial"), withBearer(tok))
	expect(t, resp, b, 202, "")
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, b = s.do("GET", loc, nil, withBearer(tok))
		ents, _ := os.ReadDir(filepath.Join(s.root, "uploads"))
		if resp.StatusCode == 404 && len(ents) == 0 {
			expect(t, resp, b, 404, "BLOB_UPLOAD_UNKNOWN")
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("abandoned upload not purged")
		}
		time.Sleep(200 * time.Millisecond)
	}
	if ents, _ := os.ReadDir(filepath.Join(s.root, "uploads")); len(ents) != 0 {
		var names []string
		filepath.WalkDir(filepath.Join(s.root, "uploads"), func(p string, d os.DirEntry, err error) error { names = append(names, p); return nil })
		t.Fatalf("upload files left: %v", names)
	}
}

func TestGarbageCollect(t *testing.T) {
	s := startServer(t, defaultAuthz(), nil)
	tok := s.token("alice", "alice-pw", "repository:ns/app:pull,push,delete")
	dg, _ := s.pushImage(tok, "ns/app", "v1", "gc")
	orphan := s.pushBlob(tok, "ns/app", []byte("orphan layer"))
	gone, gm := s.pushImage(tok, "ns/app", "v2", "gone")
	_ = gm
	resp, b := s.do("DELETE", "/v2/ns/app/manifests/"+gone, nil, withBearer(tok))
	expect(t, resp, b, 202, "")
	ctx := context.Background()

	// within the grace period nothing goes
	st, err := s.reg.GarbageCollect(ctx, registry.GCOptions{UntaggedGrace: time.Hour, BlobGrace: time.Hour})
	if err != nil || st.BlobsDeleted != 0 {
		t.Fatalf("gc with grace: %+v %v", st, err)
	}
	time.Sleep(1100 * time.Millisecond) // past the collector's clock slack
	st, err = s.reg.GarbageCollect(ctx, registry.GCOptions{UntaggedGrace: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	// orphan + the deleted image's config, layer and manifest
	if st.BlobsDeleted != 4 || st.LinksRemoved != 3 || st.BytesFreed == 0 {
		t.Fatalf("gc: %+v", st)
	}
	resp, b = s.do("HEAD", "/v2/ns/app/blobs/"+orphan, nil, withBearer(tok))
	expect(t, resp, b, 404, "")
	// the live image is intact
	mt, payload, _, err := s.reg.GetManifest(ctx, "ns/app", "v1")
	if err != nil || mt == "" {
		t.Fatal(err)
	}
	_ = payload
	resp, b = s.do("GET", "/v2/ns/app/manifests/"+dg, nil, withBearer(tok))
	expect(t, resp, b, 200, "")
	config := []byte(`{"architecture":"amd64","os":"linux","seed":"gc"}`)
	resp, b = s.do("GET", "/v2/ns/app/blobs/"+sha256Digest(config), nil, withBearer(tok))
	expect(t, resp, b, 200, "")
	if st, err := s.reg.GarbageCollect(ctx, registry.GCOptions{}); err != nil || st.BlobsDeleted != 0 {
		t.Fatalf("second gc: %+v %v", st, err)
	}
}

// TestInMemoryDriver runs a push and pull through the registry on the
// in-memory driver.
func TestInMemoryDriver(t *testing.T) {
	s := startServer(t, registrytest.Conformance(), nil, func(c *registry.Config) {
		c.Driver = inmemory.New()
		c.RootDir = ""
		c.SigningKeyFile = filepath.Join(t.TempDir(), "k.pem")
	})
	tok := s.token("conformance", "conformance-pass", "repository:conformance/mem:pull,push")
	dg, m := s.pushImage(tok, "conformance/mem", "v1", "mem")
	resp, b := s.do("GET", "/v2/conformance/mem/manifests/v1", nil, withBearer(tok))
	expect(t, resp, b, 200, "")
	if !bytes.Equal(b, m) || resp.Header.Get("Docker-Content-Digest") != dg {
		t.Fatal("in-memory manifest")
	}
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := startServer(t, defaultAuthz(), nil, func(c *registry.Config) { c.Metrics = reg })
	tok := s.token("alice", "alice-pw", "repository:ns/app:pull,push")
	s.pushImage(tok, "ns/app", "v1", "m")
	s.do("GET", "/v2/ns/app/manifests/v1", nil, withBearer(tok))
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, mf := range mfs {
		names[mf.GetName()] = true
	}
	for _, n := range []string{"berth_registry_requests_total", "berth_registry_request_duration_seconds", "berth_registry_upload_bytes_total"} {
		if !names[n] {
			t.Errorf("metric %s missing (have %v)", n, names)
		}
	}
}

// TestGarbageCollectConcurrentPush pushes, in the middle of a collection, an
// index naming an old untagged manifest the collector has decided to delete,
// and an image whose layer the collector found unreferenced. Both pushes
// touch what they rely on, so the collector keeps it.
func TestGarbageCollectConcurrentPush(t *testing.T) {
	s := startServer(t, defaultAuthz(), nil)
	tok := s.token("alice", "alice-pw", "repository:ns/app:pull,push,delete")
	child, _ := s.pushImage(tok, "ns/app", "child", "child")
	resp, b := s.do("DELETE", "/v2/ns/app/manifests/child", nil, withBearer(tok))
	expect(t, resp, b, 202, "") // untagged now
	layer := []byte("a layer uploaded long before its manifest")
	ld := s.pushBlob(tok, "ns/app", layer)
	config := []byte(`{"architecture":"amd64","os":"linux","seed":"late"}`)
	time.Sleep(1100 * time.Millisecond) // both older than the collector's cutoff

	index := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[` +
		`{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"` + child + `","size":` +
		fmt.Sprint(len(imageManifestFor(t, s, tok, child))) + `}]}`)
	late := imageManifest(config, layer)
	registry.SetGCTestHook(s.reg, func(stage string) {
		switch stage {
		case "marked":
			resp, b := s.do("PUT", "/v2/ns/app/manifests/multi", index, withBearer(tok), withHeader("Content-Type", "application/vnd.oci.image.index.v1+json"))
			expect(t, resp, b, 201, "")
		case "remarked":
			s.pushBlob(tok, "ns/app", config)
			resp, b := s.do("PUT", "/v2/ns/app/manifests/late", late, withBearer(tok), withHeader("Content-Type", "application/vnd.oci.image.manifest.v1+json"))
			expect(t, resp, b, 201, "")
		}
	})
	st, err := s.reg.GarbageCollect(context.Background(), registry.GCOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if st.ManifestsDeleted != 0 || st.BlobsDeleted != 0 {
		t.Fatalf("gc during pushes: %+v, want nothing deleted", st)
	}
	for _, p := range []string{"manifests/multi", "manifests/" + child, "manifests/late", "blobs/" + ld, "blobs/" + sha256Digest(config)} {
		resp, b := s.do("GET", "/v2/ns/app/"+p, nil, withBearer(tok))
		expect(t, resp, b, 200, "")
	}
}

// imageManifestFor returns a stored manifest's bytes.
func imageManifestFor(t *testing.T, s *testServer, tok, dg string) []byte {
	t.Helper()
	resp, b := s.do("GET", "/v2/ns/app/manifests/"+dg, nil, withBearer(tok))
	expect(t, resp, b, 200, "")
	return b
}

// TestDeleteRepository: everything under the name goes (tags, untagged
// manifests, blob links, uploads in progress, the catalog entry); a
// repository nested under the name and the blob data stay.
func TestDeleteRepository(t *testing.T) {
	s := startServer(t, &registrytest.Authorizer{Users: map[string]registrytest.User{
		"alice": {Password: "alice-pw", Rules: []registrytest.Rule{{Pattern: "*", Actions: []string{"*"}}}, Catalog: true}}}, nil)
	tok := s.token("alice", "alice-pw", "repository:ns/app:pull,push,delete", "repository:ns/app/sub:pull,push", "registry:catalog:*")
	dg, _ := s.pushImage(tok, "ns/app", "v1", "del")
	untagged, _ := s.pushImage(tok, "ns/app", "v2", "del-old")
	s.pushImage(tok, "ns/app", "v2", "del-new")
	nested, _ := s.pushImage(tok, "ns/app/sub", "v1", "nested")
	layer := s.pushBlob(tok, "ns/app", []byte("a layer of ns/app"))
	resp, b := s.do("POST", "/v2/ns/app/blobs/uploads/", nil, withBearer(tok))
	expect(t, resp, b, 202, "")
	upload := resp.Header.Get("Location")

	if err := s.reg.DeleteRepository(context.Background(), "ns/app"); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"manifests/v1", "manifests/" + dg, "manifests/" + untagged} {
		resp, b := s.do("GET", "/v2/ns/app/"+p, nil, withBearer(tok))
		expect(t, resp, b, 404, "MANIFEST_UNKNOWN")
	}
	resp, b = s.do("GET", "/v2/ns/app/blobs/"+layer, nil, withBearer(tok))
	expect(t, resp, b, 404, "BLOB_UNKNOWN")
	resp, b = s.do("PATCH", upload, []byte("more"), withBearer(tok))
	expect(t, resp, b, 404, "BLOB_UPLOAD_UNKNOWN")
	resp, b = s.do("GET", "/v2/ns/app/tags/list", nil, withBearer(tok))
	expect(t, resp, b, 200, "") // the name still prefixes ns/app/sub, so it is known, with no tags
	if string(b) != `{"name":"ns/app","tags":[]}` {
		t.Fatalf("tags after the delete: %s", b)
	}
	resp, b = s.do("GET", "/v2/ns/app/sub/manifests/"+nested, nil, withBearer(tok))
	expect(t, resp, b, 200, "")
	resp, b = s.do("GET", "/v2/_catalog", nil, withBearer(tok))
	expect(t, resp, b, 200, "")
	if string(b) != `{"repositories":["ns/app/sub"]}` {
		t.Fatalf("catalog after the delete: %s", b)
	}
	// the data waits for the collector; the repository's notes on it are gone
	if _, err := os.Stat(filepath.Join(s.root, "blobs", "sha256", layer[7:9], layer[7:], "data")); err != nil {
		t.Fatalf("blob data: %v", err)
	}
	if _, err := os.Stat(filepath.Join(s.root, "blobs", "sha256", layer[7:9], layer[7:], "_repositories", "ns", "app")); !os.IsNotExist(err) {
		t.Fatalf("the blob still names the deleted repository: %v", err)
	}
}
