package server

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/berth-dev/berth/pipeline"
	"github.com/berth-dev/berth/store"
)

// RetentionService runs namespaces' retention rules (pipeline.Retention).
type RetentionService interface {
	Start(ctx context.Context, ns string, dryRun bool, trigger string) (*store.RetentionRun, error)
}

// Bounds of a rule's numbers: 10 years, a million tags.
const (
	maxKeepDays = 3650
	maxKeepLast = 1_000_000
)

type retentionRuleView struct {
	ID                string `json:"id"`
	RepositoryPattern string `json:"repository_pattern"`
	TagPattern        string `json:"tag_pattern"`
	KeepLast          int    `json:"keep_last"`
	KeepDays          int    `json:"keep_days"`
	Enabled           bool   `json:"enabled"`
}

func viewRetentionRule(r *store.RetentionRule) retentionRuleView {
	return retentionRuleView{ID: r.ID, RepositoryPattern: r.RepositoryPattern, TagPattern: r.TagPattern,
		KeepLast: r.KeepLast, KeepDays: r.KeepDays, Enabled: r.Enabled}
}

// retentionRuleRequest is a POST (every field optional but a keep) or a PATCH (only the fields given change).
type retentionRuleRequest struct {
	RepositoryPattern *string `json:"repository_pattern"`
	TagPattern        *string `json:"tag_pattern"`
	KeepLast          *int    `json:"keep_last"`
	KeepDays          *int    `json:"keep_days"`
	Enabled           *bool   `json:"enabled"`
}

// apply sets the request's fields on r and checks the result.
func (q *retentionRuleRequest) apply(r *store.RetentionRule) error {
	if q.RepositoryPattern != nil {
		r.RepositoryPattern = *q.RepositoryPattern
	}
	if q.TagPattern != nil {
		r.TagPattern = *q.TagPattern
	}
	if q.KeepLast != nil {
		r.KeepLast = *q.KeepLast
	}
	if q.KeepDays != nil {
		r.KeepDays = *q.KeepDays
	}
	if q.Enabled != nil {
		r.Enabled = *q.Enabled
	}
	if _, err := store.CompilePattern(r.RepositoryPattern); err != nil {
		return badRequest("repository_pattern: %v", err)
	}
	if _, err := store.CompilePattern(r.TagPattern); err != nil {
		return badRequest("tag_pattern: %v", err)
	}
	if r.KeepLast < 0 || r.KeepLast > maxKeepLast || r.KeepDays < 0 || r.KeepDays > maxKeepDays {
		return badRequest("keep_last must be 0 to %d and keep_days 0 to %d", maxKeepLast, maxKeepDays)
	}
	if r.KeepLast == 0 && r.KeepDays == 0 {
		return badRequest("a rule keeps something: set keep_last (the most recent tags kept) or keep_days (tags pushed within that many days kept), or both")
	}
	return nil
}

// rulesOr404 reads the namespace's rules, or answers 404 when there is no such namespace.
func (a *api) rulesOr404(c *gin.Context) ([]store.RetentionRule, bool) {
	if _, ok := a.namespaceOr404(c); !ok {
		return nil, false
	}
	rules, err := a.Store.GetRetentionRules(c.Request.Context(), c.Param("ns"))
	if err != nil {
		fail(c, err)
		return nil, false
	}
	return rules, true
}

func (a *api) listRetentionRules(c *gin.Context) {
	rules, ok := a.rulesOr404(c)
	if !ok {
		return
	}
	c.JSON(http.StatusOK, list(rules, int64(len(rules)), store.Page{Page: 1, PageSize: store.MaxRetentionRules}, viewRetentionRule))
}

func (a *api) createRetentionRule(c *gin.Context) {
	var req retentionRuleRequest
	if err := bindJSON(c, &req); err != nil {
		fail(c, err)
		return
	}
	rule := store.RetentionRule{ID: store.NewRetentionRuleID(), Enabled: true, CreatedAt: time.Now().UTC()}
	if err := req.apply(&rule); err != nil {
		fail(c, err)
		return
	}
	_, err := a.changeRetentionRules(c, func(rules []store.RetentionRule) ([]store.RetentionRule, error) {
		if len(rules) >= store.MaxRetentionRules {
			return nil, errf(http.StatusConflict, CodeConflict, "namespace %s has %d retention rules, the most allowed; change or delete one",
				c.Param("ns"), store.MaxRetentionRules)
		}
		return append(rules, rule), nil
	})
	if err == nil {
		c.JSON(http.StatusCreated, viewRetentionRule(&rule))
	}
}

// changeRetentionRules applies change to the namespace's rules, answering the errors itself.
func (a *api) changeRetentionRules(c *gin.Context, change func([]store.RetentionRule) ([]store.RetentionRule, error)) ([]store.RetentionRule, error) {
	rules, err := a.Store.UpdateRetentionRules(c.Request.Context(), c.Param("ns"), change)
	var ae *apiError
	switch {
	case errors.As(err, &ae):
		fail(c, ae)
	case errors.Is(err, store.ErrNotFound):
		fail(c, notFound("namespace %q does not exist; create it with POST /api/v1/namespaces", c.Param("ns")))
	case err != nil:
		fail(c, err)
	}
	return rules, err
}

