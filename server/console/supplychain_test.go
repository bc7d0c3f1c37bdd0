package console_test

import (
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/berth-dev/berth/policies/signature"
	"github.com/berth-dev/berth/policies/signature/sigtest"
	"github.com/berth-dev/berth/server/app/apptest"
)

// TestVersionPageSupplyChain: a version's page shows whether it is signed and by which key, the provenance read
// from its verified SLSA attestation, its accessories, and offers its SBOM as a download; the same version
// before its key is trusted shows NOT SIGNED and no provenance.
func TestVersionPageSupplyChain(t *testing.T) {
	in := apptest.Start(t, apptest.Options{})
	b := newBrowser(t, in)
	b.signIn("admin", apptest.AdminPassword)
	if st, _, body := b.post("/namespaces", url.Values{"name": {"team"}, "default_visibility": {"PRIVATE"}}); st >= 400 {
		t.Fatalf("namespace: %d %s", st, body)
	}
	if st, _, body := b.post("/namespaces/team/repositories", url.Values{"name": {"app"}, "visibility": {"PRIVATE"}}); st >= 400 {
		t.Fatalf("repository: %d %s", st, body)
	}
	auth := remote.WithAuth(&authn.Basic{Username: "admin", Password: apptest.AdminPassword})
	img, _ := random.Image(256, 1)
	ref, _ := name.ParseReference(in.Host+"/team/app:v1", name.Insecure)
	if err := remote.Write(ref, img, auth); err != nil {
		t.Fatal(err)
	}
	d, _ := img.Digest()
	dg := d.String()
	key := sigtest.NewKey(t)
	repoRef := in.Host + "/team/app"
	sigtest.Push(t, in.Host, "team/app", dg, signature.SuffixSignature, nil, sigtest.SignLayers(t, repoRef, dg, key), auth)
	provenance := `{"builder":{"id":"https://berth.test/builders/local"},"invocation":{"configSource":{"uri":"https://git.test/team/app.git#refs/heads/main",
	  "digest":{"sha1":"c0ffee1234"},"entryPoint":"Dockerfile"},"environment":{"berth":{"build_rule":"rule-main"}}},
	  "metadata":{"buildStartedOn":"2026-12-01T10:00:00Z","buildFinishedOn":"2026-12-01T10:01:00Z"}}`
	sigtest.Push(t, in.Host, "team/app", dg, signature.SuffixAttestation, nil, []signature.Layer{
		sigtest.AttestLayer(t, repoRef, dg, signature.PredicateSLSAProvenance, provenance, key),
		sigtest.AttestLayer(t, repoRef, dg, signature.PredicateCycloneDX, `{"bomFormat":"CycloneDX","specVersion":"1.5","components":[{"name":"musl"}]}`, key)}, auth)

	st, body := b.get("/repositories/team/app/tags/v1")
	if st != 200 || !strings.Contains(body, "NOT SIGNED") || strings.Contains(body, "c0ffee1234") || strings.Contains(body, "Download SBOM") ||
		!strings.Contains(body, "no known key") {
		t.Fatalf("before the key is trusted: %d\n%s", st, body)
	}
	if st, _, body := b.post("/namespaces/team/security-policy", url.Values{"block_severity": {"NONE"}, "trusted_keys": {sigtest.PEM(t, key)}}); st >= 400 {
		t.Fatalf("policy: %d %s", st, body)
	}
	st, body = b.get("/repositories/team/app/tags/v1")
	for _, want := range []string{">SIGNED<", "trusted key", signature.KeyID(key.Public())[:16], "https://git.test/team/app.git<", "c0ffee1234",
		"rule-main", "https://berth.test/builders/local", "Download SBOM", "/repositories/team/app/tags/v1/sbom", "https://cyclonedx.org/bom"} {
		if !strings.Contains(body, want) {
			t.Fatalf("version page: no %q in\n%s", want, body)
		}
	}
	st, hdr, sbom := b.do("GET", "/repositories/team/app/tags/v1/sbom", nil, nil)
	if st != 200 || !strings.Contains(hdr.Get("Content-Disposition"), "attachment") || !strings.Contains(sbom, `"bomFormat":"CycloneDX"`) {
		t.Fatalf("SBOM download: %d %v %s", st, hdr, sbom)
	}
	// The API says the same.
	r := in.Admin(t, "GET", "/api/v1/repositories/team/app/tags/v1", nil)
	if r.JSON["signed"] != true || r.JSON["signature_key"] != signature.KeyID(key.Public()) || len(r.JSON["accessories"].([]any)) != 2 ||
		r.JSON["provenance"].(map[string]any)["commit"] != "c0ffee1234" || r.JSON["has_sbom"] != true {
		t.Fatalf("tag view: %s", r.Body)
	}
	if r := in.Admin(t, "GET", "/api/v1/repositories/team/app/tags/v1/sbom", nil); r.Status != 200 || r.JSON["specVersion"] != "1.5" {
		t.Fatalf("SBOM: %d %s", r.Status, r.Body)
	}
	// The list leaves signatures out (no per-row registry reads).
	if r := in.Admin(t, "GET", "/api/v1/repositories/team/app/tags", nil); len(r.Items()) != 1 || r.Items()[0]["accessories"] != nil || r.Items()[0]["signed"] != nil {
		t.Fatalf("list: %s", r.Body)
	}
}
