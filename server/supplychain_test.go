package server_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/berth-dev/berth/policies/signature"
	"github.com/berth-dev/berth/server/app"
	"github.com/berth-dev/berth/server/app/apptest"
	"github.com/berth-dev/berth/store"
	"github.com/berth-dev/berth/workers"
)

// cosign runs the stock client as the administrator, with a home, Docker config and cache of its own.
type cosign struct {
	bin, home string
}

func newCosignVerifier(t *testing.T) *cosign {
	return &cosign{bin: apptest.GoTool(t, "cosign"), home: t.TempDir()}
}

// verify runs `cosign SUB --key KEY … REF` and returns its stdout; it fails the test unless cosign succeeds.
func (c *cosign) verify(t *testing.T, key, ref, sub string, extra ...string) string {
	t.Helper()
	args := append([]string{sub, "--key", key}, extra...)
	args = append(args, ref)
	out, errOut, err := c.runRef(args)
	if err != nil {
		t.Fatalf("cosign %s: %v\n%s\n%s", strings.Join(args, " "), err, out, errOut)
	}
	return out
}

// runRef runs cosign with args whose last is the image reference, adding the flags every call needs before it.
func (c *cosign) runRef(args []string) (string, string, error) {
	ref := args[len(args)-1]
	full := append(append([]string{}, args[:len(args)-1]...), "--insecure-ignore-tlog=true", "--allow-http-registry",
		"--registry-username", "admin", "--registry-password", apptest.AdminPassword, ref)
	cmd := exec.Command(c.bin, full...)
	cmd.Env = c.env()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	return out.String(), errb.String(), err
}

// env keeps cosign out of the user's home: its config, Docker credentials and TUF cache live in the test's.
func (c *cosign) env() []string {
	return append(os.Environ(), "HOME="+c.home, "DOCKER_CONFIG="+filepath.Join(c.home, ".docker"),
		"SIGSTORE_NO_CACHE=true", "TUF_ROOT="+filepath.Join(c.home, ".sigstore"))
}

