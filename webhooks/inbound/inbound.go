// Package inbound turns Git push webhooks into PushEvents, for every Git
// provider Berth supports. The HTTP layer uses it like this:
//
//	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, inbound.MaxBody))
//	// too large → 413
//	if err := inbound.Verify(src.Provider, r.Header, body, src.Secret); err != nil {
//		// errors.Is(err, inbound.ErrBadSignature) → 401, nothing enqueued
//	}
//	events, err := inbound.ParseAll(src.Provider, r.Header, body)
//	switch {
//	case errors.Is(err, inbound.ErrIgnoredEvent): // 202, nothing enqueued (GitHub ping, …)
//	case err != nil:                              // 400 (ErrInvalidPayload)
//	}
//	for _, ev := range events {
//		if ev.Deleted || dedupe.Seen(repoID+"/"+ev.DeliveryID) {
//			continue // deleted refs start nothing; a redelivery is not a new push
//		}
//		// match build rules against ev.RefType / ev.Name, enqueue
//	}
//
// Verify always runs before Parse: nothing in an unverified body is trusted.
// Each provider lives in its own package (github, gitlab, gitea, bitbucket,
// generic) with its parser, recorded fixtures and a fuzz test; package hook
// holds what they share.
package inbound

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/berth-dev/berth/webhooks/inbound/bitbucket"
	"github.com/berth-dev/berth/webhooks/inbound/generic"
	"github.com/berth-dev/berth/webhooks/inbound/gitea"
	"github.com/berth-dev/berth/webhooks/inbound/github"
	"github.com/berth-dev/berth/webhooks/inbound/gitlab"
	"github.com/berth-dev/berth/webhooks/inbound/hook"
)

// PushEvent is a branch or tag push; see hook.PushEvent.
type PushEvent = hook.PushEvent

// MaxBody is the largest body the HTTP layer should read (5 MiB).
const MaxBody = hook.MaxBody

// Ref types of a PushEvent.
const (
	RefTypeBranch = hook.RefTypeBranch
	RefTypeTag    = hook.RefTypeTag
)

// Errors returned by Verify and Parse; branch on them with errors.Is.
var (
	ErrBadSignature   = hook.ErrBadSignature   // 401
	ErrIgnoredEvent   = hook.ErrIgnoredEvent   // 202, nothing enqueued
	ErrInvalidPayload = hook.ErrInvalidPayload // 400
	// ErrUnknownProvider: the provider name is not one of Providers.
	ErrUnknownProvider = errors.New("unknown webhook provider")
)

// Providers lists the provider names Verify and Parse accept.
var Providers = []string{github.Provider, gitlab.Provider, gitea.Provider, bitbucket.Provider, generic.Provider}

type provider struct {
	verify   func(http.Header, []byte, string) error
	parse    func(http.Header, []byte) (*hook.PushEvent, error)
	parseAll func(http.Header, []byte) ([]*hook.PushEvent, error)
}

func lookup(name string) (provider, error) {
	switch name {
	case github.Provider:
		return provider{verify: github.Verify, parse: github.Parse}, nil
	case gitlab.Provider:
		return provider{verify: gitlab.Verify, parse: gitlab.Parse}, nil
	case gitea.Provider:
		return provider{verify: gitea.Verify, parse: gitea.Parse}, nil
	case bitbucket.Provider:
		return provider{verify: bitbucket.Verify, parse: bitbucket.Parse, parseAll: bitbucket.ParseAll}, nil
	case generic.Provider:
		return provider{verify: generic.Verify, parse: generic.Parse}, nil
	}
	return provider{}, fmt.Errorf("%w %q (want one of %v)", ErrUnknownProvider, name, Providers)
}

// Verify checks the delivery's signature or token with the provider's rule.
func Verify(provider string, h http.Header, body []byte, secret string) error {
	p, err := lookup(provider)
	if err != nil {
		return err
	}
	return p.verify(h, body, secret)
}

// Parse returns the push event of a verified delivery. For Bitbucket, whose
// deliveries may list several ref changes, it returns the first; use
// ParseAll to get them all.
func Parse(provider string, h http.Header, body []byte) (*PushEvent, error) {
	p, err := lookup(provider)
	if err != nil {
		return nil, err
	}
	if err := checkSize(body); err != nil {
		return nil, err
	}
	return p.parse(h, body)
}

// ParseAll returns every push event of a verified delivery: one for all
// providers but Bitbucket, which may batch several ref changes in one
// delivery. On success the list is never empty.
func ParseAll(provider string, h http.Header, body []byte) ([]*PushEvent, error) {
	p, err := lookup(provider)
	if err != nil {
		return nil, err
	}
	if err := checkSize(body); err != nil {
		return nil, err
	}
	if p.parseAll != nil {
		return p.parseAll(h, body)
	}
	ev, err := p.parse(h, body)
	if err != nil {
		return nil, err
	}
	return []*PushEvent{ev}, nil
}

// checkSize backs up the HTTP layer's MaxBody limit.
func checkSize(body []byte) error {
	if len(body) > MaxBody {
		return hook.Invalid("body is %d bytes; at most %d are accepted", len(body), MaxBody)
	}
	return nil
}
