package server

import (
	"errors"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/berth-dev/berth/pipeline"
	"github.com/berth-dev/berth/store"
)

// Following a build log: how often the store is read, how long a finished build's log may still be
// growing (its worker writes its last lines), and the longest a follow lasts.
const (
	followPoll  = 250 * time.Millisecond
	followGrace = 5 * time.Second
	followMax   = pipeline.BuildTimeout + 10*time.Minute
)

type stageView struct {
	Name       string     `json:"name"`
	Status     string     `json:"status"`
	StartedAt  *time.Time `json:"started_at"`
	FinishedAt *time.Time `json:"finished_at"`
}

// buildView is a build as the API shows it (SPEC §11).
type buildView struct {
	ID        string      `json:"id"`
	RuleID    string      `json:"rule_id"`
	Trigger   string      `json:"trigger"`
	Ref       string      `json:"ref"`
	Commit    string      `json:"commit"`
	ImageTag  string      `json:"image_tag"`
	Digest    string      `json:"digest"`
	Region    string      `json:"region"`
	NoCache   bool        `json:"no_cache"`
	Status    string      `json:"status"`
	Stages    []stageView `json:"stages"`
	Error     string      `json:"error"`
	CreatedAt time.Time   `json:"created_at"`
}

func timeOrNil(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func viewBuild(b *store.Build) buildView {
	stages := make([]stageView, len(b.Stages))
	for i, s := range b.Stages {
		stages[i] = stageView{Name: s.Name, Status: s.Status, StartedAt: timeOrNil(s.StartedAt), FinishedAt: timeOrNil(s.FinishedAt)}
	}
	return buildView{ID: b.ID, RuleID: b.RuleID, Trigger: b.Trigger, Ref: b.Ref, Commit: b.Commit, ImageTag: b.ImageTag,
		Digest: b.Digest, Region: b.Region, NoCache: b.NoCache, Status: b.Status, Stages: stages, Error: b.Error,
		CreatedAt: b.CreatedAt}
}

func (a *api) listBuilds(c *gin.Context) {
	if resp, _, ok := pageOfRepository(a, c, a.Store.ListBuilds, viewBuild); ok {
		c.JSON(http.StatusOK, resp)
	}
}

// buildOr404 loads build :id of :ns/:repo.
func (a *api) buildOr404(c *gin.Context) (*store.Build, bool) {
	return childOr404(a, c, "build", "id", "builds", a.Store.GetBuild)
}

func (a *api) getBuild(c *gin.Context) {
	if b, ok := a.buildOr404(c); ok {
		c.JSON(http.StatusOK, viewBuild(b))
	}
}

// logPiece is how much of a stored log getBuildLog reads before it sends it.
const logPiece = 256 << 10

// getBuildLog answers the build's log as text. With ?follow=true it streams: what is stored first, then each
// new piece as the worker stores it (wherever that worker runs), until the build has ended and its log is
// complete.
func (a *api) getBuildLog(c *gin.Context) {
	follow := false
	switch v := c.Query("follow"); v {
	case "", "false", "0":
	case "true", "1":
		follow = true
	default:
		fail(c, badRequest("follow must be true or false, got %q", v))
		return
	}
	b, ok := a.buildOr404(c)
	if !ok {
		return
	}
	ctx := c.Request.Context()
	cur := pipeline.NewLogCursor(a.Store, b.ID)
	// A long log is sent piece by piece as it is read, so its first lines arrive at once.
	data, more, err := cur.NextUpTo(ctx, 1) // the first chunk alone
	if err != nil {
		fail(c, err)
		return
	}
	c.Header("Content-Type", "text/plain; charset=utf-8")
	c.Header("X-Content-Type-Options", "nosniff")
	c.Header("Cache-Control", "no-store")
	c.Status(http.StatusOK)
	write := func(p []byte) bool {
		if len(p) > 0 {
			if _, err := c.Writer.Write(p); err != nil {
				return false
			}
		}
		c.Writer.Flush()
		return true
	}
	for {
		if !write(data) {
			return
		}
		if !more {
			break
		}
		if data, more, err = cur.NextUpTo(ctx, logPiece); err != nil {
			return
		}
	}
	if !follow {
		return
	}
	deadline := time.Now().Add(followMax)
	var endedAt time.Time
	t := time.NewTicker(followPoll)
	defer t.Stop()
	for time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if endedAt.IsZero() {
			nb, err := a.Store.BuildByID(ctx, b.ID)
			if err != nil {
				return // deleted with its repository, or the store is gone: end the stream
			}
			if store.BuildFinal(nb.Status) {
				endedAt = time.Now()
			}
		}
		data, err := cur.Next(ctx)
		if err != nil || !write(data) {
			return
		}
		// A finished build's log is complete once its last chunk is closed; a worker that died never closes
		// it, so stop after a grace period.
		if !endedAt.IsZero() && (cur.AtEnd() || time.Since(endedAt) > followGrace) {
			return
		}
	}
}

func (a *api) cancelBuild(c *gin.Context) {
	if !a.buildsOr503(c) {
		return
	}
	b, ok := a.buildOr404(c)
	if !ok {
		return
	}
	who := "a user"
	if p := principal(c); p != nil {
		who = p.Name
	}
	nb, err := a.Builds.Cancel(c.Request.Context(), b, who)
	if errors.Is(err, pipeline.ErrBuildFinished) {
		fail(c, errf(http.StatusConflict, CodeConflict, "build %s has finished (%s); only a queued or running build can be canceled", b.ID, b.Status))
		return
	}
	if err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusOK, viewBuild(nb))
}