// cmd runs cosign in dir with env added (NAME=VALUE entries first, then its arguments), and returns its output.
func (c *cosign) cmd(dir string, args ...string) (string, error) {
	var env []string
	for len(args) > 0 && strings.Contains(args[0], "=") && !strings.HasPrefix(args[0], "-") {
		env, args = append(env, args[0]), args[1:]
	}
	cmd := exec.Command(c.bin, args...)
	cmd.Dir = dir
	cmd.Env = append(c.env(), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// statements decodes the DSSE envelopes `cosign verify-attestation` prints, one a line.
func statements(t *testing.T, out string) []signature.Statement {
	t.Helper()
	var sts []signature.Statement
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var env signature.Envelope
		if err := json.Unmarshal([]byte(line), &env); err != nil {
			t.Fatalf("verify-attestation output: %v: %q", err, line)
		}
		payload, err := base64.StdEncoding.DecodeString(env.Payload)
		if err != nil {
			t.Fatal(err)
		}
		var st signature.Statement
		if err := json.Unmarshal(payload, &st); err != nil {
			t.Fatal(err)
		}
		sts = append(sts, st)
	}
	return sts
}

// TestBuildsSignedAndAttested: a Git-driven build is signed with the instance's key and its SLSA provenance is
// attested; the stock cosign verifies both with the key GET /api/v1/system/signing-key answers without
// authentication, the provenance names the Git URL (without the source's credentials), the commit, the rule
// and the Dockerfile, it is listed by the referrers API, and an image pushed over the tag by hand fails
// verification.
func TestBuildsSignedAndAttested(t *testing.T) {
	bk := buildkitAddr(t)
	in := scanInstance(t, scanDB(t), func(c *app.Config) { c.BuildkitAddr = bk })
	allowBuilds(t, in.Host)
	createRepo(t, in, "demo", "signed", "PRIVATE")
	const repo = "demo/signed"
	api := "/api/v1/repositories/" + repo

	// The signing key: public, PEM, the same on every call.
	resp, err := http.Get(in.URL + "/api/v1/system/signing-key")
	if err != nil {
		t.Fatal(err)
	}
	pemBytes, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/x-pem-file" {
		t.Fatalf("signing key: %d %s %s", resp.StatusCode, resp.Header.Get("Content-Type"), pemBytes)
	}
	if _, err := signature.ParsePublicKeyPEM(pemBytes); err != nil {
		t.Fatalf("signing key: %v\n%s", err, pemBytes)
	}
	if strings.Contains(string(pemBytes), "PRIVATE") {
		t.Fatal("the signing key endpoint shows a private key")
	}
	keyFile := filepath.Join(t.TempDir(), "berth.pub")
	if err := os.WriteFile(keyFile, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}

	g := newGitRepo(t)
	files := map[string]string{"Dockerfile": "FROM scratch\nCOPY rootfs/ /\n"}
	for p, c := range alpineFiles("1.2.5-r9") {
		files["rootfs/"+p] = c
	}
	commit := g.commit(t, files, "first")
	const sourcePassword = "source-token-never-shown"
	r := in.Admin(t, "PUT", api+"/source", map[string]any{"provider": "github", "url": g.URL,
		"username": "dev", "password": sourcePassword})
	if r.Status != 201 {
		t.Fatalf("put source: %d %s", r.Status, r.Body)
	}
	hookURL, secret := r.JSON["webhook_url"].(string), r.JSON["webhook_secret"].(string)
	r = in.Admin(t, "POST", api+"/build-rules", map[string]any{"source_type": "BRANCH", "source_ref": "main", "image_tag": "latest"})
	if r.Status != 201 {
		t.Fatalf("rule: %d %s", r.Status, r.Body)
	}
	ruleID := r.JSON["id"].(string)
	// With require_signature on from the start, the build still ends SUCCESS: it signs before the gate judges.
	if r := in.Admin(t, "PUT", api+"/security-policy", map[string]any{"block_severity": "NONE", "require_signature": true}); r.Status != 200 {
		t.Fatalf("security policy: %d %s", r.Status, r.Body)
	}
	status, ans := sendHook(t, hookURL, secret, "push", "sig-1", githubPush("refs/heads/main", strings.Repeat("0", 40), commit))
	ids := hookBuilds(t, ans)
	if status != http.StatusAccepted || len(ids) != 1 {
		t.Fatalf("hook: %d %v", status, ans)
	}
	b := waitBuild(t, in, repo, ids[0], buildTimeout)
	requireSuccess(t, in, repo, b)
	log := buildLog(t, in, repo, ids[0])
	if !strings.Contains(log, "signed "+b["digest"].(string)) {
		t.Errorf("build log does not say the image was signed:\n%s", log)
	}
	dg := b["digest"].(string)
	ref := in.Host + "/" + repo + ":latest"

	cs := newCosignVerifier(t)
	cs.verify(t, keyFile, ref, "verify")
	cs.verify(t, keyFile, in.Host+"/"+repo+"@"+dg, "verify")
	out := cs.verify(t, keyFile, ref, "verify-attestation", "--type", "slsaprovenance")
	sts := statements(t, out)
	if len(sts) == 0 {
		t.Fatal("verify-attestation printed no statement")
	}
	st := sts[0]
	if st.PredicateType != signature.PredicateSLSAProvenance {
		t.Errorf("predicate type %s", st.PredicateType)
	}
	if bytes.Contains(st.Predicate, []byte(sourcePassword)) {
		t.Error("the provenance holds the source's password")
	}
	var pred struct {
		Builder struct {
			ID string `json:"id"`
		} `json:"builder"`
		Invocation struct {
			ConfigSource struct {
				EntryPoint string `json:"entryPoint"`
			} `json:"configSource"`
			Environment struct {
				Berth map[string]string `json:"berth"`
			} `json:"environment"`
		} `json:"invocation"`
		Metadata struct {
			BuildKit struct {
				VCS map[string]string `json:"vcs"`
			} `json:"https://mobyproject.org/buildkit@v1#metadata"`
		} `json:"metadata"`
	}
	if err := json.Unmarshal(st.Predicate, &pred); err != nil {
		t.Fatal(err)
	}
	berth := pred.Invocation.Environment.Berth
	if berth["commit"] != commit || berth["rule_id"] != ruleID || berth["build_id"] != ids[0] ||
		berth["dockerfile"] != "/Dockerfile" || berth["repository"] != repo {
		t.Errorf("provenance's berth environment: %v (want commit %s, rule %s)", berth, commit, ruleID)
	}
	if vcs := pred.Metadata.BuildKit.VCS; vcs["revision"] != commit || vcs["source"] != g.URL {
		t.Errorf("provenance's vcs: %v (want %s at %s)", vcs, g.URL, commit)
	}
	if pred.Builder.ID != in.URL || pred.Invocation.ConfigSource.EntryPoint != "Dockerfile" {
		t.Errorf("builder %q, Dockerfile %q", pred.Builder.ID, pred.Invocation.ConfigSource.EntryPoint)
	}

	// The SBOM the scanner made, attested too: it lists the image's Alpine packages.
	sts = statements(t, cs.verify(t, keyFile, ref, "verify-attestation", "--type", "cyclonedx"))
	if len(sts) != 1 || sts[0].PredicateType != signature.PredicateCycloneDX {
		t.Fatalf("cyclonedx attestations: %+v", sts)
	}
	var bom struct {
		BOMFormat  string `json:"bomFormat"`
		Components []struct {
			Name, Version, Purl string
		} `json:"components"`
	}
	if err := json.Unmarshal(sts[0].Predicate, &bom); err != nil {
		t.Fatal(err)
	}
	musl := false
	for _, c := range bom.Components {
		musl = musl || (c.Name == "musl" && c.Version == "1.2.5-r9")
	}
	if bom.BOMFormat != "CycloneDX" || !musl {
		t.Errorf("SBOM without musl 1.2.5-r9: %s", sts[0].Predicate)
	}
	if !strings.Contains(log, "attested the SBOM") {
		t.Errorf("build log does not say the SBOM was attested:\n%s", log)
	}

	// The attestations are referrers of the image.
	req, _ := http.NewRequest("GET", in.URL+"/v2/"+repo+"/referrers/"+dg, nil)
	req.SetBasicAuth("admin", apptest.AdminPassword)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var refs struct {
		Manifests []struct {
			ArtifactType string `json:"artifactType"`
		} `json:"manifests"`
	}
	err = json.NewDecoder(resp.Body).Decode(&refs)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || len(refs.Manifests) != 2 || refs.Manifests[0].ArtifactType != signature.MediaDSSE {
		t.Errorf("referrers of %s: %d %v %+v", dg, resp.StatusCode, err, refs)
	}

	// Accessory tags are no versions.
	r = in.Admin(t, "GET", api+"/tags", nil)
	if r.Status != 200 || strings.Contains(string(r.Body), ".sig") || strings.Contains(string(r.Body), ".att") {
		t.Errorf("tags list accessories: %d %s", r.Status, r.Body)
	}

	// require_signature (set before the build): the image Berth built and signed pulls.
	admin := remote.WithAuth(&authn.Basic{Username: "admin", Password: apptest.AdminPassword})
	wantPullsWith(t, in, admin, repo+":latest")

	// Another image pushed over the tag by hand is not Berth's: cosign refuses it, and require_signature
	// refuses its pull, while the signed image still pulls by digest.
	pushImage(t, in, repo+":latest")
	if out, errOut, err := cs.runRef([]string{"verify", "--key", keyFile, ref}); err == nil {
		t.Fatalf("cosign verify accepted an image pushed by hand:\n%s\n%s", out, errOut)
	} else if !strings.Contains(errOut, "no signatures found") && !strings.Contains(errOut, "no matching signatures") {
		t.Errorf("cosign verify of the tampered tag: %v\n%s", err, errOut)
	}
	wantDeniedWith(t, in, admin, repo+":latest", "require_signature", "not signed")
	wantPullsWith(t, in, admin, repo+"@"+dg)
}

