package server

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"regexp"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/berth-dev/berth/pipeline"
	"github.com/berth-dev/berth/store"
	"github.com/berth-dev/berth/webhooks/inbound"
)

// hookPath is the inbound Git webhook endpoint, a code source's webhook_url. It is outside /api/v1 and its
// authorization table: the caller is a Git host, authenticated by the delivery's signature.
const hookPath = "/hooks/:hook_id"

var hookIDPattern = regexp.MustCompile(`^[0-9a-f]{32}$`)

// hookAnswer is the 202 answer to a delivery: the builds it started, and the matching rules that could not
// start one (an image_tag that gives no valid tag for this ref).
type hookAnswer struct {
	Builds    []string           `json:"builds"`
	Skipped   []pipeline.Skipped `json:"skipped,omitempty"`
	Duplicate bool               `json:"duplicate,omitempty"`
	Ignored   string             `json:"ignored,omitempty"`
}

// receiveHook verifies a push delivery with the source's secret, by its provider's rule, and starts a build
// for every matching rule. It answers as soon as the builds are queued; it never clones. A bad signature is
// 401 and starts nothing; events other than pushes, deleted refs, redeliveries (the same delivery id, or the
// same signed body under any id, within pipeline.DeliveryRetention) and refs no rule matches are 202 with no
// builds.
func (a *api) receiveHook(c *gin.Context) {
	if !a.buildsOr503(c) {
		return
	}
	id := c.Param("hook_id")
	if !hookIDPattern.MatchString(id) {
		fail(c, notFound("no webhook at this URL; copy webhook_url from GET /api/v1/repositories/{ns}/{repo}/source"))
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, inbound.MaxBody))
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		fail(c, errf(http.StatusRequestEntityTooLarge, CodeBodyTooLarge, "webhook body is larger than %d bytes", inbound.MaxBody))
		return
	case err != nil:
		fail(c, badRequest("read webhook body: %v", err))
		return
	}
	ctx := c.Request.Context()
	src, err := a.Builds.SourceByHook(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		fail(c, notFound("no webhook at this URL (the repository was disconnected?); copy webhook_url from GET …/source"))
		return
	}
	if err != nil {
		fail(c, err)
		return
	}
	c.Set("user", "hook:"+src.Repository)
	secret, err := a.Builds.OpenSecret(src.WebhookSecret)
	if err != nil {
		fail(c, err)
		return
	}
	if err := inbound.Verify(src.Provider, c.Request.Header, body, secret); err != nil {
		if errors.Is(err, inbound.ErrBadSignature) {
			fail(c, errf(http.StatusUnauthorized, CodeUnauthorized, "%v; the %s webhook must be configured with the secret Berth gave when the source was connected", err, src.Provider))
			return
		}
		fail(c, badRequest("%v", err))
		return
	}
	events, err := inbound.ParseAll(src.Provider, c.Request.Header, body)
	switch {
	case errors.Is(err, inbound.ErrIgnoredEvent):
		c.JSON(http.StatusAccepted, hookAnswer{Builds: []string{}, Ignored: strings.TrimPrefix(err.Error(), inbound.ErrIgnoredEvent.Error()+": ")})
		return
	case err != nil:
		fail(c, badRequest("%v", err))
		return
	}
	ans := hookAnswer{Builds: []string{}}
	bodyKey := bodyDeliveryKey(src.Provider, body)
	for _, ev := range events {
		if ev.Deleted {
			continue
		}
		// The signature covers the body, not the delivery id beside it: a captured delivery sent again under a
		// new id is the same push, and must not rebuild an old commit and move the tag back. GitLab's token
		// signs nothing, but its bodies are deduplicated the same way. The body's key claims the push: only
		// the request that recorded it records the id's key too. (Recording both for every copy let two
		// copies arriving together, on two replicas, each find one key taken: neither built.)
		keys := []string{bodyKey + "\n" + ev.Ref, ev.DeliveryID + "\n" + ev.Ref}
		if a.Builds.Seen(ctx, src.Repository, keys[0]) {
			ans.Duplicate = true
			continue
		}
		if a.Builds.Seen(ctx, src.Repository, keys[1]) {
			ans.Duplicate = true
			continue
		}
		builds, skipped, err := a.Builds.Push(ctx, src, ev, keys)
		for _, b := range builds {
			ans.Builds = append(ans.Builds, b.ID)
		}
		ans.Skipped = append(ans.Skipped, skipped...)
		if err != nil {
			// The Git host retries a failed delivery: let the retry start the builds (those this one started
			// may then run twice, rather than a push never building).
			a.Builds.Failed(ctx, src.Repository, keys...)
			fail(c, err)
			return
		}
	}
	if len(ans.Builds) > 0 {
		logger(c).Info("webhook started builds", "repository", src.Repository, "builds", ans.Builds)
	}
	c.JSON(http.StatusAccepted, ans)
}

// bodyDeliveryKey names a delivery by what its signature covers: the provider and the body.
func bodyDeliveryKey(provider string, body []byte) string {
	h := sha256.New()
	h.Write([]byte(provider))
	h.Write([]byte{0})
	h.Write(body)
	return "body:" + hex.EncodeToString(h.Sum(nil))
}
