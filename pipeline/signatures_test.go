package pipeline

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/berth-dev/berth/policies/security"
	"github.com/berth-dev/berth/policies/signature"
	"github.com/berth-dev/berth/policies/signature/sigtest"
	"github.com/berth-dev/berth/registry"
	"github.com/berth-dev/berth/registry/registrytest"
	"github.com/berth-dev/berth/store"
	"github.com/berth-dev/berth/store/storetest"
)

// testRegistry is a real registry over a real store, its hooks Berth's, served over HTTP for pushes.
type testRegistry struct {
	t     testing.TB
	st    store.Store
	reg   *registry.Registry
	hooks *RegistryHooks
	host  string
	// images pushed, by digest
	images map[string]v1.Image
}

func newTestRegistry(t testing.TB) *testRegistry {
	t.Helper()
	st := storetest.New(t)
	ctx := context.Background()
	if err := st.CreateNamespace(ctx, &store.Namespace{Name: "ns", AccountID: "1", AutoCreateRepo: true, DefaultVisibility: "PRIVATE"}, 0); err != nil {
		t.Fatal(err)
	}
	hooks := &RegistryHooks{Store: st}
	ts := httptest.NewUnstartedServer(nil)
	reg, err := registry.New(registry.Config{RootDir: t.TempDir(), PublicURL: "http://" + ts.Listener.Addr().String()},
		registrytest.AllowAll{}, hooks)
	if err != nil {
		t.Fatal(err)
	}
	hooks.SetContent(reg)
	ts.Config.Handler = reg
	ts.Start()
	t.Cleanup(func() { ts.Close(); reg.Close() })
	return &testRegistry{t: t, st: st, reg: reg, hooks: hooks, host: ts.Listener.Addr().String(), images: map[string]v1.Image{}}
}

func (r *testRegistry) ref(s string) name.Reference {
	r.t.Helper()
	ref, err := name.ParseReference(r.host+"/"+s, name.Insecure)
	if err != nil {
		r.t.Fatal(err)
	}
	return ref
}

var pushAuth = remote.WithAuth(&authn.Basic{Username: "tester", Password: "x"})

// pushImage pushes a random image as repo:tag and answers its digest.
func (r *testRegistry) pushImage(repoTag string) string {
	r.t.Helper()
	img, err := random.Image(512, 2)
	if err != nil {
		r.t.Fatal(err)
	}
	if err := remote.Write(r.ref(repoTag), img, pushAuth); err != nil {
		r.t.Fatal(err)
	}
	dg, _ := img.Digest()
	r.images[dg.String()] = img
	return dg.String()
}

// gate is a gate over the registry whose instance key is instance, told of every accessory pushed.
func (r *testRegistry) gate(instance *ecdsa.PrivateKey) *Gate {
	g := NewGate(r.st)
	g.InstanceKey = func() crypto.PublicKey { return instance.Public() }
	g.SetContent(r.reg)
	r.hooks.AccessoriesChanged = g.Changed
	return g
}

// pushAccessory pushes layers under the accessory tag of digest in repo; it answers the manifest's digest.
func (r *testRegistry) pushAccessory(repo, digest, suffix string, layers []signature.Layer) string {
	r.t.Helper()
	return sigtest.Push(r.t, r.host, repo, digest, suffix, nil, layers, pushAuth)
}

