// Package signature is the format of image signatures and attestations as the stock cosign client writes and
// verifies them (SPEC §15), with no dependency on sigstore: what Berth signs, a user's `cosign sign` pushes and
// the security policy's require_signature checks are the same bytes.
//
// A signature of image sha256:H lives in the same repository under the tag "sha256-H.sig": an OCI image manifest
// whose layers are simple-signing payloads (MediaSimpleSigning), each with its base64 ECDSA signature in the
// annotation AnnotationSignature. An attestation lives under "sha256-H.att": layers that are DSSE envelopes
// (MediaDSSE) of an in-toto statement about the image, with the statement's predicate type in the annotation
// AnnotationPredicateType. Keys are ECDSA P-256; signatures are ASN.1 over the SHA-256 of the signed bytes.
package signature

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// Media types and annotations of cosign's tag-based format.
const (
	MediaSimpleSigning = "application/vnd.dev.cosign.simplesigning.v1+json"
	MediaDSSE          = "application/vnd.dsse.envelope.v1+json"
	// MediaCosignConfig is not used by cosign itself (it writes an image config); listed for readers.
	AnnotationSignature     = "dev.cosignproject.cosign/signature"
	AnnotationPredicateType = "predicateType"

	// SignatureType is the critical.type of a simple-signing payload.
	SignatureType = "cosign container image signature"
	// PayloadTypeInToto is the DSSE payload type of an in-toto statement.
	PayloadTypeInToto = "application/vnd.in-toto+json"
	// StatementType is the in-toto statement version cosign attest writes and verify-attestation reads.
	StatementType = "https://in-toto.io/Statement/v0.1"
)

// Predicate types, as cosign's --type names them.
const (
	PredicateSLSAProvenance   = "https://slsa.dev/provenance/v0.2" // --type slsaprovenance
	PredicateSLSAProvenanceV1 = "https://slsa.dev/provenance/v1"   // --type slsaprovenance1
	PredicateCycloneDX        = "https://cyclonedx.org/bom"        // --type cyclonedx
)

// Accessory tag suffixes: signatures, attestations, and cosign's attached SBOMs.
const (
	SuffixSignature   = ".sig"
	SuffixAttestation = ".att"
	SuffixSBOM        = ".sbom"
)

var (
	digestRe    = regexp.MustCompile(`^sha256:([0-9a-f]{64})$`)
	accessoryRe = regexp.MustCompile(`^sha256-([0-9a-f]{64})\.(sig|att|sbom)$`)
)

// ErrInvalid is wrapped by every refusal of malformed input; ErrNotVerified by a signature that does not verify.
var (
	ErrInvalid     = errors.New("invalid signature data")
	ErrNotVerified = errors.New("signature not verified")
)

// Tag is the accessory tag of image digest dg ("sha256:<hex>") with suffix (SuffixSignature, …).
func Tag(dg, suffix string) (string, error) {
	m := digestRe.FindStringSubmatch(dg)
	if m == nil {
		return "", fmt.Errorf("%w: %q is not a sha256 digest", ErrInvalid, dg)
	}
	return "sha256-" + m[1] + suffix, nil
}

// SubjectOf parses an accessory tag: the digest of the image it belongs to and its suffix; ok is false for
// any other tag.
func SubjectOf(tag string) (dg, suffix string, ok bool) {
	m := accessoryRe.FindStringSubmatch(tag)
	if m == nil {
		return "", "", false
	}
	return "sha256:" + m[1], "." + m[2], true
}

// SimpleSigning is the payload cosign signs for an image (the "simple signing" format).
type SimpleSigning struct {
	Critical struct {
		Identity struct {
			DockerReference string `json:"docker-reference"`
		} `json:"identity"`
		Image struct {
			DockerManifestDigest string `json:"docker-manifest-digest"`
		} `json:"image"`
		Type string `json:"type"`
	} `json:"critical"`
	Optional map[string]any `json:"optional"`
}

// NewPayload is the simple-signing payload of image dg in repository ref (e.g. "registry.example/ns/app").
func NewPayload(ref, dg string, optional map[string]any) ([]byte, error) {
	if !digestRe.MatchString(dg) {
		return nil, fmt.Errorf("%w: %q is not a sha256 digest", ErrInvalid, dg)
	}
	var p SimpleSigning
	p.Critical.Identity.DockerReference = ref
	p.Critical.Image.DockerManifestDigest = dg
	p.Critical.Type = SignatureType
	p.Optional = optional
	return json.Marshal(p)
}

