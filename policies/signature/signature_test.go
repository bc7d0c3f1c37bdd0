package signature

import (
	"crypto"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

const dg = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

// blobsOf serves the layers of an accessory as the registry would.
func blobsOf(layers []Layer) func(string) ([]byte, error) {
	return func(d string) ([]byte, error) {
		for _, l := range layers {
			if Digest(l.Data) == d {
				return l.Data, nil
			}
		}
		return nil, errors.New("blob unknown")
	}
}

func TestSignatureRoundTrip(t *testing.T) {
	key, _ := GenerateKey()
	other, _ := GenerateKey()
	payload, err := NewPayload("127.0.0.1:5000/demo/app", dg, nil)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := Sign(key, payload)
	if err != nil {
		t.Fatal(err)
	}
	layers := []Layer{{MediaType: MediaSimpleSigning, Data: payload, Annotations: map[string]string{AnnotationSignature: sig}}}
	m, cfg, err := Build(layers, time.Now())
	if err != nil || len(cfg) == 0 {
		t.Fatal(err)
	}
	f, err := VerifySignatures(m, dg, []crypto.PublicKey{other.Public(), key.Public()}, blobsOf(layers))
	if err != nil || f.KeyID != KeyID(key.Public()) {
		t.Fatalf("verify with the signing key among others: %v %+v", err, f)
	}
	if _, err := VerifySignatures(m, dg, []crypto.PublicKey{other.Public()}, blobsOf(layers)); !errors.Is(err, ErrNotVerified) {
		t.Fatalf("verify with another key: %v, want ErrNotVerified", err)
	}
	otherDigest := strings.Replace(dg, "0123", "3210", 1)
	if _, err := VerifySignatures(m, otherDigest, []crypto.PublicKey{key.Public()}, blobsOf(layers)); !errors.Is(err, ErrNotVerified) {
		t.Fatalf("a signature of another image verified: %v", err)
	}
	// A payload past MaxPayload is not read, signed or not (the pull path reads little).
	big, _ := NewPayload("127.0.0.1:5000/demo/app", dg, map[string]any{"pad": strings.Repeat("x", MaxPayload)})
	bigSig, _ := Sign(key, big)
	bigLayers := []Layer{{MediaType: MediaSimpleSigning, Data: big, Annotations: map[string]string{AnnotationSignature: bigSig}}}
	mb, _, _ := Build(bigLayers, time.Now())
	if _, err := VerifySignatures(mb, dg, []crypto.PublicKey{key.Public()}, blobsOf(bigLayers)); !errors.Is(err, ErrNotVerified) {
		t.Fatalf("a payload of %d bytes verified: %v", len(big), err)
	}
	// A payload changed after signing does not verify.
	tampered := []Layer{{MediaType: MediaSimpleSigning, Data: []byte(strings.Replace(string(payload), "demo", "evil", 1)), Annotations: layers[0].Annotations}}
	m2, _, _ := Build(tampered, time.Now())
	if _, err := VerifySignatures(m2, dg, []crypto.PublicKey{key.Public()}, blobsOf(tampered)); !errors.Is(err, ErrNotVerified) {
		t.Fatalf("tampered payload verified: %v", err)
	}
}

func TestAttestationRoundTrip(t *testing.T) {
	key, _ := GenerateKey()
	st, err := NewStatement("127.0.0.1:5000/demo/app", PredicateCycloneDX, json.RawMessage(`{"bomFormat":"CycloneDX"}`), dg)
	if err != nil {
		t.Fatal(err)
	}
	env, err := SignEnvelope(key, PayloadTypeInToto, st)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(env)
	layers := []Layer{{MediaType: MediaDSSE, Data: b, Annotations: map[string]string{AnnotationPredicateType: PredicateCycloneDX}}}
	m, _, _ := Build(layers, time.Now())
	got, err := VerifyAttestations(m, dg, []crypto.PublicKey{key.Public()}, blobsOf(layers))
	if err != nil || len(got) != 1 || got[0].PredicateType != PredicateCycloneDX {
		t.Fatalf("attestations: %v %+v", err, got)
	}
	other, _ := GenerateKey()
	if got, _ := VerifyAttestations(m, dg, []crypto.PublicKey{other.Public()}, blobsOf(layers)); len(got) != 0 {
		t.Fatalf("verified under another key: %+v", got)
	}
	env.Payload = base64.StdEncoding.EncodeToString([]byte(strings.Replace(string(st), "CycloneDX", "Tampered", 1)))
	b, _ = json.Marshal(env)
	if _, _, err := OpenEnvelope(b, []crypto.PublicKey{key.Public()}); !errors.Is(err, ErrNotVerified) {
		t.Fatalf("tampered envelope: %v", err)
	}
}

func TestTagsAndKeys(t *testing.T) {
	tag, err := Tag(dg, SuffixSignature)
	if err != nil || tag != "sha256-"+dg[7:]+".sig" {
		t.Fatalf("Tag: %q %v", tag, err)
	}
	if d, s, ok := SubjectOf(tag); !ok || d != dg || s != SuffixSignature {
		t.Fatalf("SubjectOf(%q) = %q %q %v", tag, d, s, ok)
	}
	for _, bad := range []string{"latest", "sha256-abc.sig", "sha256-" + dg[7:] + ".exe"} {
		if _, _, ok := SubjectOf(bad); ok {
			t.Errorf("SubjectOf(%q) ok", bad)
		}
	}
	if _, err := Tag("sha256:xyz", SuffixSignature); !errors.Is(err, ErrInvalid) {
		t.Errorf("Tag of a bad digest: %v", err)
	}
	key, _ := GenerateKey()
	pemb, err := PublicKeyPEM(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	pub, err := ParsePublicKeyPEM(pemb)
	if err != nil || KeyID(pub) != KeyID(key.Public()) {
		t.Fatalf("PEM round trip: %v", err)
	}
	for _, bad := range []string{"", "not pem", string(pemb) + string(pemb)} {
		if _, err := ParsePublicKeyPEM([]byte(bad)); !errors.Is(err, ErrInvalid) {
			t.Errorf("ParsePublicKeyPEM(%.20q): %v", bad, err)
		}
	}
	der, _ := MarshalPrivateKey(key)
	if k2, err := ParsePrivateKey(der); err != nil || !k2.Equal(key) {
		t.Fatalf("private key round trip: %v", err)
	}
}