// TestGateRequireSignature: under require_signature an image is blocked until a signature by the instance key
// or a trusted key is pushed (the push clears the cached verdict); a signature by any other key does not count;
// the signature manifest itself is never blocked (cosign reads it to verify).
func TestGateRequireSignature(t *testing.T) {
	ctx := context.Background()
	r := newTestRegistry(t)
	instance, user := sigtest.NewKey(t), sigtest.NewKey(t)
	g := r.gate(instance)
	g.TTL = time.Hour // only Changed refreshes within the test

	d1 := r.pushImage("ns/app:v1")
	if v, err := g.Verdict(ctx, "ns/app", d1); err != nil || v.Blocked {
		t.Fatalf("no policy: %+v %v", v, err)
	}
	must(t, r.st.PutSecurityPolicy(ctx, PolicyToStore(security.Policy{BlockSeverity: "NONE", RequireSignature: true}, "ns", "")))
	g.Changed()
	err := g.Check(ctx, "ns/app", d1)
	if registry.ErrorCode(err) != registry.CodeDenied || !strings.Contains(err.Error(), "not signed by the instance key or a trusted key") ||
		!strings.Contains(err.Error(), "namespace ns (require_signature)") {
		t.Fatalf("unsigned: %v", err)
	}

	// Signed by a key nobody trusts: still blocked, and the verdict was judged again (the push cleared it).
	sigByUser := r.pushAccessory("ns/app", d1, signature.SuffixSignature, sigtest.SignLayers(t, r.host+"/ns/app", d1, user))
	if err := g.Check(ctx, "ns/app", d1); registry.ErrorCode(err) != registry.CodeDenied {
		t.Fatalf("signed by an untrusted key: %v", err)
	}
	if s, _ := g.Signature(ctx, "ns/app", d1); s.Signed {
		t.Fatalf("signature by an untrusted key counted: %+v", s)
	}
	// The signature itself is pulled freely, by digest.
	if err := g.Check(ctx, "ns/app", sigByUser); err != nil {
		t.Fatalf("pull of the signature manifest: %v", err)
	}
	// cosign sign with the instance key adds its layer: pulls go through at once.
	r.pushAccessory("ns/app", d1, signature.SuffixSignature, sigtest.SignLayers(t, r.host+"/ns/app", d1, user, instance))
	if err := g.Check(ctx, "ns/app", d1); err != nil {
		t.Fatalf("signed by the instance key: %v", err)
	}
	if s, _ := g.Signature(ctx, "ns/app", d1); !s.Signed || !s.Instance || s.KeyID != signature.KeyID(instance.Public()) {
		t.Fatalf("signature status: %+v", s)
	}

	// A signature of another image does not sign this one.
	d2 := r.pushImage("ns/app:v2")
	r.pushAccessory("ns/app", d2, signature.SuffixSignature, sigtest.SignLayers(t, r.host+"/ns/app", d1, user))
	must(t, r.st.PutSecurityPolicy(ctx, PolicyToStore(security.Policy{BlockSeverity: "NONE", RequireSignature: true,
		TrustedKeys: []string{sigtest.PEM(t, user)}}, "ns", "ns/app")))
	g.Changed()
	if err := g.Check(ctx, "ns/app", d2); registry.ErrorCode(err) != registry.CodeDenied || !strings.Contains(err.Error(), "repository ns/app") {
		t.Fatalf("a signature naming another digest: %v", err)
	}
	// The user's key, trusted by the repository's policy, signs v2.
	r.pushAccessory("ns/app", d2, signature.SuffixSignature, sigtest.SignLayers(t, r.host+"/ns/app", d2, user))
	if err := g.Check(ctx, "ns/app", d2); err != nil {
		t.Fatalf("signed by a trusted key: %v", err)
	}
	if s, _ := g.Signature(ctx, "ns/app", d2); !s.Signed || s.Instance || s.KeyID != signature.KeyID(user.Public()) {
		t.Fatalf("signature status: %+v", s)
	}
	// A signature attached as an OCI referrer (cosign --registry-referrers-mode=oci-1-1) counts too.
	d3 := r.pushImage("ns/app:v3")
	if err := g.Check(ctx, "ns/app", d3); registry.ErrorCode(err) != registry.CodeDenied {
		t.Fatalf("v3 unsigned: %v", err)
	}
	r.pushReferrer("ns/app", d3, sigtest.SignLayers(t, r.host+"/ns/app", d3, user))
	if err := g.Check(ctx, "ns/app", d3); err != nil {
		t.Fatalf("signed by a trusted key, as a referrer: %v", err)
	}
	// Deleting the signature blocks again.
	tag, _ := signature.Tag(d2, signature.SuffixSignature)
	must(t, r.reg.DeleteTag(ctx, "ns/app", tag))
	if err := g.Check(ctx, "ns/app", d2); registry.ErrorCode(err) != registry.CodeDenied {
		t.Fatalf("after its signature was deleted: %v", err)
	}
	// With block_unscanned too, the vulnerability reason comes first; the signature is not even read.
	must(t, r.st.PutSecurityPolicy(ctx, PolicyToStore(security.Policy{BlockSeverity: "HIGH", BlockUnscanned: true, RequireSignature: true}, "ns", "ns/app")))
	g.Changed()
	if err := g.Check(ctx, "ns/app", d1); registry.ErrorCode(err) != registry.CodeDenied || !strings.Contains(err.Error(), "block_unscanned") {
		t.Fatalf("unscanned and signed: %v", err)
	}
	if err := g.Check(ctx, "ns/app", sigByUser); err != nil {
		t.Fatalf("an unscanned signature manifest is blocked: %v", err)
	}
}

