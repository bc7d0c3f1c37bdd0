package server

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/berth-dev/berth/pipeline"
	"github.com/berth-dev/berth/registry"
	"github.com/berth-dev/berth/store"
)

// GCService runs the registry's garbage collection (pipeline.GarbageCollector).
type GCService interface {
	Start(ctx context.Context, opts registry.GCOptions, trigger string) (*store.GCRun, error)
	DefaultOptions() registry.GCOptions
}

type gcRequest struct {
	DryRun        *bool   `json:"dry_run"`
	UntaggedGrace *string `json:"untagged_grace"`
	BlobGrace     *string `json:"blob_grace"`
}

type gcRunView struct {
	ID               string     `json:"id"`
	StartedAt        time.Time  `json:"started_at"`
	FinishedAt       *time.Time `json:"finished_at"`
	DryRun           bool       `json:"dry_run"`
	UntaggedGrace    string     `json:"untagged_grace"`
	BlobGrace        string     `json:"blob_grace"`
	Trigger          string     `json:"trigger"`
	ManifestsDeleted int        `json:"manifests_deleted"`
	BlobsDeleted     int        `json:"blobs_deleted"`
	BytesFreed       int64      `json:"bytes_freed"`
	Error            string     `json:"error"`
}

func viewGCRun(r *store.GCRun) gcRunView {
	return gcRunView{ID: r.ID, StartedAt: r.StartedAt, FinishedAt: r.FinishedAt, DryRun: r.DryRun,
		UntaggedGrace: r.UntaggedGrace, BlobGrace: r.BlobGrace, Trigger: r.Trigger,
		ManifestsDeleted: r.ManifestsDeleted, BlobsDeleted: r.BlobsDeleted, BytesFreed: r.BytesFreed, Error: r.Error}
}

// parseGrace reads an optional grace override: a Go duration of 0 or more.
func parseGrace(field string, v *string, def time.Duration) (time.Duration, error) {
	if v == nil {
		return def, nil
	}
	d, err := time.ParseDuration(*v)
	if err != nil || d < 0 {
		return 0, badRequest("%s must be a duration of 0 or more, like \"24h\" or \"90m\"; got %q", field, *v)
	}
	return d, nil
}

// startGC starts a garbage collection in the background: 202 with its record, which GET /api/v1/system/gc
// shows finished later. The body is optional; its fields override the configured graces for this run.
func (a *api) startGC(c *gin.Context) {
	if a.GC == nil {
		fail(c, errf(http.StatusServiceUnavailable, CodeUnavailable, "garbage collection is not available on this instance"))
		return
	}
	var req gcRequest
	if err := bindOptionalJSON(c, &req); err != nil {
		fail(c, err)
		return
	}
	opts := a.GC.DefaultOptions()
	var err error
	if req.DryRun != nil {
		opts.DryRun = *req.DryRun
	}
	if opts.UntaggedGrace, err = parseGrace("untagged_grace", req.UntaggedGrace, opts.UntaggedGrace); err != nil {
		fail(c, err)
		return
	}
	if opts.BlobGrace, err = parseGrace("blob_grace", req.BlobGrace, opts.BlobGrace); err != nil {
		fail(c, err)
		return
	}
	run, err := a.GC.Start(c.Request.Context(), opts, "api")
	if errors.Is(err, pipeline.ErrGCRunning) {
		fail(c, errf(http.StatusConflict, CodeConflict,
			"a garbage collection is already running (on this or another replica); follow it with GET /api/v1/system/gc and start again when it has finished"))
		return
	}
	if err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusAccepted, viewGCRun(run))
}

// listGC pages through garbage collection runs, newest first.
func (a *api) listGC(c *gin.Context) {
	p, err := page(c)
	if err != nil {
		fail(c, err)
		return
	}
	runs, total, err := a.Store.ListGCRuns(c.Request.Context(), p)
	if err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusOK, list(runs, total, p, viewGCRun))
}
