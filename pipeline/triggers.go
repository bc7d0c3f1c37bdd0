package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/hibiken/asynq"

	"github.com/berth-dev/berth/store"
	"github.com/berth-dev/berth/webhooks/outbound"
)

// TaskTriggerDeliver sends one trigger delivery: one image version to one trigger's URL.
const TaskTriggerDeliver = "trigger:deliver"

// Trigger delivery bounds.
const (
	// TriggerMaxRetry bounds a delivery to TriggerMaxRetry+1 attempts.
	TriggerMaxRetry = 4
	// TriggerTaskTimeout covers one attempt: the Deliverer's own 10 s plus store reads and writes.
	TriggerTaskTimeout = 30 * time.Second
	// maxTriggerRetryDelay caps the exponential backoff.
	maxTriggerRetryDelay = 10 * time.Minute
)

// Reasons of NOT_TRIGGERED records start with one of these words, so clients can branch on them.
const (
	ReasonBlocked       = "BLOCKED"
	ReasonFilterNoMatch = "FILTER_NO_MATCH"
)

// TriggerDelivery is the payload of a trigger:deliver task.
type TriggerDelivery struct {
	TriggerID  string    `json:"trigger_id"`
	RecordID   string    `json:"record_id"` // every attempt rewrites this record
	Repository string    `json:"repository"`
	Tag        string    `json:"tag"`
	Digest     string    `json:"digest"`
	PushedAt   time.Time `json:"pushed_at"`
}

// TriggerTaskID makes a delivery idempotent per trigger, digest and tag.
func TriggerTaskID(triggerID, digest, tag string) string {
	return "trigger:" + triggerID + "@" + digest + ":" + tag
}

// EnqueueTriggerDelivery queues d on the triggers queue once per trigger, digest and tag. It reports whether
// the task was new (false: the same delivery is already queued or was done within the last hour).
func EnqueueTriggerDelivery(ctx context.Context, q Enqueuer, d TriggerDelivery) (bool, error) {
	body, err := json.Marshal(d)
	if err != nil {
		return false, err
	}
	_, err = q.EnqueueContext(ctx, asynq.NewTask(TaskTriggerDeliver, body),
		asynq.Queue(QueueTriggers), asynq.TaskID(TriggerTaskID(d.TriggerID, d.Digest, d.Tag)),
		asynq.MaxRetry(TriggerMaxRetry), asynq.Timeout(TriggerTaskTimeout), asynq.Retention(time.Hour))
	if errors.Is(err, asynq.ErrTaskIDConflict) {
		return false, nil
	}
	return err == nil, err
}

// PushedVersion is an image version that reached the end of the pipeline, with the gate's verdict.
type PushedVersion struct {
	Repository string // namespace/name
	Tag        string
	Digest     string
	PushedAt   time.Time
	// Blocked versions fire no trigger; each enabled trigger records NOT_TRIGGERED with Reason.
	Blocked bool
	Reason  string
}

// FireTriggers fans a pushed version out to the repository's enabled triggers: a delivery task for each one
// whose filter matches, a NOT_TRIGGERED record (with the reason) for the others, and for all of them when the
// version is blocked. It is idempotent: repeated calls for the same version rewrite the same records and
// enqueue nothing new.
func FireTriggers(ctx context.Context, st store.Store, q Enqueuer, v PushedVersion) error {
	triggers, err := st.EnabledTriggers(ctx, v.Repository)
	if err != nil {
		return fmt.Errorf("list triggers of %s: %w", v.Repository, err)
	}
	var errs []error
	for i := range triggers {
		t := &triggers[i]
		recordID := store.TriggerRecordID(t.ID, v.PushedAt, v.Tag+"@"+v.Digest)
		reason := ""
		switch f, err := outbound.CompileFilter(outbound.Filter{Type: t.FilterType, Expression: t.Expression, Tags: t.Tags}); {
		case v.Blocked:
			reason = ReasonBlocked
			if v.Reason != "" {
				reason += ": " + v.Reason
			}
		case err != nil:
			reason = fmt.Sprintf("%s: the trigger's filter is not valid (%v)", ReasonFilterNoMatch, err)
		case !f.Match(v.Tag):
			reason = fmt.Sprintf("%s: tag %q does not match the %s", ReasonFilterNoMatch, v.Tag, describeFilter(t))
		}
		if reason != "" {
			errs = append(errs, st.PutTriggerRecord(ctx, &store.TriggerRecord{ID: recordID, TriggerID: t.ID,
				Repository: v.Repository, Time: time.Now().UTC(), Tag: v.Tag, Digest: v.Digest,
				Status: store.TriggerNotTriggered, Reason: reason}))
			continue
		}
		_, err := EnqueueTriggerDelivery(ctx, q, TriggerDelivery{TriggerID: t.ID, RecordID: recordID,
			Repository: v.Repository, Tag: v.Tag, Digest: v.Digest, PushedAt: v.PushedAt})
		if err != nil {
			errs = append(errs, fmt.Errorf("enqueue delivery of trigger %s: %w", t.ID, err))
		}
	}
	return errors.Join(errs...)
}

func describeFilter(t *store.Trigger) string {
	switch t.FilterType {
	case outbound.FilterExpression:
		return fmt.Sprintf("EXPRESSION filter %q", t.Expression)
	case outbound.FilterTags:
		return fmt.Sprintf("TAGS filter %q", t.Tags)
	}
	return t.FilterType + " filter"
}

// RetryDelay returns Asynq's RetryDelayFunc: trigger deliveries back off exponentially from triggerBase
// (base, 2×, 4×, … up to 10 minutes, with up to 10% jitter); every other task type keeps Asynq's default.
func RetryDelay(triggerBase time.Duration) asynq.RetryDelayFunc {
	return func(n int, err error, t *asynq.Task) time.Duration {
		if t.Type() != TaskTriggerDeliver {
			return asynq.DefaultRetryDelayFunc(n, err, t)
		}
		return TriggerBackoff(triggerBase, n)
	}
}

// TriggerBackoff is the wait after the (n+1)th failed attempt of a delivery.
func TriggerBackoff(base time.Duration, n int) time.Duration {
	if base <= 0 {
		base = time.Second
	}
	d := base
	for i := 0; i < n && d < maxTriggerRetryDelay; i++ {
		d *= 2
	}
	d = min(d, maxTriggerRetryDelay)
	return d + rand.N(d/10+1)
}
