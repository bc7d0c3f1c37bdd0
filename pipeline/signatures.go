package pipeline

import (
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/berth-dev/berth/policies/signature"
)

// UnsignedReason is why require_signature blocks an image.
const UnsignedReason = "not signed by the instance key or a trusted key; sign it (cosign sign --key) with the " +
	"instance key or a key in the policy's trusted_keys"

// SignatureStatus says whether an image carries a signature that verifies under the instance key or a key
// trusted by the policy in force for its repository.
type SignatureStatus struct {
	Signed bool
	// KeyID names the key that verified it (signature.KeyID); Instance is true when that is the instance key.
	KeyID    string
	Instance bool
}

// Signature answers whether repo@digest is signed (by the instance key or a trusted key), cached as verdicts
// are: the registry is read once per TTL or change.
func (g *Gate) Signature(ctx context.Context, repo, digest string) (SignatureStatus, error) {
	p, err := g.Policy(ctx, repo)
	if err != nil {
		return SignatureStatus{}, err
	}
	return g.signatureOf(ctx, repo, digest, p)
}

func (g *Gate) signatureOf(ctx context.Context, repo, digest string, p EffectivePolicy) (SignatureStatus, error) {
	return through(g, &g.sigs, repo+"@"+digest, false, func(time.Time) (SignatureStatus, error) {
		return g.readSignature(ctx, repo, digest, p)
	})
}

// Keys are the keys whose signatures count for repositories under p: the instance key first, then p's
// trusted keys.
func (g *Gate) Keys(p EffectivePolicy) []crypto.PublicKey {
	var keys []crypto.PublicKey
	if g.InstanceKey != nil {
		if k := g.InstanceKey(); k != nil {
			keys = append(keys, k)
		}
	}
	return append(keys, p.Keys...)
}

// IsInstanceKey reports whether keyID names the instance key.
func (g *Gate) IsInstanceKey(keyID string) bool {
	if g.InstanceKey == nil || keyID == "" {
		return false
	}
	k := g.InstanceKey()
	return k != nil && signature.KeyID(k) == keyID
}

func (g *Gate) readSignature(ctx context.Context, repo, digest string, p EffectivePolicy) (SignatureStatus, error) {
	c := g.content.Load()
	keys := g.Keys(p)
	if c == nil || len(keys) == 0 {
		return SignatureStatus{}, nil
	}
	f, err := VerifyImageSignature(ctx, *c, repo, digest, keys)
	if errors.Is(err, signature.ErrNotVerified) || errors.Is(err, signature.ErrInvalid) {
		return SignatureStatus{}, nil
	}
	if err != nil {
		return SignatureStatus{}, err
	}
	return SignatureStatus{Signed: true, KeyID: f.KeyID, Instance: g.IsInstanceKey(f.KeyID)}, nil
}

// maxSignatureReferrers bounds the referrers VerifyImageSignature reads for one image: a pull of a gated image
// reads no more, however many artifacts a pusher attached.
const maxSignatureReferrers = 8

// VerifyImageSignature reads the signatures of repo@digest — its ".sig" accessory, then its referrers that are
// signatures (cosign --registry-referrers-mode=oci-1-1) — and verifies them under keys: the key that did, or
// signature.ErrNotVerified (also when there is no signature at all).
func VerifyImageSignature(ctx context.Context, c Content, repo, digest string, keys []crypto.PublicKey) (*signature.Found, error) {
	tag, err := signature.Tag(digest, signature.SuffixSignature)
	if err != nil {
		return nil, err
	}
	blob := BlobReader(ctx, c, repo)
	_, payload, _, err := c.GetManifest(ctx, repo, tag)
	switch {
	case err == nil:
		if f, err := signature.VerifySignatures(payload, digest, keys, blob); err == nil {
			return f, nil
		}
	case !isUnknown(err):
		return nil, fmt.Errorf("read the signature of %s@%s: %w", repo, digest, err)
	}
	rl, ok := c.(ReferrerLister)
	if !ok {
		return nil, signature.ErrNotVerified
	}
	refs, err := rl.Referrers(ctx, repo, digest)
	if err != nil && !isUnknown(err) {
		return nil, fmt.Errorf("read the referrers of %s@%s: %w", repo, digest, err)
	}
	read := 0
	for _, d := range refs {
		if k := kindOfMedia(d.ArtifactType); k != "" && k != KindSignature {
			continue // an attestation or SBOM: not worth reading
		}
		if read++; read > maxSignatureReferrers {
			break
		}
		_, payload, _, err := c.GetManifest(ctx, repo, d.Digest)
		if err != nil || AccessoryKind(payload) != KindSignature {
			continue
		}
		if f, err := signature.VerifySignatures(payload, digest, keys, blob); err == nil {
			return f, nil
		}
	}
	return nil, signature.ErrNotVerified
}

