// Package generic verifies and parses Berth's own provider-neutral push
// webhook, for Git servers that are none of GitHub, GitLab, Gitea/Forgejo or
// Bitbucket (a post-receive hook script, a CI job, cgit, …).
//
// # Request
//
//	POST <the repository's Berth webhook URL>
//	Content-Type: application/json
//	X-Berth-Signature: sha256=<hex HMAC-SHA256 of the raw body, keyed with the hook secret>
//	X-Berth-Delivery: <unique id of this delivery; optional>
//	X-Berth-Event: push   (optional; any other value is ignored)
//
//	{"ref":"refs/heads/main","before":"<old sha>","after":"<new sha>","pusher":"alice","deleted":false}
//
// "X-Hub-Signature-256: sha256=<hex>" is accepted instead of X-Berth-Signature
// so tools that speak GitHub's scheme work unchanged. Without
// X-Berth-Delivery the delivery id is "sha256:<hex of the body>", so resending
// the same body is deduplicated.
//
// # Payload
//
//   - ref (required): a full ref, refs/heads/<branch> or refs/tags/<tag>;
//     other refs are ignored.
//   - after (required unless deleted): the commit the ref now points at, 40
//     (SHA-1) or 64 (SHA-256) hex digits. All zeros means the ref was deleted.
//   - before (optional): the previous commit; empty or zeros for a new ref.
//   - pusher (optional): who pushed, for display.
//   - deleted (optional): true when the ref was deleted.
//
// A post-receive hook can send it with:
//
//	while read old new ref; do
//	  body=$(printf '{"ref":"%s","before":"%s","after":"%s","pusher":"%s"}' "$ref" "$old" "$new" "$USER")
//	  sig=$(printf '%s' "$body" | openssl dgst -sha256 -hmac "$SECRET" -r | cut -d' ' -f1)
//	  curl -fsS -H 'Content-Type: application/json' -H "X-Berth-Signature: sha256=$sig" -d "$body" "$URL"
//	done
package generic

import (
	"net/http"
	"strings"

	"github.com/berth-dev/berth/webhooks/inbound/hook"
)

// Provider is this package's provider name.
const Provider = "generic"

// Headers of the generic webhook.
const (
	HeaderSignature       = "X-Berth-Signature"
	HeaderHubSignature256 = "X-Hub-Signature-256"
	HeaderDelivery        = "X-Berth-Delivery"
	HeaderEvent           = "X-Berth-Event"
)

// Payload is the generic webhook body.
type Payload struct {
	Ref     string `json:"ref"`
	Before  string `json:"before,omitempty"`
	After   string `json:"after"`
	Pusher  string `json:"pusher,omitempty"`
	Deleted bool   `json:"deleted,omitempty"`
}

// Verify checks X-Berth-Signature, or X-Hub-Signature-256 when it is absent.
func Verify(h http.Header, body []byte, secret string) error {
	for _, name := range []string{HeaderSignature, HeaderHubSignature256} {
		if sig := h.Get(name); sig != "" {
			return hook.CheckPrefixedHMAC(body, secret, sig)
		}
	}
	return hook.BadSignature("%s header is missing", HeaderSignature)
}

// Parse reads a delivery. It does not check the signature; call Verify first.
func Parse(h http.Header, body []byte) (*hook.PushEvent, error) {
	if ev := strings.TrimSpace(h.Get(HeaderEvent)); ev != "" && ev != "push" {
		return nil, hook.Ignored("generic %q event", hook.CleanText(ev, 64))
	}
	var p Payload
	if err := hook.Decode(body, &p); err != nil {
		return nil, err
	}
	return hook.RefUpdate{
		Provider:   Provider,
		DeliveryID: hook.DeliveryID(h, body, HeaderDelivery),
		Ref:        p.Ref,
		Before:     p.Before,
		After:      p.After,
		Deleted:    p.Deleted,
		Pusher:     p.Pusher,
	}.Event()
}
