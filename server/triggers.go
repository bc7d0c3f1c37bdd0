package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/http"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"github.com/berth-dev/berth/store"
	"github.com/berth-dev/berth/webhooks/outbound"
)

// Trigger field limits.
const (
	MaxTriggerNameRunes = 64
	MaxTriggerSecret    = 256
)

// TriggerService is what the trigger routes need beyond the store: sealing secrets and sending test
// deliveries. *workers.Triggers implements it.
type TriggerService interface {
	SealSecret(secret string) string
	TestDelivery(ctx context.Context, t *store.Trigger) (*store.TriggerRecord, error)
}

// triggerView is a trigger as the API shows it (SPEC §11). Secret is set only in the answer that creates a
// trigger with a generated secret.
type triggerView struct {
	ID         string   `json:"id"`
	Name       string   `json:"name"`
	URL        string   `json:"url"`
	FilterType string   `json:"filter_type"`
	Expression string   `json:"expression"`
	Tags       []string `json:"tags"`
	Enabled    bool     `json:"enabled"`
	Secret     string   `json:"secret,omitempty"`
}

func viewTrigger(t *store.Trigger) triggerView {
	tags := t.Tags
	if tags == nil {
		tags = []string{}
	}
	return triggerView{ID: t.ID, Name: t.Name, URL: t.URL, FilterType: t.FilterType, Expression: t.Expression,
		Tags: tags, Enabled: t.Enabled}
}

type triggerRecordView struct {
	ID              string    `json:"id"`
	Time            time.Time `json:"time"`
	Tag             string    `json:"tag"`
	Digest          string    `json:"digest"`
	Status          string    `json:"status"`
	Reason          string    `json:"reason"`
	StatusCode      int       `json:"status_code"`
	LatencyMS       int64     `json:"latency_ms"`
	Attempts        int       `json:"attempts"`
	RequestBody     string    `json:"request_body"`
	ResponseExcerpt string    `json:"response_excerpt"`
}

func viewTriggerRecord(r *store.TriggerRecord) triggerRecordView {
	return triggerRecordView{ID: r.ID, Time: r.Time, Tag: r.Tag, Digest: r.Digest, Status: r.Status, Reason: r.Reason,
		StatusCode: r.StatusCode, LatencyMS: r.LatencyMS, Attempts: r.Attempts, RequestBody: r.RequestBody,
		ResponseExcerpt: r.ResponseExcerpt}
}

// triggerRequest is the body of a create (all fields) or a PATCH (any of them).
type triggerRequest struct {
	Name       *string   `json:"name"`
	URL        *string   `json:"url"`
	FilterType *string   `json:"filter_type"`
	Expression *string   `json:"expression"`
	Tags       *[]string `json:"tags"`
	Enabled    *bool     `json:"enabled"`
	Secret     *string   `json:"secret"`
}

// apply merges req into t and checks the result. Changing filter_type drops the other type's expression or
// tags unless the same request sets them.
func (req *triggerRequest) apply(t *store.Trigger) error {
	if req.Name != nil {
		if err := checkTriggerName(*req.Name); err != nil {
			return err
		}
		t.Name = *req.Name
	}
	if req.URL != nil {
		if err := outbound.ValidateURL(*req.URL); err != nil {
			return badRequest("url: %v", err)
		}
		t.URL = *req.URL
	}
	if req.FilterType != nil {
		t.FilterType = *req.FilterType
		if t.FilterType == "" {
			t.FilterType = outbound.FilterAll
		}
		if t.FilterType != outbound.FilterExpression && req.Expression == nil {
			t.Expression = ""
		}
		if t.FilterType != outbound.FilterTags && req.Tags == nil {
			t.Tags = nil
		}
	}
	if req.Expression != nil {
		t.Expression = *req.Expression
	}
	if req.Tags != nil {
		t.Tags = *req.Tags
	}
	if req.Enabled != nil {
		t.Enabled = *req.Enabled
	}
	if req.Secret != nil {
		if *req.Secret == "" || len(*req.Secret) > MaxTriggerSecret {
			return badRequest("secret must be 1 to %d bytes; leave it out when creating a trigger to have one generated", MaxTriggerSecret)
		}
	}
	switch {
	case t.Expression != "" && t.FilterType != outbound.FilterExpression:
		return badRequest("expression is only used by EXPRESSION filters, and filter_type is %s: set filter_type to EXPRESSION or leave expression out", t.FilterType)
	case len(t.Tags) > 0 && t.FilterType != outbound.FilterTags:
		return badRequest("tags are only used by TAGS filters, and filter_type is %s: set filter_type to TAGS or leave tags out", t.FilterType)
	}
	if _, err := outbound.CompileFilter(outbound.Filter{Type: t.FilterType, Expression: t.Expression, Tags: t.Tags}); err != nil {
		return badRequest("%v", err)
	}
	return nil
}

