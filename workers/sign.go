package workers

import (
	"bytes"
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/sync/errgroup"

	"github.com/berth-dev/berth/pipeline"
	"github.com/berth-dev/berth/policies/signature"
	"github.com/berth-dev/berth/store"
	"github.com/berth-dev/berth/workers/buildkit"
)

// Signer signs the images builds push and attests how they were built (SPEC §15), in cosign's tag-based format
// so the stock `cosign verify` and `cosign verify-attestation` accept them: a ".sig" accessory per image (the
// tag's digest, and each platform image of an index), and a ".att" accessory holding a signed in-toto
// statement of each platform's SLSA provenance (BuildKit's, with Berth's build named in it). Each statement is
// also pushed as an OCI referrer of the tag's digest. It pushes through the registry as a client, with the
// build's own login, so accessories take the path every push takes.
type Signer struct {
	Key *pipeline.SigningKey
}

// Annotations of the manifests BuildKit puts in an image index beside each platform image.
const (
	annotationRefType   = "vnd.docker.reference.type"
	annotationRefDigest = "vnd.docker.reference.digest"
	attestationManifest = "attestation-manifest"
	// annotationInTotoPredicate names the predicate type of an in-toto layer of BuildKit's attestation manifest.
	annotationInTotoPredicate = "in-toto.io/predicate-type"
	mediaInToto               = "application/vnd.in-toto+json"
)

// imageRepo is one repository of Berth's registry as a build's client reaches it: plain OCI distribution
// requests over one authenticated transport (one token for all of a build's signing).
type imageRepo struct {
	ctx    context.Context
	repo   name.Repository
	base   string // scheme://host/v2/namespace/repo
	client *http.Client
}

func newImageRepo(ctx context.Context, registryHost, repository string, insecure bool, user, password string) (*imageRepo, error) {
	var nopts []name.Option
	if insecure {
		nopts = append(nopts, name.Insecure)
	}
	repo, err := name.NewRepository(registryHost+"/"+repository, nopts...)
	if err != nil {
		return nil, err
	}
	tr, err := transport.NewWithContext(ctx, repo.Registry, &authn.Basic{Username: user, Password: password},
		remote.DefaultTransport, []string{repo.Scope(transport.PushScope)})
	if err != nil {
		return nil, fmt.Errorf("log in to %s: %w", registryHost, err)
	}
	return &imageRepo{ctx: ctx, repo: repo, client: &http.Client{Transport: tr},
		base: repo.Registry.Scheme() + "://" + repo.RegistryStr() + "/v2/" + repo.RepositoryStr()}, nil
}

// name is the repository as statements and signatures name it (host/namespace/repo).
func (r *imageRepo) name() string { return r.repo.Name() }

// errNotFound is a 404 of the registry.
var errNotFound = errors.New("not found")

func (r *imageRepo) do(method, path, contentType string, body []byte, accept ...string) (*http.Response, []byte, error) {
	req, err := http.NewRequestWithContext(r.ctx, method, r.base+path, bytes.NewReader(body))
	if err != nil {
		return nil, nil, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for _, a := range accept {
		req.Header.Add("Accept", a)
	}
	resp, err := r.client.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, signature.MaxBlob+1))
	if err != nil {
		return nil, nil, err
	}
	if resp.StatusCode == http.StatusNotFound {
		return resp, data, errNotFound
	}
	if resp.StatusCode >= 300 {
		return resp, data, fmt.Errorf("%s %s: %d %.300s", method, path, resp.StatusCode, data)
	}
	if len(data) > signature.MaxBlob {
		return nil, nil, fmt.Errorf("%s %s: more than %d bytes", method, path, signature.MaxBlob)
	}
	return resp, data, nil
}

// manifest reads the manifest ref (a tag or a digest): its media type and bytes.
func (r *imageRepo) manifest(ref string) (string, []byte, error) {
	resp, data, err := r.do(http.MethodGet, "/manifests/"+ref, "", nil, string(types.OCIImageIndex), string(types.OCIManifestSchema1),
		string(types.DockerManifestList), string(types.DockerManifestSchema2))
	if err != nil {
		return "", nil, err
	}
	if strings.HasPrefix(ref, "sha256:") && signature.Digest(data) != ref {
		return "", nil, fmt.Errorf("manifest %s: the registry answered other content", ref)
	}
	return resp.Header.Get("Content-Type"), data, nil
}