func TestAccessoryKind(t *testing.T) {
	for _, c := range []struct {
		payload, want string
	}{
		{`{"config":{"mediaType":"application/vnd.oci.image.config.v1+json"},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip"}]}`, ""},
		{`{"config":{"mediaType":"application/vnd.oci.image.config.v1+json"},"layers":[{"mediaType":"application/vnd.dev.cosign.simplesigning.v1+json"}]}`, KindSignature},
		{`{"config":{"mediaType":"application/vnd.oci.image.config.v1+json"},"layers":[{"mediaType":"application/vnd.dsse.envelope.v1+json"}]}`, KindAttestation},
		{`{"config":{"mediaType":"application/vnd.oci.image.config.v1+json"},"layers":[{"mediaType":"text/spdx"}]}`, KindSBOM},
		{`{"artifactType":"application/vnd.dev.sigstore.bundle.v0.3+json","config":{"mediaType":"application/vnd.oci.empty.v1+json"},"layers":[{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json"}],"subject":{"digest":"sha256:1"}}`, KindAttestation},
		{`{"artifactType":"application/x-thing","layers":[{"mediaType":"application/octet-stream"}],"subject":{"digest":"sha256:1"}}`, "artifact"},
		{`{"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip"},{"mediaType":"application/vnd.dev.cosign.simplesigning.v1+json"}]}`, ""},
		// Runnable content is an image whatever else it says: an image layer, or an index, beside a subject.
		{`{"config":{"mediaType":"application/vnd.oci.image.config.v1+json"},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip"}],"subject":{"digest":"sha256:1"}}`, ""},
		{`{"layers":[{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip"},{"mediaType":"application/vnd.dev.cosign.simplesigning.v1+json"}],"subject":{"digest":"sha256:1"}}`, ""},
		{`{"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"digest":"sha256:2"}],"subject":{"digest":"sha256:1"}}`, ""},
		{`not json`, ""},
	} {
		if got := AccessoryKind([]byte(c.payload)); got != c.want {
			t.Errorf("AccessoryKind(%s) = %q, want %q", c.payload, got, c.want)
		}
	}
}

// pushReferrer pushes, by digest, an artifact whose subject is digest (an OCI 1.1 referrer, as `cosign sign
// --registry-referrers-mode=oci-1-1` or `oras attach` write); it answers its digest.
func (r *testRegistry) pushReferrer(repo, digest string, layers []signature.Layer) string {
	r.t.Helper()
	mt, subj, _, err := r.reg.GetManifest(context.Background(), repo, digest)
	must(r.t, err)
	return sigtest.Push(r.t, r.host, repo, digest, "", &signature.Descriptor{MediaType: mt, Digest: digest, Size: int64(len(subj))}, layers, pushAuth)
}

// present reports whether the manifest and every blob of accessory dg are still in repo.
func (r *testRegistry) present(repo, dg string) (manifest bool, blobs int) {
	r.t.Helper()
	ctx := context.Background()
	_, payload, _, err := r.reg.GetManifest(ctx, repo, dg)
	if err != nil {
		if registry.ErrorCode(err) != registry.CodeManifestUnknown {
			r.t.Fatal(err)
		}
		return false, 0
	}
	var m signature.Manifest
	must(r.t, json.Unmarshal(payload, &m))
	for _, d := range append([]signature.Descriptor{m.Config}, m.Layers...) {
		if rc, _, err := r.reg.OpenBlob(ctx, repo, d.Digest); err == nil {
			rc.Close()
			blobs++
		}
	}
	return true, blobs
}

