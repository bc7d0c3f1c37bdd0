package outbound

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// Headers and values of every delivery.
const (
	// SignatureHeader carries Sign(secret, body): "sha256=<hex>".
	SignatureHeader = "X-Berth-Signature"
	// EventHeader is always "push".
	EventHeader = "X-Berth-Event"
	// UserAgent identifies Berth's trigger client.
	UserAgent = "Berth-Trigger/1"
)

// Sign returns "sha256=<hex HMAC-SHA256 of body keyed with secret>", the
// value of the X-Berth-Signature header.
func Sign(secret, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// VerifySignature reports, in constant time, whether header is the
// signature of body with secret. Receivers written in Go can use it.
func VerifySignature(secret, body []byte, header string) bool {
	hexSig, ok := strings.CutPrefix(strings.TrimSpace(header), "sha256=")
	if !ok {
		return false
	}
	got, err := hex.DecodeString(hexSig)
	if err != nil {
		return false
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return hmac.Equal(mac.Sum(nil), got)
}
