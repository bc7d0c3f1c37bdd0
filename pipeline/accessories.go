package pipeline

import (
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"time"

	"github.com/berth-dev/berth/policies/signature"
	"github.com/berth-dev/berth/registry"
	"github.com/berth-dev/berth/registry/manifest"
)

// ReferrerLister is the registry's referrers API, for accessories attached as OCI referrers.
type ReferrerLister interface {
	Referrers(ctx context.Context, name, dgst string) ([]manifest.Descriptor, error)
}

// Accessory is a signature, attestation or SBOM of an image (SPEC §15): under its tag (sha256-<hex>.sig|.att|
// .sbom) or as a referrer (its manifest's subject is the image).
type Accessory struct {
	// Type is "signature", "attestation", "sbom", or "artifact" for a referrer of another kind.
	Type   string `json:"type"`
	Tag    string `json:"tag,omitempty"`
	Digest string `json:"digest"`
	// Referrer is true for an OCI referrer, false for cosign's tag.
	Referrer bool `json:"referrer"`
	// Size is the manifest's bytes plus those of its config and layers.
	Size int64 `json:"size"`
	// PredicateTypes are the attestation's statement types (e.g. https://slsa.dev/provenance/v0.2).
	PredicateTypes []string `json:"predicate_types,omitempty"`
	// Verified: a signature of the image (or an attestation about it) verifies under the instance key or a key
	// the policy trusts; SignedBy names that key (signature.KeyID), SignedByInstance says it is the instance's.
	Verified         bool   `json:"verified"`
	SignedBy         string `json:"signed_by,omitempty"`
	SignedByInstance bool   `json:"signed_by_instance,omitempty"`
}

// maxReferrers bounds the referrers listed for one image.
const maxReferrers = 100

// Accessories lists the accessories of repo@digest, with their signatures verified under the instance key
// and the keys trusted by the repository's policy. It reads the registry (for one image's page, not for lists)
// and remembers the answer as verdicts are remembered.
func (g *Gate) Accessories(ctx context.Context, repo, digest string) ([]Accessory, error) {
	return through(g, &g.accs, repo+"@"+digest, false, func(time.Time) ([]Accessory, error) {
		return g.accessories(ctx, repo, digest)
	})
}

func (g *Gate) accessories(ctx context.Context, repo, digest string) ([]Accessory, error) {
	c := g.content.Load()
	if c == nil {
		return []Accessory{}, nil
	}
	p, err := g.Policy(ctx, repo)
	if err != nil {
		return nil, err
	}
	keys := g.Keys(p)
	out := []Accessory{}
	for _, a := range accessoryTags {
		tag, err := signature.Tag(digest, a.suffix)
		if err != nil {
			return nil, err
		}
		_, payload, dg, err := (*c).GetManifest(ctx, repo, tag)
		if isUnknown(err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, g.describe(ctx, *c, repo, digest, keys, Accessory{Type: a.kind, Tag: tag, Digest: dg}, payload))
	}
	rl, ok := (*c).(ReferrerLister)
	if !ok {
		return out, nil
	}
	refs, err := rl.Referrers(ctx, repo, digest)
	if err != nil && !isUnknown(err) {
		return nil, err
	}
	if len(refs) > maxReferrers {
		refs = refs[:maxReferrers]
	}
	for _, d := range refs {
		_, payload, _, err := (*c).GetManifest(ctx, repo, d.Digest)
		if isUnknown(err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		kind := AccessoryKind(payload)
		if kind == "" {
			kind = KindArtifact
		}
		out = append(out, g.describe(ctx, *c, repo, digest, keys, Accessory{Type: kind, Digest: d.Digest, Referrer: true}, payload))
	}
	return out, nil
}

func isUnknown(err error) bool {
	switch registry.ErrorCode(err) {
	case registry.CodeManifestUnknown, registry.CodeNameUnknown:
		return true
	}
	return false
}

// describe fills a's size, and verifies a signature's or an attestation's layers.
func (g *Gate) describe(ctx context.Context, c Content, repo, subject string, keys []crypto.PublicKey, a Accessory, payload []byte) Accessory {
	var m signature.Manifest
	if json.Unmarshal(payload, &m) != nil {
		return a
	}
	a.Size = int64(len(payload)) + m.Config.Size
	for _, l := range m.Layers {
		a.Size += l.Size
		if pt := l.Annotations[signature.AnnotationPredicateType]; pt != "" {
			a.PredicateTypes = append(a.PredicateTypes, pt)
		}
	}
	if len(keys) == 0 {
		return a
	}
	blob := BlobReader(ctx, c, repo)
	switch a.Type {
	case KindSignature:
		if f, err := signature.VerifySignatures(payload, subject, keys, blob); err == nil {
			a.Verified, a.SignedBy = true, f.KeyID
		}
	case KindAttestation:
		if atts, err := signature.VerifyAttestations(payload, subject, keys, blob); err == nil && len(atts) > 0 {
			a.Verified, a.SignedBy = true, atts[0].KeyID
		}
	}
	a.SignedByInstance = g.IsInstanceKey(a.SignedBy)
	return a
}

// Attestations are the statements about repo@digest, from its ".att" accessory, that verify under the
// instance key or a key trusted by the repository's policy (remembered as verdicts are).
func (g *Gate) Attestations(ctx context.Context, repo, digest string) ([]signature.Attestation, error) {
	return through(g, &g.atts, repo+"@"+digest, false, func(time.Time) ([]signature.Attestation, error) {
		return g.attestations(ctx, repo, digest)
	})
}

func (g *Gate) attestations(ctx context.Context, repo, digest string) ([]signature.Attestation, error) {
	c := g.content.Load()
	if c == nil {
		return nil, nil
	}
	p, err := g.Policy(ctx, repo)
	if err != nil {
		return nil, err
	}
	keys := g.Keys(p)
	if len(keys) == 0 {
		return nil, nil
	}
	tag, err := signature.Tag(digest, signature.SuffixAttestation)
	if err != nil {
		return nil, err
	}
	_, payload, _, err := (*c).GetManifest(ctx, repo, tag)
	if isUnknown(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	atts, err := signature.VerifyAttestations(payload, digest, keys, BlobReader(ctx, *c, repo))
	if errors.Is(err, signature.ErrInvalid) {
		return nil, nil
	}
	return atts, err
}