// BlobReader reads blobs of repo, at most signature.MaxBlob bytes each, for the signature package.
func BlobReader(ctx context.Context, c Content, repo string) func(dg string) ([]byte, error) {
	return func(dg string) ([]byte, error) {
		rc, size, err := c.OpenBlob(ctx, repo, dg)
		if err != nil {
			return nil, err
		}
		defer rc.Close()
		if size > signature.MaxBlob {
			return nil, fmt.Errorf("blob %s is %d bytes; at most %d are read", dg, size, signature.MaxBlob)
		}
		return io.ReadAll(io.LimitReader(rc, signature.MaxBlob))
	}
}

// isAccessory reports whether the manifest repo@digest is an accessory of another image (a signature,
// attestation or SBOM). Unreadable manifests are not (the pull fails on its own).
func (g *Gate) isAccessory(ctx context.Context, repo, digest string) bool {
	c := g.content.Load()
	if c == nil {
		return false
	}
	_, payload, _, err := (*c).GetManifest(ctx, repo, digest)
	return err == nil && AccessoryKind(payload) != ""
}

// Accessory kinds.
const (
	KindSignature   = "signature"
	KindAttestation = "attestation"
	KindSBOM        = "sbom"
	// KindArtifact is a referrer of another kind (an ORAS artifact, say): an accessory all the same.
	KindArtifact = "artifact"
)

// AccessoryKind classifies a manifest as an accessory of another image: "signature", "attestation", "sbom",
// "" for an image (or anything else). A manifest with a subject (an OCI referrer) is an accessory unless it is
// runnable (an index, or an image layer among its layers: the gate must judge what a client can pull and run,
// subject or not); kinds come from its artifact type and layer media types as cosign, BuildKit and ORAS write
// them.
func AccessoryKind(payload []byte) string {
	var m struct {
		ArtifactType string           `json:"artifactType"`
		Subject      *json.RawMessage `json:"subject"`
		Config       struct {
			MediaType string `json:"mediaType"`
		} `json:"config"`
		Layers []struct {
			MediaType string `json:"mediaType"`
		} `json:"layers"`
		Manifests []json.RawMessage `json:"manifests"`
	}
	if json.Unmarshal(payload, &m) != nil || len(m.Manifests) > 0 {
		return ""
	}
	kind := kindOfMedia(m.ArtifactType)
	if kind == "" {
		kind = kindOfMedia(m.Config.MediaType)
	}
	for _, l := range m.Layers {
		k := kindOfMedia(l.MediaType)
		if k == "" {
			if m.Subject == nil || isImageLayer(l.MediaType) {
				return "" // an image layer: an image, even if it carries a signature-like layer or a subject too
			}
			continue
		}
		if kind == "" {
			kind = k
		}
	}
	if kind == "" && m.Subject != nil {
		return KindArtifact
	}
	return kind
}

// isImageLayer reports whether mt is the media type of a filesystem layer of a runnable image (OCI or Docker).
func isImageLayer(mt string) bool {
	return strings.HasPrefix(mt, "application/vnd.oci.image.layer.") || strings.HasPrefix(mt, "application/vnd.docker.image.rootfs.")
}

func kindOfMedia(mt string) string {
	switch mt {
	case signature.MediaSimpleSigning, "application/vnd.dev.cosign.artifact.sig.v1+json":
		return KindSignature
	case signature.MediaDSSE, "application/vnd.in-toto+json", "application/vnd.dev.sigstore.bundle.v0.3+json",
		"application/vnd.dev.sigstore.bundle+json;version=0.3":
		return KindAttestation
	case "text/spdx", "text/spdx+json", "application/spdx+json", "application/vnd.cyclonedx+json",
		"application/vnd.cyclonedx+xml", "application/vnd.cyclonedx", "application/vnd.dev.cosign.artifact.sbom.v1+json":
		return KindSBOM
	}
	return ""
}