// ParsePayload reads a simple-signing payload and checks it is one.
func ParsePayload(b []byte) (*SimpleSigning, error) {
	var p SimpleSigning
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("%w: payload: %v", ErrInvalid, err)
	}
	if p.Critical.Type != SignatureType {
		return nil, fmt.Errorf("%w: payload type %q is not %q", ErrInvalid, p.Critical.Type, SignatureType)
	}
	return &p, nil
}

// GenerateKey makes a new ECDSA P-256 signing key.
func GenerateKey() (*ecdsa.PrivateKey, error) { return ecdsa.GenerateKey(elliptic.P256(), rand.Reader) }

// MarshalPrivateKey is key in PKCS#8 DER (to be sealed before it is stored).
func MarshalPrivateKey(key *ecdsa.PrivateKey) ([]byte, error) {
	return x509.MarshalPKCS8PrivateKey(key)
}

// ParsePrivateKey reads what MarshalPrivateKey wrote.
func ParsePrivateKey(der []byte) (*ecdsa.PrivateKey, error) {
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("%w: private key: %v", ErrInvalid, err)
	}
	ek, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%w: private key is %T, not ECDSA", ErrInvalid, k)
	}
	return ek, nil
}

// PublicKeyPEM is pub as a PEM "PUBLIC KEY" block (PKIX), the form `cosign verify --key` reads.
func PublicKeyPEM(pub crypto.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}

// MaxKeyPEM bounds a public key given in a policy's trusted_keys.
const MaxKeyPEM = 8 << 10

// ParsePublicKeyPEM reads one PEM public key (PKIX): ECDSA (P-256, P-384, P-521), RSA or Ed25519 are
// accepted for verification, as cosign accepts them.
func ParsePublicKeyPEM(b []byte) (crypto.PublicKey, error) {
	if len(b) > MaxKeyPEM {
		return nil, fmt.Errorf("%w: public key PEM is %d bytes; at most %d", ErrInvalid, len(b), MaxKeyPEM)
	}
	blk, rest := pem.Decode(b)
	if blk == nil || blk.Type != "PUBLIC KEY" {
		return nil, fmt.Errorf("%w: not a PEM \"PUBLIC KEY\" block (give the output of `cosign public-key` or the key file cosign.pub)", ErrInvalid)
	}
	if len(strings.TrimSpace(string(rest))) != 0 {
		return nil, fmt.Errorf("%w: one public key per entry; found text after the first PEM block", ErrInvalid)
	}
	pub, err := x509.ParsePKIXPublicKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: public key: %v", ErrInvalid, err)
	}
	return pub, nil
}

// KeyID names a public key: the hex SHA-256 of its PKIX DER, as shown next to a verified signature.
func KeyID(pub crypto.PublicKey) string {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return ""
	}
	sum := sha256.Sum256(der)
	return fmt.Sprintf("%x", sum[:])
}

// Sign signs msg with key as cosign does: ECDSA ASN.1 over SHA-256(msg), base64 (std) encoded.
func Sign(key *ecdsa.PrivateKey, msg []byte) (string, error) {
	h := sha256.Sum256(msg)
	sig, err := ecdsa.SignASN1(rand.Reader, key, h[:])
	if err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(sig), nil
}

// Verify checks a base64 signature of msg under pub; nil when it verifies.
func Verify(pub crypto.PublicKey, msg []byte, b64sig string) error {
	sig, err := base64.StdEncoding.DecodeString(strings.TrimSpace(b64sig))
	if err != nil {
		return fmt.Errorf("%w: signature is not base64", ErrInvalid)
	}
	if !verifyRaw(pub, msg, sig) {
		return ErrNotVerified
	}
	return nil
}

// VerifyAny returns the first of keys under which the signature verifies, or ErrNotVerified.
func VerifyAny(keys []crypto.PublicKey, msg []byte, b64sig string) (crypto.PublicKey, error) {
	sig, err := base64.StdEncoding.DecodeString(strings.TrimSpace(b64sig))
	if err != nil {
		return nil, fmt.Errorf("%w: signature is not base64", ErrInvalid)
	}
	for _, k := range keys {
		if verifyRaw(k, msg, sig) {
			return k, nil
		}
	}
	return nil, ErrNotVerified
}