// TestSignMultiPlatform: the signing of a build's index of two platform images, each with a BuildKit
// attestation manifest, signs the index and each platform image and attests each platform's provenance, so the
// stock cosign verifies the index (by tag) and each platform image (by digest), signature and provenance.
func TestSignMultiPlatform(t *testing.T) {
	in := apptest.Start(t, apptest.Options{})
	if r := in.Admin(t, "POST", "/api/v1/namespaces", map[string]any{"name": "demo"}); r.Status != 201 {
		t.Fatalf("namespace: %d %s", r.Status, r.Body)
	}
	createRepo(t, in, "demo", "multi", "PRIVATE")
	const repo = "demo/multi"
	const commit = "0123456789abcdef0123456789abcdef01234567"

	// The index BuildKit pushes for two platforms with attest:provenance.
	idx := v1.ImageIndex(empty.Index)
	idx = mutate.IndexMediaType(idx, types.OCIImageIndex)
	var platforms []string
	for _, arch := range []string{"amd64", "arm64"} {
		img, err := random.Image(64, 1)
		if err != nil {
			t.Fatal(err)
		}
		img = mutate.MediaType(img, types.OCIManifestSchema1)
		dg, err := img.Digest()
		if err != nil {
			t.Fatal(err)
		}
		platforms = append(platforms, dg.String())
		st, _ := json.Marshal(map[string]any{"_type": signature.StatementType, "predicateType": signature.PredicateSLSAProvenance,
			"subject": []any{map[string]any{"name": "pkg:docker/x", "digest": map[string]string{"sha256": dg.Hex}}},
			"predicate": map[string]any{"builder": map[string]string{"id": ""}, "buildType": "https://mobyproject.org/buildkit@v1",
				"invocation": map[string]any{"environment": map[string]string{"platform": "linux/" + arch}}}})
		att, err := mutate.Append(mutate.MediaType(empty.Image, types.OCIManifestSchema1), mutate.Addendum{
			Layer:       static.NewLayer(st, "application/vnd.in-toto+json"),
			Annotations: map[string]string{"in-toto.io/predicate-type": signature.PredicateSLSAProvenance}})
		if err != nil {
			t.Fatal(err)
		}
		idx = mutate.AppendManifests(idx,
			mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: arch}}},
			mutate.IndexAddendum{Add: att, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "unknown", Architecture: "unknown"},
				Annotations: map[string]string{"vnd.docker.reference.type": "attestation-manifest", "vnd.docker.reference.digest": dg.String()}}})
	}
	tag, err := name.NewTag(in.Host+"/"+repo+":v1", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(tag, idx, remote.WithAuth(&authn.Basic{Username: "admin", Password: apptest.AdminPassword})); err != nil {
		t.Fatal(err)
	}
	idg, err := idx.Digest()
	if err != nil {
		t.Fatal(err)
	}

	// What users attached before: a signature made with their own key by the stock cosign, and a large foreign
	// layer in the attestation tag. Berth's signing keeps both.
	cs := newCosignVerifier(t)
	keyDir := t.TempDir()
	if out, err := cs.cmd(keyDir, "COSIGN_PASSWORD=", "generate-key-pair"); err != nil {
		t.Fatalf("cosign generate-key-pair: %v\n%s", err, out)
	}
	if out, err := cs.cmd(keyDir, "COSIGN_PASSWORD=", "sign", "--key", "cosign.key", "--tlog-upload=false", "--allow-http-registry",
		"--registry-username", "admin", "--registry-password", apptest.AdminPassword, "--yes", in.Host+"/"+repo+"@"+idg.String()); err != nil {
		t.Fatalf("cosign sign: %v\n%s", err, out)
	}
	attTag, _ := signature.Tag(idg.String(), signature.SuffixAttestation)
	big := bytes.Repeat([]byte("x"), signature.MaxBlob+1)
	foreign, err := mutate.Append(mutate.MediaType(empty.Image, types.OCIManifestSchema1),
		mutate.Addendum{Layer: static.NewLayer(big, "application/vnd.example.big")})
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(tag.Context().Tag(attTag), foreign, remote.WithAuth(&authn.Basic{Username: "admin", Password: apptest.AdminPassword})); err != nil {
		t.Fatal(err)
	}
	bigDigest := signature.Digest(big)

	signer := &workers.Signer{Key: in.SigningKey}
	target := workers.Target{Registry: in.Host, Repository: repo, Insecure: true, Username: "admin", Password: apptest.AdminPassword}
	b := &store.Build{ID: "b1", Repository: repo, RuleID: "r1", Trigger: "manual", RefType: "BRANCH", Ref: "main", Commit: commit,
		ImageTag: "v1", Spec: store.BuildSpec{DockerfileName: "Dockerfile"}}
	n, err := signer.SignBuild(t.Context(), target, b, idg.String(), in.URL)
	if err != nil || n != 2 {
		t.Fatalf("SignBuild: %d statements, %v", n, err)
	}
	// Again (a build retried): nothing doubles.
	if n, err := signer.SignBuild(t.Context(), target, b, idg.String(), in.URL); err != nil || n != 2 {
		t.Fatalf("SignBuild again: %d statements, %v", n, err)
	}

	keyFile := filepath.Join(t.TempDir(), "berth.pub")
	pemBytes, err := in.SigningKey.PublicPEM()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	cs.verify(t, keyFile, tag.String(), "verify")
	cs.verify(t, filepath.Join(keyDir, "cosign.pub"), tag.String(), "verify")
	d, err := remote.Get(tag.Context().Tag(attTag), remote.WithAuth(&authn.Basic{Username: "admin", Password: apptest.AdminPassword}))
	if err != nil || !strings.Contains(string(d.Manifest), bigDigest) {
		t.Errorf("the foreign layer of %s was dropped: %v\n%s", attTag, err, d.Manifest)
	}
	sts := statements(t, cs.verify(t, keyFile, tag.String(), "verify-attestation", "--type", "slsaprovenance"))
	if len(sts) != 2 {
		t.Fatalf("the index has %d provenance statements, want one per platform (a retry must not add more)", len(sts))
	}
	for i, p := range platforms {
		_, pred := cs.platformProvenance(t, keyFile, in.Host+"/"+repo+"@"+p)
		if want := "linux/" + []string{"amd64", "arm64"}[i]; pred.Invocation.Environment.Platform != want ||
			pred.Invocation.Environment.Berth["commit"] != commit {
			t.Errorf("%s: provenance of %q at %q, want %s at %s", p, pred.Invocation.Environment.Platform,
				pred.Invocation.Environment.Berth["commit"], want, commit)
		}
	}
}

