// Package bitbucket verifies and parses Bitbucket Cloud webhook deliveries.
//
// Bitbucket Cloud signs the raw body with HMAC-SHA256 of the webhook secret
// and sends "X-Hub-Signature: sha256=<hex>" (note: not SHA-1, unlike
// GitHub's header of the same name); "X-Hub-Signature-256" is accepted too.
// X-Event-Key names the event; only "repo:push" becomes push events.
//
// The delivery id is X-Request-UUID. X-Hook-UUID names the webhook, not the
// delivery (every delivery of a hook repeats it), so it is never used alone;
// without X-Request-UUID the id is a hash of the body.
//
// One repo:push delivery lists every ref the push changed in push.changes.
// ParseAll returns one event per branch or tag change (the first keeps the
// delivery id, the Nth gets "<id>#N"); Parse returns the first. A change
// whose "new" is null deleted its ref; one whose "old" is null created it.
package bitbucket

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/berth-dev/berth/webhooks/inbound/hook"
)

// Provider is this package's provider name.
const Provider = "bitbucket"

// Headers Bitbucket Cloud sends.
const (
	HeaderEventKey        = "X-Event-Key"
	HeaderRequestUUID     = "X-Request-UUID"
	HeaderHookUUID        = "X-Hook-UUID"
	HeaderSignature       = "X-Hub-Signature"
	HeaderSignature256    = "X-Hub-Signature-256"
	EventRepoPush         = "repo:push"
	maxChangesPerDelivery = 100
)

// Verify checks the X-Hub-Signature (or X-Hub-Signature-256) header.
func Verify(h http.Header, body []byte, secret string) error {
	for _, name := range []string{HeaderSignature, HeaderSignature256} {
		if sig := h.Get(name); sig != "" {
			return hook.CheckPrefixedHMAC(body, secret, sig)
		}
	}
	return hook.BadSignature("%s header is missing (set a secret on the Bitbucket webhook)", HeaderSignature)
}

type refState struct {
	Type   string `json:"type"`
	Name   string `json:"name"`
	Target struct {
		Hash string `json:"hash"`
	} `json:"target"`
}

type pushPayload struct {
	Actor struct {
		Username    string `json:"username"`
		Nickname    string `json:"nickname"`
		DisplayName string `json:"display_name"`
	} `json:"actor"`
	Repository struct {
		Links struct {
			HTML struct {
				Href string `json:"href"`
			} `json:"html"`
		} `json:"links"`
	} `json:"repository"`
	Push struct {
		Changes []struct {
			Old *refState `json:"old"`
			New *refState `json:"new"`
		} `json:"changes"`
	} `json:"push"`
}

// Parse returns the first branch or tag change of a delivery. It does not
// check the signature; call Verify first.
func Parse(h http.Header, body []byte) (*hook.PushEvent, error) {
	evs, err := ParseAll(h, body)
	if err != nil {
		return nil, err
	}
	return evs[0], nil
}

// ParseAll returns every branch and tag change of a delivery, in order. It
// returns ErrIgnoredEvent when there is none, never an empty list.
func ParseAll(h http.Header, body []byte) ([]*hook.PushEvent, error) {
	event := strings.TrimSpace(h.Get(HeaderEventKey))
	switch event {
	case EventRepoPush:
	case "":
		return nil, hook.Invalid("%s header is missing", HeaderEventKey)
	default:
		return nil, hook.Ignored("Bitbucket %q event", hook.CleanText(event, 64))
	}
	var p pushPayload
	if err := hook.Decode(body, &p); err != nil {
		return nil, err
	}
	if len(p.Push.Changes) > maxChangesPerDelivery {
		return nil, hook.Invalid("%d ref changes in one delivery (at most %d)", len(p.Push.Changes), maxChangesPerDelivery)
	}
	delivery := hook.DeliveryID(h, body, HeaderRequestUUID)
	pusher := p.Actor.Username
	if pusher == "" {
		pusher = p.Actor.Nickname
	}
	if pusher == "" {
		pusher = p.Actor.DisplayName
	}
	cloneURL := ""
	if href := strings.TrimSuffix(p.Repository.Links.HTML.Href, "/"); href != "" {
		cloneURL = href + ".git"
	}
	var events []*hook.PushEvent
	for _, c := range p.Push.Changes {
		cur := c.New
		if cur == nil {
			cur = c.Old
		}
		if cur == nil {
			return nil, hook.Invalid("a change has neither old nor new ref")
		}
		ref, ok := fullRef(cur.Type, cur.Name)
		if !ok {
			continue // Mercurial bookmarks and named branches, gone from Bitbucket
		}
		id := delivery
		if len(events) > 0 {
			id = fmt.Sprintf("%s#%d", delivery, len(events)+1)
		}
		u := hook.RefUpdate{
			Provider:   Provider,
			DeliveryID: id,
			Ref:        ref,
			Deleted:    c.New == nil,
			Pusher:     pusher,
			CloneURL:   cloneURL,
		}
		if c.Old != nil {
			u.Before = c.Old.Target.Hash
		}
		if c.New != nil {
			u.After = c.New.Target.Hash
		}
		ev, err := u.Event()
		if err != nil {
			return nil, err
		}
		events = append(events, ev)
	}
	if len(events) == 0 {
		return nil, hook.Ignored("repo:push without branch or tag changes")
	}
	return events, nil
}

func fullRef(typ, name string) (string, bool) {
	switch typ {
	case "branch":
		return "refs/heads/" + name, true
	case "tag", "annotated_tag":
		return "refs/tags/" + name, true
	}
	return "", false
}