// TestAccessoriesListedAndCollected: an image's signature, attestation and referrer are listed with it (the
// signature verified, by the instance key); they stay while a tag names the image, their tags go with its
// last tag or with its manifest, and garbage collection then frees their manifests and blobs; the accessories
// of a live image survive collection.
func TestAccessoriesListedAndCollected(t *testing.T) {
	ctx := context.Background()
	r := newTestRegistry(t)
	instance := sigtest.NewKey(t)
	g := r.gate(instance)
	ref := r.host + "/ns/app"

	attach := func(dg string) (sig, att, referrer string) {
		sig = r.pushAccessory("ns/app", dg, signature.SuffixSignature, sigtest.SignLayers(t, ref, dg, instance))
		att = r.pushAccessory("ns/app", dg, signature.SuffixAttestation, []signature.Layer{
			sigtest.AttestLayer(t, ref, dg, signature.PredicateSLSAProvenance, `{"builder":{"id":"berth"}}`, instance),
			sigtest.AttestLayer(t, ref, dg, signature.PredicateCycloneDX, `{"bomFormat":"CycloneDX"}`, instance)})
		referrer = r.pushReferrer("ns/app", dg, []signature.Layer{{MediaType: "application/spdx+json", Data: []byte(`{"spdxVersion":"SPDX-2.3","x":"` + dg + `"}`)}})
		return
	}
	d1 := r.pushImage("ns/app:v1")
	r.pushImage("ns/app:filler") // another image, so that the repository stays
	sig1, att1, ref1 := attach(d1)
	// The same image under a second tag.
	must(t, remote.Write(r.ref("ns/app:also"), r.images[d1], pushAuth))

	acc, err := g.Accessories(ctx, "ns/app", d1)
	must(t, err)
	got := map[string]Accessory{}
	for _, a := range acc {
		got[a.Digest] = a
	}
	if a := got[sig1]; a.Type != KindSignature || !a.Verified || !a.SignedByInstance || a.SignedBy != signature.KeyID(instance.Public()) ||
		a.Referrer || !strings.HasSuffix(a.Tag, ".sig") || a.Size == 0 {
		t.Errorf("signature: %+v", a)
	}
	if a := got[att1]; a.Type != KindAttestation || !a.Verified || len(a.PredicateTypes) != 2 || !strings.HasSuffix(a.Tag, ".att") {
		t.Errorf("attestation: %+v", a)
	}
	if a := got[ref1]; a.Type != KindSBOM || !a.Referrer || a.Tag != "" {
		t.Errorf("referrer: %+v", a)
	}
	if len(acc) != 3 {
		t.Errorf("accessories: %+v", acc)
	}
	atts, err := g.Attestations(ctx, "ns/app", d1)
	if err != nil || len(atts) != 2 || atts[1].PredicateType != signature.PredicateCycloneDX {
		t.Fatalf("attestations: %+v %v", atts, err)
	}
	// None of them is a version.
	if vs, _ := r.st.ImageVersionsByDigest(ctx, "ns/app", sig1, 10); len(vs) != 0 {
		t.Errorf("the signature is a version: %+v", vs)
	}

	// A second image keeps its accessories through everything below.
	d2 := r.pushImage("ns/app:v2")
	sig2, att2, ref2 := attach(d2)
	// A third is deleted by digest (registry DELETE): its accessory tags go at once.
	d3 := r.pushImage("ns/app:v3")
	sig3, att3, ref3 := attach(d3)
	must(t, r.reg.DeleteManifest(ctx, "ns/app", d3))
	if _, _, _, err := r.reg.GetManifest(ctx, "ns/app", "sha256-"+d3[7:]+".sig"); !isUnknown(err) {
		t.Fatalf("the signature tag of a deleted manifest: %v", err)
	}

	// A fourth loses its tag to a newer image: its accessories stay tagged until the image itself is collected.
	d4 := r.pushImage("ns/app:moving")
	sig4, _, _ := attach(d4)
	r.pushImage("ns/app:moving")

	// Deleting one of two tags keeps the accessories; deleting the last drops their tags.
	must(t, DeleteTag(ctx, r.reg, r.st, "ns/app", "also"))
	if acc, _ := g.Accessories(ctx, "ns/app", d1); len(acc) != 3 {
		t.Fatalf("after deleting one of two tags: %+v", acc)
	}
	must(t, DeleteTag(ctx, r.reg, r.st, "ns/app", "v1"))
	if acc, _ := g.Accessories(ctx, "ns/app", d1); len(acc) != 1 || !acc[0].Referrer {
		t.Fatalf("after deleting the last tag, the tagged accessories stay: %+v", acc)
	}
	tags, _ := r.reg.ListTags(ctx, "ns/app")
	if strings.Contains(strings.Join(tags, ","), d1[7:]) {
		t.Fatalf("tags left: %v", tags)
	}

	// Before collection everything is still stored; after it, what belonged to v1 and v3 is gone, blobs too.
	for _, dg := range []string{sig1, att1, ref1} {
		if m, n := r.present("ns/app", dg); !m || n < 2 {
			t.Fatalf("%s before collection: manifest %v, %d blobs", dg, m, n)
		}
	}
	time.Sleep(1100 * time.Millisecond) // past the collector's clock slack
	st, err := r.reg.GarbageCollect(ctx, registry.GCOptions{})
	must(t, err)
	for _, dg := range []string{d1, sig1, att1, ref1, sig3, att3, ref3} {
		if m, _ := r.present("ns/app", dg); m {
			t.Errorf("%s survived collection", dg)
		}
	}
	blobs := 0
	for _, l := range sigtest.SignLayers(t, ref, d1, instance) { // the payload blob is deterministic
		if rc, _, err := r.reg.OpenBlob(ctx, "ns/app", signature.Digest(l.Data)); err == nil {
			rc.Close()
			blobs++
		}
	}
	if blobs != 0 || st.BlobsDeleted == 0 {
		t.Errorf("v1's signature payload is still stored (%d), %d blobs deleted", blobs, st.BlobsDeleted)
	}
	for _, dg := range []string{d2, sig2, att2, ref2} {
		if m, n := r.present("ns/app", dg); !m || (dg != d2 && n < 2) {
			t.Errorf("%s of a live image: manifest %v, %d blobs", dg, m, n)
		}
	}
	// The image whose tag moved was collected, and its accessories' tags went with it; the next collection
	// frees them.
	if m, _ := r.present("ns/app", d4); m {
		t.Errorf("the untagged image survived collection")
	}
	time.Sleep(1100 * time.Millisecond)
	_, err = r.reg.GarbageCollect(ctx, registry.GCOptions{})
	must(t, err)
	if m, _ := r.present("ns/app", sig4); m {
		t.Errorf("the signature of a collected image survived the next collection")
	}
	if m, _ := r.present("ns/app", sig2); !m {
		t.Errorf("the signature of a live image was collected")
	}
	if acc, _ := g.Accessories(ctx, "ns/app", d2); len(acc) != 3 {
		t.Errorf("a live image's accessories after collection: %+v", acc)
	}
}