// blob reads a blob of the repository, at most signature.MaxBlob bytes.
func (r *imageRepo) blob(dg string) ([]byte, error) {
	_, data, err := r.do(http.MethodGet, "/blobs/"+dg, "", nil)
	if err != nil {
		return nil, err
	}
	if signature.Digest(data) != dg {
		return nil, fmt.Errorf("blob %s: the registry answered other content", dg)
	}
	return data, nil
}

// putBlob uploads data in one request (a monolithic POST with its digest).
func (r *imageRepo) putBlob(data []byte) error {
	_, _, err := r.do(http.MethodPost, "/blobs/uploads/?digest="+signature.Digest(data), "application/octet-stream", data)
	return err
}

func (r *imageRepo) putManifest(ref string, m []byte) error {
	_, _, err := r.do(http.MethodPut, "/manifests/"+ref, signature.MediaOCIManifest, m)
	return err
}

// accessory is the current manifest of an accessory tag and its layers' bytes; both empty when the tag is not
// there yet.
type accessory struct {
	manifest []byte
	layers   []signature.Layer
}

func (r *imageRepo) accessory(tag string) (*accessory, error) {
	_, raw, err := r.manifest(tag)
	if errors.Is(err, errNotFound) {
		return &accessory{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", tag, err)
	}
	var m signature.Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("%s is not an image manifest: %w", tag, err)
	}
	a := &accessory{manifest: raw}
	read := 0
	for _, l := range m.Layers {
		if l.Size > signature.MaxBlob || l.MediaType != signature.MediaSimpleSigning && l.MediaType != signature.MediaDSSE ||
			read == signature.MaxLayers {
			// Kept as it is, unread: a large SBOM, a layer of a kind Berth does not sign, or beyond the bound.
			a.layers = append(a.layers, signature.Layer{MediaType: l.MediaType, Annotations: l.Annotations, Stored: &l})
			continue
		}
		read++
		data, err := r.blob(l.Digest)
		if err != nil {
			return nil, fmt.Errorf("read a layer of %s: %w", tag, err)
		}
		a.layers = append(a.layers, signature.Layer{MediaType: l.MediaType, Data: data, Annotations: l.Annotations})
	}
	return a, nil
}

// pushAccessory writes layers as the accessory tag's manifest (cosign's format: an image config listing them).
func (r *imageRepo) pushAccessory(tag string, layers []signature.Layer) error {
	manifest, config, err := signature.Build(layers, time.Now())
	if err != nil {
		return err
	}
	blobs := [][]byte{config}
	for _, l := range layers {
		if l.Stored == nil {
			blobs = append(blobs, l.Data)
		}
	}
	if err := r.putBlobs(blobs); err != nil {
		return fmt.Errorf("push %s: %w", tag, err)
	}
	if err := r.putManifest(tag, manifest); err != nil {
		return fmt.Errorf("push %s: %w", tag, err)
	}
	return nil
}

// putBlobs uploads blobs at once.
func (r *imageRepo) putBlobs(blobs [][]byte) error {
	var g errgroup.Group
	for _, b := range blobs {
		g.Go(func() error { return r.putBlob(b) })
	}
	return g.Wait()
}

// pushReferrer writes an artifact manifest of layers (pushed already) that refers to subject, by digest.
func (r *imageRepo) pushReferrer(subject signature.Descriptor, artifactType string, layers []signature.Layer) error {
	m, err := signature.BuildReferrer(subject, artifactType, layers)
	if err != nil {
		return err
	}
	if err := r.putBlob([]byte(signature.EmptyJSON)); err != nil {
		return fmt.Errorf("push a referrer of %s: %w", subject.Digest, err)
	}
	if err := r.putManifest(signature.Digest(m), m); err != nil {
		return fmt.Errorf("push a referrer of %s: %w", subject.Digest, err)
	}
	return nil
}

// pushedImage is what a build pushed under its tag: the tag's digest, and for an index its platform images and
// the in-toto statements of BuildKit's attestation manifests about each.
type pushedImage struct {
	digest    string
	subject   signature.Descriptor // the tag's manifest, as a referrer names it
	platforms []string
	// statements are BuildKit's, by platform image digest.
	statements map[string][]signature.Statement
}

