package signature

import (
	"crypto"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"time"
)

// Layer is one layer of an accessory manifest: its bytes, media type and annotations.
type Layer struct {
	MediaType   string
	Data        []byte
	Annotations map[string]string
	// Stored, when set, describes a layer already in the registry whose bytes were not read (Data is nil):
	// a manifest made again keeps it as it is.
	Stored *Descriptor
}

// descriptor is l's entry in a manifest.
func (l Layer) descriptor() Descriptor {
	if l.Stored != nil {
		return Descriptor{MediaType: l.MediaType, Digest: l.Stored.Digest, Size: l.Stored.Size, Annotations: l.Annotations}
	}
	return Descriptor{MediaType: l.MediaType, Digest: Digest(l.Data), Size: int64(len(l.Data)), Annotations: l.Annotations}
}

// Descriptor is an OCI content descriptor.
type Descriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// Manifest is the OCI image manifest of an accessory.
type Manifest struct {
	SchemaVersion int               `json:"schemaVersion"`
	MediaType     string            `json:"mediaType"`
	Config        Descriptor        `json:"config"`
	Layers        []Descriptor      `json:"layers"`
	ArtifactType  string            `json:"artifactType,omitempty"`
	Subject       *Descriptor       `json:"subject,omitempty"`
	Annotations   map[string]string `json:"annotations,omitempty"`
}

const (
	MediaOCIManifest = "application/vnd.oci.image.manifest.v1+json"
	MediaOCIConfig   = "application/vnd.oci.image.config.v1+json"
	// MediaOCIEmpty is the config of an artifact manifest that has none (OCI image spec 1.1), whose bytes
	// are EmptyJSON.
	MediaOCIEmpty = "application/vnd.oci.empty.v1+json"
	EmptyJSON     = "{}"
)

// Digest is the sha256 digest of b in "sha256:<hex>" form.
func Digest(b []byte) string { return fmt.Sprintf("sha256:%x", sha256.Sum256(b)) }

// Build makes an accessory manifest of layers as cosign writes one: an image config that lists the layers'
// digests, and the layers with their annotations. It answers the manifest and the config bytes; the caller
// pushes the config and every layer's Data as blobs, then the manifest under the accessory tag.
func Build(layers []Layer, created time.Time) (manifest, config []byte, err error) {
	diffIDs := make([]string, len(layers))
	m := Manifest{SchemaVersion: 2, MediaType: MediaOCIManifest}
	for i, l := range layers {
		d := l.descriptor()
		diffIDs[i] = d.Digest
		m.Layers = append(m.Layers, d)
	}
	cfg := map[string]any{
		"architecture": "", "os": "", "created": created.UTC().Format(time.RFC3339),
		"config": map[string]any{}, "rootfs": map[string]any{"type": "layers", "diff_ids": diffIDs},
	}
	if config, err = json.Marshal(cfg); err != nil {
		return nil, nil, err
	}
	m.Config = Descriptor{MediaType: MediaOCIConfig, Digest: Digest(config), Size: int64(len(config))}
	manifest, err = json.Marshal(m)
	return manifest, config, err
}

// BuildReferrer makes an OCI 1.1 artifact manifest of artifactType that refers to subject (listed by the
// registry's referrers API for subject's digest), with layers and the empty config (EmptyJSON, which the
// caller pushes as a blob like the layers). The manifest is pushed by its digest, not by tag.
func BuildReferrer(subject Descriptor, artifactType string, layers []Layer) ([]byte, error) {
	m := Manifest{SchemaVersion: 2, MediaType: MediaOCIManifest, ArtifactType: artifactType, Subject: &subject,
		Config: Descriptor{MediaType: MediaOCIEmpty, Digest: Digest([]byte(EmptyJSON)), Size: int64(len(EmptyJSON))}}
	for _, l := range layers {
		m.Layers = append(m.Layers, l.descriptor())
	}
	return json.Marshal(m)
}

// MaxLayers bounds the layers read from one accessory manifest; MaxBlob the bytes of one layer; MaxPayload the
// bytes of one simple-signing payload (cosign's are a few hundred bytes), so that checking an image's
// signatures on the pull path reads little whatever a pusher put in its ".sig".
const (
	MaxLayers  = 64
	MaxBlob    = 4 << 20
	MaxPayload = 64 << 10
)

// Found is what VerifySignatures found: the key that verified a signature of the image.
type Found struct {
	Key   crypto.PublicKey
	KeyID string
}

// VerifySignatures checks the signature manifest (the ".sig" tag's) of image dg against keys: some layer must be
// a simple-signing payload for dg whose signature verifies under one of keys. blob reads a layer's bytes by
// digest (bounded by the caller to MaxBlob). ErrNotVerified when none does.
func VerifySignatures(manifest []byte, dg string, keys []crypto.PublicKey, blob func(dg string) ([]byte, error)) (*Found, error) {
	var m Manifest
	if err := json.Unmarshal(manifest, &m); err != nil {
		return nil, fmt.Errorf("%w: signature manifest: %v", ErrInvalid, err)
	}
	if len(m.Layers) > MaxLayers {
		m.Layers = m.Layers[:MaxLayers]
	}
	for _, l := range m.Layers {
		sig := l.Annotations[AnnotationSignature]
		if l.MediaType != MediaSimpleSigning || sig == "" || l.Size > MaxPayload {
			continue
		}
		payload, err := blob(l.Digest)
		if err != nil || len(payload) > MaxPayload || Digest(payload) != l.Digest {
			continue
		}
		p, err := ParsePayload(payload)
		if err != nil || p.Critical.Image.DockerManifestDigest != dg {
			continue
		}
		if k, err := VerifyAny(keys, payload, sig); err == nil {
			return &Found{Key: k, KeyID: KeyID(k)}, nil
		}
	}
	return nil, ErrNotVerified
}

// Attestation is one verified statement of an attestation manifest.
type Attestation struct {
	PredicateType string
	Statement     Statement
	KeyID         string
}

// VerifyAttestations opens the attestation manifest (the ".att" tag's) of image dg: every DSSE layer that
// verifies under one of keys and whose statement names dg as a subject. Layers that do not are skipped.
func VerifyAttestations(manifest []byte, dg string, keys []crypto.PublicKey, blob func(dg string) ([]byte, error)) ([]Attestation, error) {
	var m Manifest
	if err := json.Unmarshal(manifest, &m); err != nil {
		return nil, fmt.Errorf("%w: attestation manifest: %v", ErrInvalid, err)
	}
	if len(m.Layers) > MaxLayers {
		m.Layers = m.Layers[:MaxLayers]
	}
	var out []Attestation
	for _, l := range m.Layers {
		if l.MediaType != MediaDSSE || l.Size > MaxBlob {
			continue
		}
		b, err := blob(l.Digest)
		if err != nil || Digest(b) != l.Digest {
			continue
		}
		payload, k, err := OpenEnvelope(b, keys)
		if err != nil {
			continue
		}
		var st Statement
		if json.Unmarshal(payload, &st) != nil || !names(st.Subject, dg) {
			continue
		}
		out = append(out, Attestation{PredicateType: st.PredicateType, Statement: st, KeyID: KeyID(k)})
	}
	return out, nil
}

func names(subjects []Subject, dg string) bool {
	for _, s := range subjects {
		if "sha256:"+s.Digest["sha256"] == dg {
			return true
		}
	}
	return false
}
