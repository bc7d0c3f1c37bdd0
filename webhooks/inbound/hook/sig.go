package hook

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"strings"
)

// errNoSecret is returned (wrapping ErrBadSignature) when a hook has no
// secret: an HMAC keyed with nothing proves nothing, so nothing is accepted.
var errNoSecret = fmt.Errorf("%w: no secret is configured for this hook", ErrBadSignature)

// CheckHMAC checks that sigHex is the hex HMAC-SHA256 of body keyed with
// secret, in constant time.
func CheckHMAC(body []byte, secret, sigHex string) error {
	if secret == "" {
		return errNoSecret
	}
	got, err := hex.DecodeString(strings.TrimSpace(sigHex))
	if err != nil || len(got) != sha256.Size {
		return fmt.Errorf("%w: signature is not a hex SHA-256 HMAC", ErrBadSignature)
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	if !hmac.Equal(mac.Sum(nil), got) {
		return fmt.Errorf("%w: signature does not match the body", ErrBadSignature)
	}
	return nil
}

// CheckPrefixedHMAC checks a "sha256=<hex>" signature header value.
func CheckPrefixedHMAC(body []byte, secret, value string) error {
	algo, sig, ok := strings.Cut(strings.TrimSpace(value), "=")
	if !ok || !strings.EqualFold(algo, "sha256") {
		return fmt.Errorf("%w: signature must have the form sha256=<hex>", ErrBadSignature)
	}
	return CheckHMAC(body, secret, sig)
}

// CheckToken compares a shared-secret token (GitLab's X-Gitlab-Token) with
// the secret in constant time; hashing both first hides the length too.
func CheckToken(got, secret string) error {
	if secret == "" {
		return errNoSecret
	}
	if got == "" {
		return fmt.Errorf("%w: token header is missing", ErrBadSignature)
	}
	a, b := sha256.Sum256([]byte(got)), sha256.Sum256([]byte(secret))
	if subtle.ConstantTimeCompare(a[:], b[:]) != 1 {
		return fmt.Errorf("%w: token does not match", ErrBadSignature)
	}
	return nil
}

// Sign returns the hex HMAC-SHA256 of body keyed with secret. Tests and
// "send a test delivery" tools use it to sign like a provider does.
func Sign(secret string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return hex.EncodeToString(mac.Sum(nil))
}

// maxDeliveryID bounds the delivery ids kept for deduplication; a longer
// header value is replaced by its hash.
const maxDeliveryID = 128

// DeliveryID returns the first non-empty value among the named headers, or
// "sha256:<hex of body>" when none is set, so redeliveries of the same body
// still deduplicate.
func DeliveryID(h http.Header, body []byte, names ...string) string {
	for _, name := range names {
		if v := strings.TrimSpace(h.Get(name)); v != "" {
			if len(v) > maxDeliveryID || strings.IndexFunc(v, func(r rune) bool { return r < ' ' || r == 0x7f }) >= 0 {
				sum := sha256.Sum256([]byte(v))
				return "sha256:" + hex.EncodeToString(sum[:])
			}
			return v
		}
	}
	sum := sha256.Sum256(body)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// JSONBody returns the JSON document of a delivery. GitHub and Gitea may be
// configured to send application/x-www-form-urlencoded bodies whose
// "payload" field holds the JSON; signatures cover the raw body either way.
func JSONBody(h http.Header, body []byte) ([]byte, error) {
	mt, _, err := mime.ParseMediaType(h.Get("Content-Type"))
	if err != nil || mt != "application/x-www-form-urlencoded" {
		return body, nil
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, Invalid("form body: %v", err)
	}
	p := form.Get("payload")
	if p == "" {
		return nil, Invalid(`form body has no "payload" field`)
	}
	return []byte(p), nil
}

// Decode unmarshals a JSON payload into v, wrapping errors in
// ErrInvalidPayload.
func Decode(data []byte, v any) error {
	if err := json.Unmarshal(data, v); err != nil {
		return Invalid("JSON: %v", err)
	}
	return nil
}
