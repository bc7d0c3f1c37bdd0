// Package workers holds Berth's Asynq task handlers: the build pipeline (clone, BuildKit build, push), image
// push events, scans and trigger deliveries. Each handler is context-first and idempotent, since the queue
// delivers at least once.
package workers

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"

	"github.com/hibiken/asynq"

	"github.com/berth-dev/berth/pipeline"
	"github.com/berth-dev/berth/store"
)

// Deps are what the handlers need.
type Deps struct {
	Store  store.Store
	Queue  pipeline.Enqueuer
	Logger *slog.Logger
	Region string
	// Triggers delivers trigger webhooks; trigger:deliver tasks fail without it.
	Triggers *Triggers
	// Builds runs builds; build:run tasks fail without it.
	Builds *BuildRunner
	// Scans runs image:scan tasks; without it pushes go straight to their triggers, unblocked.
	Scans *ScanRunner
}

// Handlers routes task types to their handlers.
func Handlers(d Deps) *asynq.ServeMux {
	mux := asynq.NewServeMux()
	mux.HandleFunc(pipeline.TaskImagePushed, d.imagePushed)
	mux.HandleFunc(pipeline.TaskTriggerDeliver, d.deliverTrigger)
	mux.HandleFunc(pipeline.TaskBuild, d.runBuild)
	mux.HandleFunc(pipeline.TaskImageScan, d.scanImage)
	return mux
}

// imagePushed is where a push event enters the second half of the pipeline: scan, gate, triggers.
func (d Deps) imagePushed(ctx context.Context, t *asynq.Task) error {
	var ev pipeline.PushEvent
	if err := json.Unmarshal(t.Payload(), &ev); err != nil {
		return fmt.Errorf("%w: bad push event: %v", asynq.SkipRetry, err)
	}
	d.Logger.Info("image pushed", "repository", ev.Namespace+"/"+ev.Repo, "tag", ev.Tag, "digest", ev.Digest)
	if d.Scans == nil {
		return d.FireTriggers(ctx, ev.Namespace+"/"+ev.Repo, ev.Tag, ev.Digest, ev.PushedAt, false, "")
	}
	// Scan, then the policy gate, then triggers: the push waits for its digest's scan.
	return d.Scans.Scans.Pushed(ctx, ev)
}