func (r *imageRepo) pushed(dg string) (*pushedImage, error) {
	mt, raw, err := r.manifest(dg)
	if err != nil {
		return nil, fmt.Errorf("read the pushed image %s: %w", dg, err)
	}
	p := &pushedImage{digest: dg, statements: map[string][]signature.Statement{},
		subject: signature.Descriptor{MediaType: mt, Digest: dg, Size: int64(len(raw))}}
	if !types.MediaType(mt).IsIndex() {
		return p, nil
	}
	idx, err := v1.ParseIndexManifest(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("the pushed index %s: %w", dg, err)
	}
	var atts []v1.Descriptor
	for _, m := range idx.Manifests {
		if m.Annotations[annotationRefType] == attestationManifest {
			atts = append(atts, m)
			continue
		}
		p.platforms = append(p.platforms, m.Digest.String())
	}
	for _, a := range atts {
		of := a.Annotations[annotationRefDigest]
		_, araw, err := r.manifest(a.Digest.String())
		if err != nil {
			return nil, fmt.Errorf("read BuildKit's attestation manifest %s: %w", a.Digest, err)
		}
		var m signature.Manifest
		if err := json.Unmarshal(araw, &m); err != nil {
			return nil, fmt.Errorf("BuildKit's attestation manifest %s: %w", a.Digest, err)
		}
		for _, l := range m.Layers {
			if l.MediaType != mediaInToto || l.Annotations[annotationInTotoPredicate] == "" {
				continue
			}
			b, err := r.blob(l.Digest)
			if err != nil {
				return nil, fmt.Errorf("read BuildKit's attestation %s: %w", l.Digest, err)
			}
			var st signature.Statement
			if err := json.Unmarshal(b, &st); err != nil {
				return nil, fmt.Errorf("BuildKit's attestation %s is not an in-toto statement: %w", l.Digest, err)
			}
			p.statements[of] = append(p.statements[of], st)
		}
	}
	return p, nil
}

// Target is the repository of Berth's registry a build pushed to, and the login the signing pushes with.
type Target struct {
	// Registry is host[:port]; Insecure when it speaks plain HTTP. Repository is namespace/name.
	Registry, Repository string
	Insecure             bool
	Username, Password   string
}

func (t Target) open(ctx context.Context) (*imageRepo, error) {
	return newImageRepo(ctx, t.Registry, t.Repository, t.Insecure, t.Username, t.Password)
}

// SignBuild signs image dg that build b pushed to t and attests its provenance (builderURL names Berth). It
// returns how many provenance statements it attested.
func (s *Signer) SignBuild(ctx context.Context, t Target, b *store.Build, dg string, builderURL string) (int, error) {
	repo, err := t.open(ctx)
	if err != nil {
		return 0, err
	}
	img, err := repo.pushed(dg)
	if err != nil {
		return 0, err
	}
	// The signatures and the attestation are independent pushes: at once.
	var g errgroup.Group
	for _, d := range append([]string{dg}, img.platforms...) {
		g.Go(func() error { return s.sign(repo, d) })
	}
	n, err := s.attestProvenance(repo, img, b, builderURL)
	if werr := g.Wait(); werr != nil {
		return 0, werr
	}
	return n, err
}

// attestProvenance attests BuildKit's provenance of each platform image of img, with Berth's build added.
func (s *Signer) attestProvenance(repo *imageRepo, img *pushedImage, b *store.Build, builderURL string) (int, error) {
	dg := img.digest
	// One statement per platform image, about the tag's digest and that platform image: `cosign
	// verify-attestation` checks the subject against the digest it resolves the tag to.
	env := berthEnvironment(b, builderURL)
	perImage := map[string][]signature.Layer{}
	var all []signature.Layer
	n := 0
	for _, p := range img.platforms {
		for _, st := range img.statements[p] {
			if st.PredicateType != signature.PredicateSLSAProvenance && st.PredicateType != signature.PredicateSLSAProvenanceV1 {
				continue
			}
			pred, err := withBerth(st.PredicateType, st.Predicate, env)
			if err != nil {
				return 0, err
			}
			l, err := s.statementLayer(repo.name(), uniq(dg, p), st.PredicateType, pred)
			if err != nil {
				return 0, err
			}
			perImage[p] = append(perImage[p], l)
			all = append(all, l)
			n++
		}
	}
	if len(all) == 0 {
		return 0, nil
	}
	if err := s.attestAll(repo, img, dg, all, perImage); err != nil {
		return 0, err
	}
	return n, nil
}

