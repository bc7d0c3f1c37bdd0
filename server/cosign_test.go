package server_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/berth-dev/berth/policies/signature"
	"github.com/berth-dev/berth/registry"
	"github.com/berth-dev/berth/server/app/apptest"
	"github.com/berth-dev/berth/store"
)

// cosignClient runs the stock cosign CLI against an instance, logged in as the administrator, with a key pair
// of its own (cosign generate-key-pair) in its working directory.
type cosignClient struct {
	t   *testing.T
	bin string
	dir string
	env []string
}

func newCosign(t *testing.T, in *apptest.Instance) *cosignClient {
	t.Helper()
	dir := t.TempDir()
	c := &cosignClient{t: t, bin: apptest.GoTool(t, "cosign"), dir: dir, env: append(os.Environ(),
		"COSIGN_PASSWORD=cosign-test-password", "DOCKER_CONFIG="+filepath.Join(dir, "docker"), "HOME="+dir,
		"SIGSTORE_NO_CACHE=true", "TUF_ROOT="+filepath.Join(dir, "tuf"))}
	c.run("generate-key-pair")
	c.run("login", in.Host, "-u", "admin", "-p", apptest.AdminPassword)
	return c
}

func (c *cosignClient) runErr(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.bin, args...)
	cmd.Dir, cmd.Env = c.dir, c.env
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (c *cosignClient) run(args ...string) string {
	c.t.Helper()
	out, err := c.runErr(args...)
	if err != nil {
		c.t.Fatalf("cosign %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// publicKey is the client's cosign.pub.
func (c *cosignClient) publicKey() string {
	c.t.Helper()
	b, err := os.ReadFile(filepath.Join(c.dir, "cosign.pub"))
	if err != nil {
		c.t.Fatal(err)
	}
	return string(b)
}

// TestCosignSignAttestAndRequireSignature: the stock cosign client signs and attests an image in Berth. What it
// pushes fires no trigger, is not scanned and is no version, but is listed with the image. Under
// require_signature an unsigned image is refused (403), and so is one signed by a key the policy does not trust
// until its cosign.pub is added to trusted_keys; cosign verify and verify-attestation read everything they need
// while the policy is on.
func TestCosignSignAttestAndRequireSignature(t *testing.T) {
	in, _ := deliveryInstance(t)
	rcv := newReceiver(t)
	createRepo(t, in, "team", "app", "PRIVATE")
	trig, _ := createTrigger(t, in, "team/app", map[string]any{"name": "all", "url": rcv.URL + "/all"})
	cosign := newCosign(t, in)
	digest := pushImage(t, in, "team/app:v1")
	ref := in.Host + "/team/app@" + digest
	flags := []string{"--tlog-upload=false", "--allow-http-registry", "--yes", "--key", "cosign.key"}
	cosign.run(append(append([]string{"sign"}, flags...), ref)...)
	sbom := `{"bomFormat":"CycloneDX","specVersion":"1.5","version":1,"components":[{"type":"library","name":"musl","version":"1.2.5"}]}`
	if err := os.WriteFile(filepath.Join(cosign.dir, "sbom.json"), []byte(sbom), 0o600); err != nil {
		t.Fatal(err)
	}
	cosign.run(append(append([]string{"attest", "--type", "cyclonedx", "--predicate", "sbom.json"}, flags...), ref)...)
	pushImage(t, in, "team/app:v2")

	// Only v1 and v2 fired the trigger; no version, no scan for what cosign pushed.
	recs := byTag(t, waitRecords(t, in, "team/app", trig, settled(2)))
	time.Sleep(time.Second)
	recs = byTag(t, waitRecords(t, in, "team/app", trig, settled(2)))
	if len(recs) != 2 || recs["v1"] == nil || recs["v2"] == nil {
		t.Fatalf("trigger records %v, want v1 and v2", keys(toAny(recs)))
	}
	if r := in.Admin(t, "GET", "/api/v1/repositories/team/app/tags?page_size=100", nil); len(r.Items()) != 2 {
		t.Fatalf("versions: %s", r.Body)
	}
	r := in.Admin(t, "GET", "/api/v1/repositories/team/app/tags/v1", nil)
	acc, _ := r.JSON["accessories"].([]any)
	types := map[string]map[string]any{}
	for _, a := range acc {
		m := a.(map[string]any)
		types[m["type"].(string)] = m
	}
	sig, att := types["signature"], types["attestation"]
	if len(acc) != 2 || sig == nil || att == nil || !strings.HasSuffix(sig["tag"].(string), ".sig") || sig["verified"] != false ||
		!strings.Contains(fmt.Sprint(att["predicate_types"]), signature.PredicateCycloneDX) || r.JSON["signed"] != false {
		t.Fatalf("v1 with cosign's accessories, its key not trusted: %s", r.Body)
	}
	ctx := context.Background()
	for _, a := range []map[string]any{sig, att} {
		if _, err := in.App.Store.GetScan(ctx, a["digest"].(string)); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s was scanned: %v", a["tag"], err)
		}
	}

	// require_signature: v2 (unsigned) and v1 (signed by an untrusted key) are refused to a deployer, who may
	// only pull.
	if r := in.Admin(t, "POST", "/api/v1/users", map[string]any{"name": "deployer", "password": "deployer-password-1",
		"policies": []string{"AliyunContainerRegistryReadOnlyAccess"}}); r.Status != 201 {
		t.Fatalf("user: %s", r.Body)
	}
	deployer := remote.WithAuth(&authn.Basic{Username: "deployer", Password: "deployer-password-1"})
	putPolicy(t, in, "/api/v1/repositories/team/app/security-policy", map[string]any{"block_severity": "NONE", "require_signature": true})
	wantDeniedWith(t, in, deployer, "team/app:v2", "require_signature", "not signed by the instance key or a trusted key", "repository team/app")
	wantDeniedWith(t, in, deployer, "team/app:v1", "require_signature")
	// The user's key is trusted: v1 pulls, v2 is still refused.
	putPolicy(t, in, "/api/v1/repositories/team/app/security-policy", map[string]any{"block_severity": "NONE", "require_signature": true,
		"trusted_keys": []string{cosign.publicKey()}})
	wantPullsWith(t, in, deployer, "team/app:v1")
	wantDeniedWith(t, in, deployer, "team/app:v2", "require_signature")
	// So does the administrator's pull; only a signing client (cosign sign reads what it signs) of a user who
	// may push reads it.
	wantDenied(t, in, "team/app:v2", "require_signature")
	asCosign := remote.WithUserAgent("cosign/v2.6.5")
	if te := pullWith(t, in, "team/app:v2", adminAuth, asCosign); te != nil {
		t.Fatalf("cosign as the administrator reading v2: %v", te)
	}
	if te := pullWith(t, in, "team/app:v2", deployer, asCosign); te == nil {
		t.Fatal("cosign as a read-only deployer read v2")
	}
	r = in.Admin(t, "GET", "/api/v1/repositories/team/app/tags/v1", nil)
	pub, err := signature.ParsePublicKeyPEM([]byte(cosign.publicKey()))
	if err != nil {
		t.Fatal(err)
	}
	if r.JSON["signed"] != true || r.JSON["signature_key"] != signature.KeyID(pub) || r.JSON["blocked"] != false || r.JSON["has_sbom"] != true {
		t.Fatalf("v1 signed by a trusted key: %s", r.Body)
	}
	if r := in.Admin(t, "GET", "/api/v1/repositories/team/app/tags/v2", nil); r.JSON["signed"] != false || r.JSON["blocked"] != true {
		t.Fatalf("v2: %s", r.Body)
	}
	// A signature attached as an OCI 1.1 referrer (cosign's experimental referrers mode) counts as well.
	// An image pushed under the policy is signed with cosign (which reads it first), then pulls.
	d4 := pushImage(t, in, "team/app:v4")
	wantDeniedWith(t, in, deployer, "team/app:v4", "require_signature")
	// Its trigger did not fire.
	if r := byTag(t, waitRecords(t, in, "team/app", trig, settled(3)))["v4"]; r["status"] != "NOT_TRIGGERED" ||
		!strings.Contains(fmt.Sprint(r["reason"]), "require_signature") {
		t.Fatalf("trigger record of the unsigned v4: %v", r)
	}
	cosign.run(append(append([]string{"sign"}, flags...), in.Host+"/team/app@"+d4)...)
	wantPullsWith(t, in, deployer, "team/app:v4")
	d3 := pushImage(t, in, "team/app:v3")
	wantDeniedWith(t, in, deployer, "team/app:v3", "require_signature")
	cosign.env = append(cosign.env, "COSIGN_EXPERIMENTAL=1")
	cosign.run(append(append([]string{"sign", "--registry-referrers-mode=oci-1-1"}, flags...), in.Host+"/team/app@"+d3)...)
	wantPullsWith(t, in, deployer, "team/app:v3")
	r = in.Admin(t, "GET", "/api/v1/repositories/team/app/tags/v3", nil)
	if acc, _ := r.JSON["accessories"].([]any); r.JSON["signed"] != true || len(acc) != 1 || acc[0].(map[string]any)["referrer"] != true ||
		acc[0].(map[string]any)["type"] != "signature" || acc[0].(map[string]any)["verified"] != true {
		t.Fatalf("v3 signed as a referrer: %s", r.Body)
	}
	// cosign reads the signature and the attestation while require_signature is on.
	verify := []string{"--key", "cosign.pub", "--insecure-ignore-tlog=true", "--allow-http-registry"}
	cosign.run(append(append([]string{"verify"}, verify...), in.Host+"/team/app:v1")...)
	cosign.run(append(append([]string{"verify-attestation", "--type", "cyclonedx"}, verify...), in.Host+"/team/app:v1")...)
	// The SBOM is the predicate cosign attested.
	if r := in.Admin(t, "GET", "/api/v1/repositories/team/app/tags/v1/sbom", nil); r.Status != 200 || r.JSON["bomFormat"] != "CycloneDX" ||
		len(r.JSON["components"].([]any)) != 1 {
		t.Fatalf("SBOM: %d %s", r.Status, r.Body)
	}
	if r := in.Admin(t, "GET", "/api/v1/repositories/team/app/tags/v2/sbom", nil); r.Status != 404 {
		t.Fatalf("SBOM of v2: %d %s", r.Status, r.Body)
	}

	// Deleting v1 deletes its signature's and attestation's tags; garbage collection then frees them.
	if r := in.Admin(t, "DELETE", "/api/v1/repositories/team/app/tags/v1", nil); r.Status != 204 {
		t.Fatalf("delete v1: %d %s", r.Status, r.Body)
	}
	for _, a := range []map[string]any{sig, att} {
		if _, _, _, err := in.App.Registry.GetManifest(ctx, "team/app", a["tag"].(string)); registry.ErrorCode(err) != registry.CodeManifestUnknown {
			t.Fatalf("%s after its image was deleted: %v", a["tag"], err)
		}
		if _, _, _, err := in.App.Registry.GetManifest(ctx, "team/app", a["digest"].(string)); err != nil {
			t.Fatalf("%s is collected before garbage collection: %v", a["digest"], err)
		}
	}
	time.Sleep(1100 * time.Millisecond) // past the collector's clock slack
	if _, err := in.App.GC.Run(ctx, registry.GCOptions{}, "api"); err != nil {
		t.Fatal(err)
	}
	for _, a := range []map[string]any{sig, att} {
		if _, _, _, err := in.App.Registry.GetManifest(ctx, "team/app", a["digest"].(string)); registry.ErrorCode(err) != registry.CodeManifestUnknown {
			t.Errorf("%s survived garbage collection: %v", a["digest"], err)
		}
	}
	if _, _, _, err := in.App.Registry.GetManifest(ctx, "team/app", "v2"); err != nil {
		t.Errorf("v2 after garbage collection: %v", err)
	}
}