func checkTriggerName(name string) error {
	n := utf8.RuneCountInString(name)
	if n == 0 || n > MaxTriggerNameRunes || strings.TrimSpace(name) != name {
		return badRequest("name must be 1 to %d characters without leading or trailing spaces, got %d", MaxTriggerNameRunes, n)
	}
	if !utf8.ValidString(name) || strings.IndexFunc(name, unicode.IsControl) >= 0 {
		return badRequest("name must be valid text without control characters")
	}
	return nil
}

func (a *api) createTrigger(c *gin.Context) {
	var req triggerRequest
	if err := bindJSON(c, &req); err != nil {
		fail(c, err)
		return
	}
	switch {
	case req.Name == nil:
		fail(c, badRequest("name is required"))
		return
	case req.URL == nil:
		fail(c, badRequest("url is required: the http or https address deliveries are POSTed to"))
		return
	}
	t := &store.Trigger{FilterType: outbound.FilterAll, Enabled: true}
	if err := req.apply(t); err != nil {
		fail(c, err)
		return
	}
	if a.Triggers == nil {
		fail(c, errf(http.StatusServiceUnavailable, CodeUnavailable, "triggers are not available on this instance"))
		return
	}
	r, ok := a.repositoryOr404(c)
	if !ok {
		return
	}
	secret, generated := "", false
	if req.Secret != nil {
		secret = *req.Secret
	} else {
		var b [32]byte
		_, _ = rand.Read(b[:])
		secret, generated = hex.EncodeToString(b[:]), true
	}
	t.Repository = r.FullName
	t.Secret = a.Triggers.SealSecret(secret)
	err := a.Store.CreateTrigger(c.Request.Context(), t)
	if errors.Is(err, store.ErrNotFound) {
		fail(c, notFound("repository %s does not exist", r.FullName))
		return
	}
	if err != nil {
		fail(c, err)
		return
	}
	v := viewTrigger(t)
	if generated {
		// Shown this once; receivers verify X-Berth-Signature with it.
		v.Secret = secret
	}
	c.JSON(http.StatusCreated, v)
}

func (a *api) listTriggers(c *gin.Context) {
	if resp, _, ok := pageOfRepository(a, c, a.Store.ListTriggers, viewTrigger); ok {
		c.JSON(http.StatusOK, resp)
	}
}

// triggerOr404 loads :id of :ns/:repo.
func (a *api) triggerOr404(c *gin.Context) (*store.Trigger, bool) {
	return childOr404(a, c, "trigger", "id", "triggers", a.Store.GetTrigger)
}

func (a *api) getTrigger(c *gin.Context) {
	if t, ok := a.triggerOr404(c); ok {
		c.JSON(http.StatusOK, viewTrigger(t))
	}
}

func (a *api) updateTrigger(c *gin.Context) {
	var req triggerRequest
	if err := bindJSON(c, &req); err != nil {
		fail(c, err)
		return
	}
	if req.Secret != nil && a.Triggers == nil {
		fail(c, errf(http.StatusServiceUnavailable, CodeUnavailable, "triggers are not available on this instance"))
		return
	}
	full := c.Param("ns") + "/" + c.Param("repo")
	t, err := a.Store.UpdateTrigger(c.Request.Context(), full, c.Param("id"), func(t *store.Trigger) error {
		if err := req.apply(t); err != nil {
			return err
		}
		if req.Secret != nil {
			t.Secret = a.Triggers.SealSecret(*req.Secret)
		}
		return nil
	})
	if errors.Is(err, store.ErrNotFound) {
		fail(c, notFound("trigger %q of %s does not exist; list the triggers with GET …/triggers", c.Param("id"), full))
		return
	}
	if err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusOK, viewTrigger(t))
}

func (a *api) deleteTrigger(c *gin.Context) {
	full := c.Param("ns") + "/" + c.Param("repo")
	err := a.Store.DeleteTrigger(c.Request.Context(), full, c.Param("id"))
	if errors.Is(err, store.ErrNotFound) {
		fail(c, notFound("trigger %q of %s does not exist", c.Param("id"), full))
		return
	}
	if err != nil {
		fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

func (a *api) listTriggerRecords(c *gin.Context) {
	p, err := page(c)
	if err != nil {
		fail(c, err)
		return
	}
	t, ok := a.triggerOr404(c)
	if !ok {
		return
	}
	items, total, err := a.Store.ListTriggerRecords(c.Request.Context(), t.ID, p)
	if err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusOK, list(items, total, p, viewTriggerRecord))
}

// testTrigger sends a sample delivery now and answers its record (200 whatever the receiver said; the
// record's status tells).
func (a *api) testTrigger(c *gin.Context) {
	t, ok := a.triggerOr404(c)
	if !ok {
		return
	}
	if a.Triggers == nil {
		fail(c, errf(http.StatusServiceUnavailable, CodeUnavailable, "triggers are not available on this instance"))
		return
	}
	rec, err := a.Triggers.TestDelivery(c.Request.Context(), t)
	if err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusOK, viewTriggerRecord(rec))
}