// AttestSBOM has sc make the CycloneDX SBOM of each image of dg (each platform image of an index), pulling with
// t's login, and adds each, as a signed in-toto statement about dg and that image, to the ".att" accessories
// and the referrers of dg. It returns how many SBOMs it attested.
func (s *Signer) AttestSBOM(ctx context.Context, t Target, sc Scanner, dg string) (int, error) {
	repo, err := t.open(ctx)
	if err != nil {
		return 0, err
	}
	req := ScanRequest{Username: t.Username, Password: t.Password, Insecure: t.Insecure}
	img, err := repo.pushed(dg)
	if err != nil {
		return 0, err
	}
	images := img.platforms
	if len(images) == 0 {
		images = []string{dg}
	}
	perImage := map[string][]signature.Layer{}
	var all []signature.Layer
	for _, p := range images {
		req.Image, req.SBOM = repo.name()+"@"+p, true
		rep, err := sc.Scan(ctx, req)
		if err != nil {
			return 0, fmt.Errorf("SBOM of %s: %w", p, err)
		}
		if len(rep.SBOM) == 0 {
			return 0, fmt.Errorf("SBOM of %s: the scanner made none (an older berth-scanner? rebuild it: task build-scanner)", p)
		}
		l, err := s.statementLayer(repo.name(), uniq(dg, p), signature.PredicateCycloneDX, rep.SBOM)
		if err != nil {
			return 0, err
		}
		perImage[p] = append(perImage[p], l)
		all = append(all, l)
	}
	if err := s.attestAll(repo, img, dg, all, perImage); err != nil {
		return 0, err
	}
	return len(all), nil
}

// attestAll puts the statements about dg into its ".att" accessory, each platform image's into its own (for an
// index of several), and all of them in one referrer of dg.
func (s *Signer) attestAll(repo *imageRepo, img *pushedImage, dg string, all []signature.Layer, perImage map[string][]signature.Layer) error {
	var g errgroup.Group
	g.Go(func() error { return s.attest(repo, dg, all) })
	if len(img.platforms) > 1 {
		for p, ls := range perImage {
			g.Go(func() error { return s.attest(repo, p, ls) })
		}
	}
	if err := g.Wait(); err != nil {
		return err
	}
	// The referrer's layers are the blobs the ".att" pushes uploaded.
	return repo.pushReferrer(img.subject, signature.MediaDSSE, all)
}

func uniq(a, b string) []string {
	if a == b {
		return []string{a}
	}
	return []string{a, b}
}

// sign adds the instance's signature of image dg to its ".sig" accessory, unless one is there already (a
// build of the same image before); signatures others added are kept.
func (s *Signer) sign(repo *imageRepo, dg string) error {
	tag, err := signature.Tag(dg, signature.SuffixSignature)
	if err != nil {
		return err
	}
	cur, err := repo.accessory(tag)
	if err != nil {
		return err
	}
	if cur.manifest != nil {
		if _, err := signature.VerifySignatures(cur.manifest, dg, []crypto.PublicKey{s.Key.Public()}, layerBytes(cur.layers)); err == nil {
			return nil
		}
	}
	payload, err := signature.NewPayload(repo.name(), dg, nil)
	if err != nil {
		return err
	}
	sig, err := s.Key.Sign(payload)
	if err != nil {
		return err
	}
	return repo.pushAccessory(tag, append(cur.layers, signature.Layer{MediaType: signature.MediaSimpleSigning, Data: payload,
		Annotations: map[string]string{signature.AnnotationSignature: sig}}))
}