func (a *api) retentionRuleNotFound(c *gin.Context) error {
	return notFound("retention rule %q of namespace %s does not exist; list the rules with GET /api/v1/namespaces/%s/retention-rules",
		c.Param("id"), c.Param("ns"), c.Param("ns"))
}

func (a *api) getRetentionRule(c *gin.Context) {
	rules, ok := a.rulesOr404(c)
	if !ok {
		return
	}
	i := slices.IndexFunc(rules, func(r store.RetentionRule) bool { return r.ID == c.Param("id") })
	if i < 0 {
		fail(c, a.retentionRuleNotFound(c))
		return
	}
	c.JSON(http.StatusOK, viewRetentionRule(&rules[i]))
}

func (a *api) updateRetentionRule(c *gin.Context) {
	var req retentionRuleRequest
	if err := bindJSON(c, &req); err != nil {
		fail(c, err)
		return
	}
	var out store.RetentionRule
	_, err := a.changeRetentionRules(c, func(rules []store.RetentionRule) ([]store.RetentionRule, error) {
		i := slices.IndexFunc(rules, func(r store.RetentionRule) bool { return r.ID == c.Param("id") })
		if i < 0 {
			return nil, a.retentionRuleNotFound(c)
		}
		if err := req.apply(&rules[i]); err != nil {
			return nil, err
		}
		out = rules[i]
		return rules, nil
	})
	if err == nil {
		c.JSON(http.StatusOK, viewRetentionRule(&out))
	}
}

func (a *api) deleteRetentionRule(c *gin.Context) {
	_, err := a.changeRetentionRules(c, func(rules []store.RetentionRule) ([]store.RetentionRule, error) {
		i := slices.IndexFunc(rules, func(r store.RetentionRule) bool { return r.ID == c.Param("id") })
		if i < 0 {
			return nil, a.retentionRuleNotFound(c)
		}
		return slices.Delete(rules, i, i+1), nil
	})
	if err == nil {
		c.Status(http.StatusNoContent)
	}
}

type retentionDeletionView struct {
	Repository string `json:"repository"`
	Tag        string `json:"tag"`
	Digest     string `json:"digest"`
}

type retentionRunView struct {
	ID           string                  `json:"id"`
	StartedAt    time.Time               `json:"started_at"`
	FinishedAt   *time.Time              `json:"finished_at"`
	DryRun       bool                    `json:"dry_run"`
	Trigger      string                  `json:"trigger"`
	Deleted      []retentionDeletionView `json:"deleted"`
	DeletedCount int                     `json:"deleted_count"`
	KeptCount    int                     `json:"kept_count"`
	Error        string                  `json:"error"`
}

func viewRetentionRun(r *store.RetentionRun) retentionRunView {
	v := retentionRunView{ID: r.ID, StartedAt: r.StartedAt, FinishedAt: r.FinishedAt, DryRun: r.DryRun, Trigger: r.Trigger,
		Deleted: make([]retentionDeletionView, len(r.Deleted)), DeletedCount: r.DeletedCount, KeptCount: r.KeptCount, Error: r.Error}
	for i, d := range r.Deleted {
		v.Deleted[i] = retentionDeletionView(d)
	}
	return v
}

// startRetentionRun starts a run of the namespace's rules in the background: 202 with its record.
func (a *api) startRetentionRun(c *gin.Context) {
	if a.Retention == nil {
		fail(c, errf(http.StatusServiceUnavailable, CodeUnavailable, "retention is not available on this instance"))
		return
	}
	if _, ok := a.namespaceOr404(c); !ok {
		return
	}
	var req struct {
		DryRun bool `json:"dry_run"`
	}
	if err := bindOptionalJSON(c, &req); err != nil {
		fail(c, err)
		return
	}
	run, err := a.Retention.Start(c.Request.Context(), c.Param("ns"), req.DryRun, "api")
	if errors.Is(err, pipeline.ErrRetentionRunning) {
		fail(c, errf(http.StatusConflict, CodeConflict,
			"a retention run is already going (on this or another replica); follow it with GET …/retention-runs and start again when it has finished"))
		return
	}
	if err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusAccepted, viewRetentionRun(run))
}

func (a *api) listRetentionRuns(c *gin.Context) {
	if _, ok := a.namespaceOr404(c); !ok {
		return
	}
	p, err := page(c)
	if err != nil {
		fail(c, err)
		return
	}
	runs, total, err := a.Store.ListRetentionRuns(c.Request.Context(), c.Param("ns"), p)
	if err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusOK, list(runs, total, p, viewRetentionRun))
}

func (a *api) getRetentionRun(c *gin.Context) {
	run, err := a.Store.GetRetentionRun(c.Request.Context(), c.Param("ns"), c.Param("id"))
	if errors.Is(err, store.ErrNotFound) {
		fail(c, notFound("retention run %q of namespace %s does not exist", c.Param("id"), c.Param("ns")))
		return
	}
	if err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusOK, viewRetentionRun(run))
}
