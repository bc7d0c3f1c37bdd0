// Package github verifies and parses GitHub webhook deliveries.
//
// GitHub signs the raw body with HMAC-SHA256 of the hook secret and sends it
// as "X-Hub-Signature-256: sha256=<hex>"; the legacy SHA-1 X-Hub-Signature is
// not accepted. X-GitHub-Event names the event and X-GitHub-Delivery is a
// GUID per event that redeliveries repeat. Only "push" events become a
// PushEvent (branch and tag pushes, including deletions, which carry
// "deleted": true); "ping" and every other event give hook.ErrIgnoredEvent.
// Both content types GitHub offers (application/json and
// application/x-www-form-urlencoded with a "payload" field) are read.
package github

import (
	"net/http"
	"strings"

	"github.com/berth-dev/berth/webhooks/inbound/hook"
)

// Provider is this package's provider name.
const Provider = "github"

// Headers GitHub sends.
const (
	HeaderEvent     = "X-GitHub-Event"
	HeaderDelivery  = "X-GitHub-Delivery"
	HeaderSignature = "X-Hub-Signature-256"
)

// Verify checks the X-Hub-Signature-256 header against body and secret.
func Verify(h http.Header, body []byte, secret string) error {
	sig := h.Get(HeaderSignature)
	if sig == "" {
		return hook.BadSignature("%s header is missing", HeaderSignature)
	}
	return hook.CheckPrefixedHMAC(body, secret, sig)
}

type pushPayload struct {
	Ref        string `json:"ref"`
	Before     string `json:"before"`
	After      string `json:"after"`
	Deleted    bool   `json:"deleted"`
	HeadCommit *struct {
		ID string `json:"id"`
	} `json:"head_commit"`
	Pusher struct {
		Name string `json:"name"`
	} `json:"pusher"`
	Sender struct {
		Login string `json:"login"`
	} `json:"sender"`
	Repository struct {
		CloneURL string `json:"clone_url"`
	} `json:"repository"`
}

// Parse reads a delivery. It does not check the signature; call Verify first.
func Parse(h http.Header, body []byte) (*hook.PushEvent, error) {
	event := strings.TrimSpace(h.Get(HeaderEvent))
	switch event {
	case "push":
	case "":
		return nil, hook.Invalid("%s header is missing", HeaderEvent)
	default:
		return nil, hook.Ignored("GitHub %q event", hook.CleanText(event, 64))
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
		DeliveryID: hook.DeliveryID(h, body, HeaderDelivery),
		Ref:        p.Ref,
		Before:     p.Before,
		After:      p.After,
		Deleted:    p.Deleted,
		Pusher:     p.Pusher.Name,
		CloneURL:   p.Repository.CloneURL,
	}
	// For an annotated tag "after" is the tag object; head_commit is the
	// commit it points at.
	if p.HeadCommit != nil {
		u.Commit = p.HeadCommit.ID
	}
	if u.Pusher == "" {
		u.Pusher = p.Sender.Login
	}
	return u.Event()
}