// attest puts layers (signed statements) into image dg's ".att" accessory, replacing the instance's own
// statements of the same predicate types (from an earlier build of the same image) and keeping all others.
func (s *Signer) attest(repo *imageRepo, dg string, layers []signature.Layer) error {
	tag, err := signature.Tag(dg, signature.SuffixAttestation)
	if err != nil {
		return err
	}
	cur, err := repo.accessory(tag)
	if err != nil {
		return err
	}
	replaced := map[string]bool{}
	for _, l := range layers {
		replaced[l.Annotations[signature.AnnotationPredicateType]] = true
	}
	keys := []crypto.PublicKey{s.Key.Public()}
	var keep []signature.Layer
	for _, l := range cur.layers {
		if l.MediaType == signature.MediaDSSE && replaced[l.Annotations[signature.AnnotationPredicateType]] {
			if _, _, err := signature.OpenEnvelope(l.Data, keys); err == nil {
				continue
			}
		}
		keep = append(keep, l)
	}
	return repo.pushAccessory(tag, append(keep, layers...))
}

// statementLayer is the ".att" layer of a statement about subjects: its DSSE envelope, signed.
func (s *Signer) statementLayer(name string, subjects []string, predicateType string, predicate json.RawMessage) (signature.Layer, error) {
	payload, err := signature.NewStatement(name, predicateType, predicate, subjects...)
	if err != nil {
		return signature.Layer{}, err
	}
	env, err := s.Key.Envelope(payload)
	if err != nil {
		return signature.Layer{}, err
	}
	data, err := json.Marshal(env)
	if err != nil {
		return signature.Layer{}, err
	}
	// cosign verify-attestation wants the signature annotation on every layer, empty for an envelope (which
	// holds its signature), as cosign attest writes it.
	return signature.Layer{MediaType: signature.MediaDSSE, Data: data,
		Annotations: map[string]string{signature.AnnotationPredicateType: predicateType, signature.AnnotationSignature: ""}}, nil
}

func layerBytes(layers []signature.Layer) func(dg string) ([]byte, error) {
	return func(dg string) ([]byte, error) {
		for _, l := range layers {
			if signature.Digest(l.Data) == dg {
				return l.Data, nil
			}
		}
		return nil, fmt.Errorf("no layer %s", dg)
	}
}

// berthEnvironment is what Berth adds to BuildKit's provenance about the build: which Berth build, rule and
// trigger made the image, from which Git URL (credentials dropped), ref and commit, with which Dockerfile.
func berthEnvironment(b *store.Build, builderURL string) map[string]any {
	env := map[string]any{
		"repository": b.Repository,
		"build_id":   b.ID,
		"rule_id":    b.RuleID,
		"trigger":    b.Trigger,
		"ref_type":   b.RefType,
		"ref":        b.Ref,
		"commit":     b.Commit,
		"dockerfile": path.Join("/", b.Spec.DockerfileDir, b.Spec.DockerfileName),
		"image_tag":  b.ImageTag,
	}
	if builderURL != "" {
		env["build_url"] = builderURL + "/api/v1/repositories/" + b.Repository + "/builds/" + b.ID
	}
	if b.Spec.Target != "" {
		env["target"] = b.Spec.Target
	}
	return env
}

// withBerth puts Berth's build into a provenance predicate: under invocation.environment.berth (v0.2) or
// buildDefinition.internalParameters.berth (v1), where BuildKit puts a builder's own environment.
func withBerth(predicateType string, predicate json.RawMessage, env map[string]any) (json.RawMessage, error) {
	var p map[string]any
	if err := json.Unmarshal(predicate, &p); err != nil {
		return nil, fmt.Errorf("BuildKit's provenance is not a JSON object: %w", err)
	}
	outer, inner := "invocation", "environment"
	if predicateType == signature.PredicateSLSAProvenanceV1 {
		outer, inner = "buildDefinition", "internalParameters"
	}
	o, _ := p[outer].(map[string]any)
	if o == nil {
		o = map[string]any{}
		p[outer] = o
	}
	in, _ := o[inner].(map[string]any)
	if in == nil {
		in = map[string]any{}
		o[inner] = in
	}
	in["berth"] = env
	return json.Marshal(p)
}

// provenanceFor is the provenance a build asks BuildKit for.
func provenanceFor(b *store.Build, src *store.Source, builderURL string) *buildkit.Provenance {
	return &buildkit.Provenance{BuilderID: builderURL, Source: src.URL, Revision: b.Commit,
		ContextDir: path.Join("/", b.Spec.DockerfileDir)}
}
