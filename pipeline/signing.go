package pipeline

import (
	"crypto"
	"crypto/ecdsa"
	"errors"

	"github.com/berth-dev/berth/policies/signature"
)

// SigningKey is the instance's image signing key (SPEC §15): ECDSA P-256, one for every replica and worker
// (server/app keeps it in the store, sealed with the master key). Builds sign their images and attestations
// with it; the security policy's require_signature and GET /api/v1/system/signing-key use its public half.
// The private key never leaves this type: it only signs.
type SigningKey struct {
	key *ecdsa.PrivateKey
}

// NewSigningKey wraps key.
func NewSigningKey(key *ecdsa.PrivateKey) (*SigningKey, error) {
	if key == nil {
		return nil, errors.New("no signing key")
	}
	return &SigningKey{key: key}, nil
}

// Public is the key that verifies what this key signs.
func (k *SigningKey) Public() crypto.PublicKey { return k.key.Public() }

// PublicPEM is the public key as `cosign verify --key` reads it.
func (k *SigningKey) PublicPEM() ([]byte, error) { return signature.PublicKeyPEM(k.key.Public()) }

// Sign signs msg as cosign signs a simple-signing payload (base64 ECDSA over its SHA-256).
func (k *SigningKey) Sign(msg []byte) (string, error) { return signature.Sign(k.key, msg) }

// Envelope wraps an in-toto statement in a DSSE envelope signed with the key, as `cosign attest` does.
func (k *SigningKey) Envelope(statement []byte) (*signature.Envelope, error) {
	return signature.SignEnvelope(k.key, signature.PayloadTypeInToto, statement)
}