// TestBuildBlockedUnsigned: under require_signature a build whose image is not signed ends BLOCKED with the
// gate's message; signed by the instance key, it ends SUCCESS.
func TestBuildBlockedUnsigned(t *testing.T) {
	ctx := context.Background()
	r := newTestRegistry(t)
	instance := sigtest.NewKey(t)
	g := r.gate(instance)
	s := &Scans{Store: r.st, Gate: g, PollInterval: 10 * time.Millisecond}
	must(t, r.st.PutSecurityPolicy(ctx, PolicyToStore(security.Policy{BlockSeverity: "HIGH", RequireSignature: true}, "ns", "")))

	d := r.pushImage("ns/app:built")
	must(t, r.st.StartScan(ctx, d, "ns/app", time.Now()))
	_, err := r.st.FinishScan(ctx, d, store.ScanResult{Status: store.ScanDone})
	must(t, err)
	b := &store.Build{ID: "b1", Repository: "ns/app", ImageTag: "built", Digest: d}
	log, err := OpenLog(ctx, r.st, b, nil)
	must(t, err)
	defer log.Close()
	status, reason, err := s.AfterBuildPush(ctx, b, log)
	if err != nil || status != store.BuildBlocked || !strings.Contains(reason, "require_signature") {
		t.Fatalf("unsigned build: %s %q %v", status, reason, err)
	}
	r.pushAccessory("ns/app", d, signature.SuffixSignature, sigtest.SignLayers(t, r.host+"/ns/app", d, instance))
	if status, reason, err := s.AfterBuildPush(ctx, b, log); err != nil || status != store.BuildSuccess {
		t.Fatalf("signed build: %s %q %v", status, reason, err)
	}
}

// BenchmarkGateVerdictCold: one verdict with nothing cached (the first pull after a change), for a policy on
// vulnerabilities alone and with require_signature (a signed image: its .sig manifest and payload are read).
// A cached verdict costs neither.
func BenchmarkGateVerdictCold(b *testing.B) {
	ctx := context.Background()
	r := newTestRegistry(b)
	instance := sigtest.NewKey(b)
	g := r.gate(instance)
	d := r.pushImage("ns/app:v1")
	r.pushAccessory("ns/app", d, signature.SuffixSignature, sigtest.SignLayers(b, r.host+"/ns/app", d, instance))
	for _, c := range []struct {
		name string
		p    security.Policy
	}{
		{"vulnerabilities", security.Policy{BlockSeverity: "HIGH"}},
		{"require_signature", security.Policy{BlockSeverity: "HIGH", RequireSignature: true}},
	} {
		must(b, r.st.PutSecurityPolicy(ctx, PolicyToStore(c.p, "ns", "")))
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				g.Changed()
				if v, err := g.Verdict(ctx, "ns/app", d); err != nil || v.Blocked {
					b.Fatalf("%+v %v", v, err)
				}
			}
		})
	}
}
