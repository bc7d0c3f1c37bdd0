package signature

import (
	"crypto"
	"crypto/ecdsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
)

// Envelope is a DSSE envelope: the signed payload and its signatures (cosign attest writes one signature).
type Envelope struct {
	PayloadType string    `json:"payloadType"`
	Payload     string    `json:"payload"` // base64 (std)
	Signatures  []DSSESig `json:"signatures"`
}

// DSSESig is one signature of an Envelope.
type DSSESig struct {
	KeyID string `json:"keyid"`
	Sig   string `json:"sig"` // base64 (std)
}

// PAE is DSSE's pre-authentication encoding of a payload, the bytes that are signed.
func PAE(payloadType string, payload []byte) []byte {
	b := []byte("DSSEv1 " + strconv.Itoa(len(payloadType)) + " " + payloadType + " " + strconv.Itoa(len(payload)) + " ")
	return append(b, payload...)
}

// SignEnvelope wraps payload in a DSSE envelope signed with key.
func SignEnvelope(key *ecdsa.PrivateKey, payloadType string, payload []byte) (*Envelope, error) {
	sig, err := Sign(key, PAE(payloadType, payload))
	if err != nil {
		return nil, err
	}
	return &Envelope{PayloadType: payloadType, Payload: base64.StdEncoding.EncodeToString(payload),
		Signatures: []DSSESig{{Sig: sig}}}, nil
}

// OpenEnvelope verifies a DSSE envelope under any of keys and returns its payload and the key.
func OpenEnvelope(b []byte, keys []crypto.PublicKey) ([]byte, crypto.PublicKey, error) {
	var env Envelope
	if err := json.Unmarshal(b, &env); err != nil {
		return nil, nil, fmt.Errorf("%w: DSSE envelope: %v", ErrInvalid, err)
	}
	payload, err := base64.StdEncoding.DecodeString(env.Payload)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: DSSE payload is not base64", ErrInvalid)
	}
	pae := PAE(env.PayloadType, payload)
	for _, s := range env.Signatures {
		if k, err := VerifyAny(keys, pae, s.Sig); err == nil {
			return payload, k, nil
		}
	}
	return nil, nil, ErrNotVerified
}

// Statement is an in-toto statement (v0.1, as cosign attest writes it).
type Statement struct {
	Type          string          `json:"_type"`
	PredicateType string          `json:"predicateType"`
	Subject       []Subject       `json:"subject"`
	Predicate     json.RawMessage `json:"predicate"`
}

// Subject names what a statement is about: the image by repository and digest.
type Subject struct {
	Name   string            `json:"name"`
	Digest map[string]string `json:"digest"`
}

// NewStatement is the statement that images dgs (one at least) of repository name have predicate of
// predicateType.
func NewStatement(name, predicateType string, predicate json.RawMessage, dgs ...string) ([]byte, error) {
	st := Statement{Type: StatementType, PredicateType: predicateType, Predicate: predicate}
	for _, dg := range dgs {
		m := digestRe.FindStringSubmatch(dg)
		if m == nil {
			return nil, fmt.Errorf("%w: %q is not a sha256 digest", ErrInvalid, dg)
		}
		st.Subject = append(st.Subject, Subject{Name: name, Digest: map[string]string{"sha256": m[1]}})
	}
	if len(st.Subject) == 0 {
		return nil, fmt.Errorf("%w: a statement names one image at least", ErrInvalid)
	}
	return json.Marshal(st)
}