// TestBuildsSignedMultiPlatformOnBuildKit: a real two-platform build (linux/amd64 and linux/arm64; FROM scratch
// and COPY need no emulation) is signed and attested for every platform: the stock cosign verifies the index by
// tag, and each platform image by digest, signature and provenance, each provenance naming its platform and the
// commit built.
func TestBuildsSignedMultiPlatformOnBuildKit(t *testing.T) {
	bk := buildkitAddr(t)
	in := apptest.Start(t, apptest.Options{Configure: func(c *app.Config) { c.BuildkitAddr = bk }})
	allowBuilds(t, in.Host)
	if r := in.Admin(t, "POST", "/api/v1/namespaces", map[string]any{"name": "demo"}); r.Status != 201 {
		t.Fatalf("namespace: %d %s", r.Status, r.Body)
	}
	createRepo(t, in, "demo", "multi", "PRIVATE")
	const repo = "demo/multi"
	api := "/api/v1/repositories/" + repo
	g := newGitRepo(t)
	commit := g.commit(t, map[string]string{"Dockerfile": "FROM scratch\nCOPY hello.txt /hello.txt\n", "hello.txt": "two platforms\n"}, "first")
	if r := in.Admin(t, "PUT", api+"/source", map[string]any{"provider": "generic", "url": g.URL}); r.Status != 201 {
		t.Fatalf("put source: %d %s", r.Status, r.Body)
	}
	r := in.Admin(t, "POST", api+"/build-rules", map[string]any{"source_type": "BRANCH", "source_ref": "main", "image_tag": "latest",
		"platforms": []string{"linux/amd64", "linux/arm64"}})
	if r.Status != 201 {
		t.Fatalf("rule: %d %s", r.Status, r.Body)
	}
	r = in.Admin(t, "POST", api+"/build-rules/"+r.JSON["id"].(string)+"/builds", nil)
	if r.Status != 201 && r.Status != 202 {
		t.Fatalf("build now: %d %s", r.Status, r.Body)
	}
	b := waitBuild(t, in, repo, r.JSON["id"].(string), buildTimeout)
	requireSuccess(t, in, repo, b)

	pemBytes, err := in.SigningKey.PublicPEM()
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "berth.pub")
	if err := os.WriteFile(keyFile, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	tag, err := name.NewTag(in.Host+"/"+repo+":latest", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := remote.Index(tag, remote.WithAuth(&authn.Basic{Username: "admin", Password: apptest.AdminPassword}))
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	platforms := map[string]string{} // platform → digest of its image
	for _, m := range im.Manifests {
		if m.Platform != nil && m.Platform.OS == "linux" {
			platforms[m.Platform.OS+"/"+m.Platform.Architecture] = m.Digest.String()
		}
	}
	if len(platforms) != 2 || platforms["linux/amd64"] == "" || platforms["linux/arm64"] == "" {
		t.Fatalf("the built index's platform images: %v", platforms)
	}

	cs := newCosignVerifier(t)
	cs.verify(t, keyFile, tag.String(), "verify")
	if sts := statements(t, cs.verify(t, keyFile, tag.String(), "verify-attestation", "--type", "slsaprovenance")); len(sts) != 2 {
		t.Fatalf("the index has %d provenance statements, want one per platform", len(sts))
	}
	for platform, dg := range platforms {
		st, pred := cs.platformProvenance(t, keyFile, in.Host+"/"+repo+"@"+dg)
		// BuildKit's invocation.environment.platform is the builder's; the statement is about this platform's
		// image (its subject), built from the commit.
		subject := false
		for _, sub := range st.Subject {
			subject = subject || "sha256:"+sub.Digest["sha256"] == dg
		}
		if !subject || pred.Invocation.Environment.Berth["commit"] != commit {
			t.Errorf("%s (%s): provenance about %+v at %q, want it about %s at %s", platform, dg, st.Subject,
				pred.Invocation.Environment.Berth["commit"], dg, commit)
		}
	}
	// The version lists both platforms, and the accessories under it.
	v := in.Admin(t, "GET", api+"/tags/latest", nil)
	if ps := fmt.Sprint(v.JSON["platforms"]); v.JSON["signed"] != true || !strings.Contains(ps, "linux/amd64") || !strings.Contains(ps, "linux/arm64") {
		t.Errorf("the version: %s", v.Body)
	}
}

// provenancePredicate is what the multi-platform tests read of a provenance: the platform BuildKit recorded and
// Berth's environment.
type provenancePredicate struct {
	Invocation struct {
		Environment struct {
			Platform string            `json:"platform"`
			Berth    map[string]string `json:"berth"`
		} `json:"environment"`
	} `json:"invocation"`
}

// platformProvenance verifies a platform image's signature and its one provenance statement with the stock
// cosign, and returns the statement and its predicate.
func (c *cosign) platformProvenance(t *testing.T, keyFile, ref string) (signature.Statement, provenancePredicate) {
	t.Helper()
	c.verify(t, keyFile, ref, "verify")
	sts := statements(t, c.verify(t, keyFile, ref, "verify-attestation", "--type", "slsaprovenance"))
	var pred provenancePredicate
	if len(sts) != 1 || json.Unmarshal(sts[0].Predicate, &pred) != nil {
		t.Fatalf("%s: statements %+v", ref, sts)
	}
	return sts[0], pred
}
