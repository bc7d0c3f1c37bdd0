// Package sigtest makes and pushes cosign-format signatures and attestations for tests: what `cosign sign` and
// `cosign attest` push, built with package signature and pushed with go-containerregistry.
package sigtest

import (
	"crypto/ecdsa"
	"encoding/json"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/berth-dev/berth/policies/signature"
)

// NewKey makes a signing key.
func NewKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := signature.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// PEM is k's public key as cosign.pub holds it.
func PEM(t testing.TB, k *ecdsa.PrivateKey) string {
	t.Helper()
	b, err := signature.PublicKeyPEM(k.Public())
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// SignLayers are simple-signing layers for image digest of repository ref, one signed by each key.
func SignLayers(t testing.TB, ref, digest string, keys ...*ecdsa.PrivateKey) []signature.Layer {
	t.Helper()
	var out []signature.Layer
	for _, k := range keys {
		payload, err := signature.NewPayload(ref, digest, nil)
		if err != nil {
			t.Fatal(err)
		}
		sig, err := signature.Sign(k, payload)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, signature.Layer{MediaType: signature.MediaSimpleSigning, Data: payload,
			Annotations: map[string]string{signature.AnnotationSignature: sig}})
	}
	return out
}

// AttestLayer is a DSSE layer of an in-toto statement about digest, signed by key.
func AttestLayer(t testing.TB, ref, digest, predicateType, predicate string, key *ecdsa.PrivateKey) signature.Layer {
	t.Helper()
	st, err := signature.NewStatement(ref, predicateType, json.RawMessage(predicate), digest)
	if err != nil {
		t.Fatal(err)
	}
	env, err := signature.SignEnvelope(key, signature.PayloadTypeInToto, st)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(env)
	return signature.Layer{MediaType: signature.MediaDSSE, Data: b, Annotations: map[string]string{signature.AnnotationPredicateType: predicateType}}
}

type rawManifest []byte

func (m rawManifest) RawManifest() ([]byte, error)        { return m, nil }
func (m rawManifest) MediaType() (types.MediaType, error) { return types.OCIManifestSchema1, nil }

// Push pushes layers as cosign does: their blobs and config, then the manifest under the accessory tag of
// digest (suffix signature.SuffixSignature, …) in repo at host, or, with subject set, by digest as an OCI
// referrer of digest (subject is then the image's manifest descriptor). It answers the manifest's digest.
func Push(t testing.TB, host, repo, digest, suffix string, subject *signature.Descriptor, layers []signature.Layer, opts ...remote.Option) string {
	t.Helper()
	m, cfg, err := signature.Build(layers, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if subject != nil {
		var man signature.Manifest
		if err := json.Unmarshal(m, &man); err != nil {
			t.Fatal(err)
		}
		man.Subject = subject
		m, _ = json.Marshal(man)
	}
	repoRef, err := name.NewRepository(host+"/"+repo, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	blobs := [][]byte{cfg}
	for _, l := range layers {
		blobs = append(blobs, l.Data)
	}
	for _, b := range blobs {
		if err := remote.WriteLayer(repoRef, static.NewLayer(b, types.OCILayer), opts...); err != nil {
			t.Fatal(err)
		}
	}
	dg := signature.Digest(m)
	ref := repoRef.Digest(dg).String()
	if subject == nil {
		tag, err := signature.Tag(digest, suffix)
		if err != nil {
			t.Fatal(err)
		}
		ref = repoRef.Tag(tag).String()
	}
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Put(r, rawManifest(m), opts...); err != nil {
		t.Fatal(err)
	}
	return dg
}
