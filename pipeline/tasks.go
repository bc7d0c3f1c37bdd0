// Package pipeline owns what moves through Berth's queues: the task types and their payloads, the build
// records and their state machine, rule matching, and the registry hooks that turn pushes into image
// versions and push events. Workers consume what this package enqueues.
package pipeline

import (
	"context"
	"encoding/json"
	"time"

	"github.com/hibiken/asynq"
)

// Queues. Build queues are named by region ("default", "overseas", …).
const (
	QueueDefault  = "default"
	QueueOverseas = "overseas"
	QueueEvents   = "events"
	QueueScan     = "scan"
	QueueTriggers = "triggers"
)

// Task types.
const (
	TaskImagePushed = "image:pushed"
)

// PushEvent is emitted for every manifest pushed by tag (SPEC §3).
type PushEvent struct {
	Namespace string    `json:"namespace"`
	Repo      string    `json:"repo"`
	Tag       string    `json:"tag"`
	Digest    string    `json:"digest"`
	PushedAt  time.Time `json:"pushed_at"`
	BuildID   string    `json:"build_id,omitempty"`
}

// Enqueuer puts tasks on the queue; *asynq.Client implements it.
type Enqueuer interface {
	EnqueueContext(ctx context.Context, task *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error)
}

// EnqueuePushEvent queues ev once per repository, tag and digest.
func EnqueuePushEvent(ctx context.Context, q Enqueuer, ev PushEvent) error {
	body, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	id := "push:" + ev.Namespace + "/" + ev.Repo + ":" + ev.Tag + "@" + ev.Digest + "#" + ev.PushedAt.Format(time.RFC3339Nano)
	_, err = q.EnqueueContext(ctx, asynq.NewTask(TaskImagePushed, body),
		asynq.Queue(QueueEvents), asynq.TaskID(id), asynq.MaxRetry(10), asynq.Retention(time.Hour))
	if err == asynq.ErrTaskIDConflict {
		return nil
	}
	return err
}
