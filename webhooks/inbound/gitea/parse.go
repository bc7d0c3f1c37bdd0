// Package gitea verifies and parses Gitea and Forgejo webhook deliveries.
//
// Both sign the raw body with HMAC-SHA256 of the hook secret and send the
// plain hex digest: Gitea in X-Gitea-Signature, Forgejo in
// X-Forgejo-Signature (and, for compatibility, X-Gitea-Signature too). Newer
// releases also send the GitHub-style "X-Hub-Signature-256: sha256=<hex>",
// which is accepted when neither of the others is present. The event is in
// X-Forgejo-Event / X-Gitea-Event (X-Gogs-Event from old releases), the
// delivery id in X-Forgejo-Delivery / X-Gitea-Delivery.
//
// Only "push" events become a PushEvent: Gitea and Forgejo send one for
// branch and tag pushes alike. "create" and "delete" events, which they send
// beside the push, are ignored so one push never counts twice. A push whose
// "after" is all zeros is a deletion.
package gitea

import (
	"net/http"
	"strings"

	"github.com/berth-dev/berth/webhooks/inbound/hook"
)

// Provider is this package's provider name.
const Provider = "gitea"

// Headers Gitea and Forgejo send.
const (
	HeaderGiteaEvent       = "X-Gitea-Event"
	HeaderForgejoEvent     = "X-Forgejo-Event"
	HeaderGogsEvent        = "X-Gogs-Event"
	HeaderGiteaDelivery    = "X-Gitea-Delivery"
	HeaderForgejoDelivery  = "X-Forgejo-Delivery"
	HeaderGiteaSignature   = "X-Gitea-Signature"
	HeaderForgejoSignature = "X-Forgejo-Signature"
	HeaderHubSignature256  = "X-Hub-Signature-256"
	HeaderGogsDelivery     = "X-Gogs-Delivery"
)

// Verify checks the body signature, preferring X-Forgejo-Signature, then
// X-Gitea-Signature, then X-Hub-Signature-256.
func Verify(h http.Header, body []byte, secret string) error {
	for _, name := range []string{HeaderForgejoSignature, HeaderGiteaSignature} {
		if sig := h.Get(name); sig != "" {
			return hook.CheckHMAC(body, secret, sig)
		}
	}
	if sig := h.Get(HeaderHubSignature256); sig != "" {
		return hook.CheckPrefixedHMAC(body, secret, sig)
	}
	return hook.BadSignature("neither %s nor %s header is present", HeaderGiteaSignature, HeaderForgejoSignature)
}

type user struct {
	Login    string `json:"login"`
	Username string `json:"username"`
}

type pushPayload struct {
	Ref        string `json:"ref"`
	Before     string `json:"before"`
	After      string `json:"after"`
	HeadCommit *struct {
		ID string `json:"id"`
	} `json:"head_commit"`
	Pusher     user `json:"pusher"`
	Sender     user `json:"sender"`
	Repository struct {
		CloneURL string `json:"clone_url"`
	} `json:"repository"`
}

// Parse reads a delivery. It does not check the signature; call Verify first.
func Parse(h http.Header, body []byte) (*hook.PushEvent, error) {
	event := firstHeader(h, HeaderForgejoEvent, HeaderGiteaEvent, HeaderGogsEvent)
	switch event {
	case "push":
	case "":
		return nil, hook.Invalid("%s header is missing", HeaderGiteaEvent)
	default:
		return nil, hook.Ignored("Gitea %q event", hook.CleanText(event, 64))
	}
	data, err := hook.JSONBody(h, body)
	if err != nil {
		return nil, err
	}
	var p pushPayload
	if err := hook.Decode(data, &p); err != nil {
		return nil, err
	}
	u := hook.RefUpdate{
		Provider:   Provider,
		DeliveryID: hook.DeliveryID(h, body, HeaderForgejoDelivery, HeaderGiteaDelivery, HeaderGogsDelivery),
		Ref:        p.Ref,
		Before:     p.Before,
		After:      p.After,
		Pusher:     firstNonEmpty(p.Pusher.Login, p.Pusher.Username, p.Sender.Login, p.Sender.Username),
		CloneURL:   p.Repository.CloneURL,
	}
	if p.HeadCommit != nil {
		u.Commit = p.HeadCommit.ID
	}
	return u.Event()
}

func firstHeader(h http.Header, names ...string) string {
	for _, n := range names {
		if v := strings.TrimSpace(h.Get(n)); v != "" {
			return v
		}
	}
	return ""
}

func firstNonEmpty(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}
