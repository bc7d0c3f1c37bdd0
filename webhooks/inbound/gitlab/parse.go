// Package gitlab verifies and parses GitLab webhook deliveries.
//
// GitLab does not sign bodies: it sends the hook's secret token verbatim in
// X-Gitlab-Token, which Verify compares with the secret in constant time.
// X-Gitlab-Event is "Push Hook" for branches and "Tag Push Hook" for tags
// (system hooks send "System Hook" with the same payload, told apart by
// object_kind). Other events give hook.ErrIgnoredEvent.
//
// The delivery id is Idempotency-Key when present (GitLab keeps it across
// retries of one delivery, which is what deduplication needs), else
// X-Gitlab-Event-UUID.
//
// For a tag push, "after" is the tag object of an annotated tag while
// "checkout_sha" is the commit; Commit is checkout_sha. A deleted branch or
// tag has "after" of all zeros and "checkout_sha": null.
package gitlab

import (
	"net/http"
	"slices"
	"strings"

	"github.com/berth-dev/berth/webhooks/inbound/hook"
)

// Provider is this package's provider name.
const Provider = "gitlab"

// Headers GitLab sends.
const (
	HeaderEvent          = "X-Gitlab-Event"
	HeaderToken          = "X-Gitlab-Token"
	HeaderEventUUID      = "X-Gitlab-Event-UUID"
	HeaderIdempotencyKey = "Idempotency-Key"
)

// Event header values.
const (
	EventPush    = "Push Hook"
	EventTagPush = "Tag Push Hook"
	EventSystem  = "System Hook"
)

// Verify checks X-Gitlab-Token against the secret. body is unused: GitLab
// sends no signature of it.
func Verify(h http.Header, body []byte, secret string) error {
	return hook.CheckToken(h.Get(HeaderToken), secret)
}

type pushPayload struct {
	ObjectKind   string  `json:"object_kind"`
	Ref          string  `json:"ref"`
	Before       string  `json:"before"`
	After        string  `json:"after"`
	CheckoutSHA  *string `json:"checkout_sha"`
	UserName     string  `json:"user_name"`
	UserUsername string  `json:"user_username"`
	Project      struct {
		GitHTTPURL string `json:"git_http_url"`
	} `json:"project"`
	Repository struct {
		GitHTTPURL string `json:"git_http_url"`
	} `json:"repository"`
}

// Parse reads a delivery. It does not check the token; call Verify first.
func Parse(h http.Header, body []byte) (*hook.PushEvent, error) {
	event := strings.TrimSpace(h.Get(HeaderEvent))
	var kinds []string
	switch event {
	case EventPush:
		kinds = []string{"push"}
	case EventTagPush:
		kinds = []string{"tag_push"}
	case EventSystem:
		kinds = []string{"push", "tag_push"}
	case "":
		return nil, hook.Invalid("%s header is missing", HeaderEvent)
	default:
		return nil, hook.Ignored("GitLab %q event", hook.CleanText(event, 64))
	}
	var p pushPayload
	if err := hook.Decode(body, &p); err != nil {
		return nil, err
	}
	if !slices.Contains(kinds, p.ObjectKind) {
		if event == EventSystem {
			return nil, hook.Ignored("GitLab system hook %q event", hook.CleanText(p.ObjectKind, 64))
		}
		return nil, hook.Invalid("object_kind %q does not match %s %q", hook.CleanText(p.ObjectKind, 64), HeaderEvent, event)
	}
	// The event header and object_kind must agree with the ref, so a branch
	// push cannot pose as a tag push or the other way around.
	wantPrefix := "refs/heads/"
	if p.ObjectKind == "tag_push" {
		wantPrefix = "refs/tags/"
	}
	if !strings.HasPrefix(p.Ref, wantPrefix) {
		return nil, hook.Invalid("%s event for ref %q", p.ObjectKind, hook.CleanText(p.Ref, 100))
	}
	u := hook.RefUpdate{
		Provider:   Provider,
		DeliveryID: hook.DeliveryID(h, body, HeaderIdempotencyKey, HeaderEventUUID),
		Ref:        p.Ref,
		Before:     p.Before,
		After:      p.After,
		Pusher:     p.UserUsername,
		CloneURL:   p.Project.GitHTTPURL,
	}
	if p.CheckoutSHA != nil {
		u.Commit = *p.CheckoutSHA
	}
	if u.Pusher == "" {
		u.Pusher = p.UserName
	}
	if u.CloneURL == "" {
		u.CloneURL = p.Repository.GitHTTPURL
	}
	return u.Event()
}
