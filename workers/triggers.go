package workers

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/hibiken/asynq"

	"github.com/berth-dev/berth/pipeline"
	"github.com/berth-dev/berth/store"
	"github.com/berth-dev/berth/store/secretbox"
	"github.com/berth-dev/berth/webhooks/outbound"
)

// Triggers sends trigger deliveries (SPEC §8) and keeps their access records. One value serves both the
// trigger:deliver tasks and the API's test deliveries.
type Triggers struct {
	Store store.Store
	// Box opens the sealed trigger secrets.
	Box *secretbox.Box
	// Deliverer sends with the SSRF guard; its AllowCIDRs come from --trigger-allow-cidr.
	Deliverer *outbound.Deliverer
	// Region is the instance's region, reported in every payload.
	Region string
	// Location is the instance's time zone (--time-zone); payload times are written in it.
	Location *time.Location
	Logger   *slog.Logger
}

// SampleDigest is the digest a test delivery reports when the repository has no image version yet.
const SampleDigest = "sha256:0000000000000000000000000000000000000000000000000000000000000000"

// FireTriggers fans a pushed image version out to its repository's triggers (see pipeline.FireTriggers).
// The scan and policy gate calls it with its verdict: blocked versions record NOT_TRIGGERED with reason.
func (d Deps) FireTriggers(ctx context.Context, repo, tag, digest string, pushedAt time.Time, blocked bool, reason string) error {
	return pipeline.FireTriggers(ctx, d.Store, d.Queue, pipeline.PushedVersion{Repository: repo, Tag: tag, Digest: digest,
		PushedAt: pushedAt, Blocked: blocked, Reason: reason})
}

// deliverTrigger handles trigger:deliver.
func (d Deps) deliverTrigger(ctx context.Context, t *asynq.Task) error {
	if d.Triggers == nil {
		return fmt.Errorf("%w: this worker was started without trigger delivery", asynq.SkipRetry)
	}
	return d.Triggers.handle(ctx, t)
}

// SealSecret seals a trigger secret for the store.
func (tr *Triggers) SealSecret(secret string) string { return tr.Box.Seal([]byte(secret)) }

func (tr *Triggers) log() *slog.Logger {
	if tr.Logger == nil {
		return slog.Default()
	}
	return tr.Logger
}

// handle sends one attempt of a delivery and rewrites its record: TRIGGERED on a 2xx, FAILED with the reason
// otherwise. Refusals (URL rules, non-public addresses) are final at once; other failures are retried by the
// queue until the last attempt.
func (tr *Triggers) handle(ctx context.Context, task *asynq.Task) error {
	var d pipeline.TriggerDelivery
	if err := json.Unmarshal(task.Payload(), &d); err != nil {
		return fmt.Errorf("%w: bad trigger delivery: %v", asynq.SkipRetry, err)
	}
	t, err := tr.Store.GetTrigger(ctx, d.Repository, d.TriggerID)
	if errors.Is(err, store.ErrNotFound) {
		tr.log().Info("trigger deleted before its delivery", "trigger", d.TriggerID, "repository", d.Repository)
		return nil
	}
	if err != nil {
		return err
	}
	repo, err := tr.repository(ctx, d.Repository)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	retried, _ := asynq.GetRetryCount(ctx)
	maxRetry, ok := asynq.GetMaxRetry(ctx)
	if !ok {
		maxRetry = pipeline.TriggerMaxRetry
	}
	attempt, attempts := retried+1, maxRetry+1
	rec := &store.TriggerRecord{ID: d.RecordID, TriggerID: t.ID, Repository: d.Repository, Tag: d.Tag, Digest: d.Digest}
	if !t.Enabled {
		rec.Status, rec.Reason = store.TriggerNotTriggered, "DISABLED: the trigger was disabled before the delivery was sent"
		return tr.put(ctx, rec)
	}
	res, err := tr.send(ctx, t, repo, d.Tag, d.Digest, d.PushedAt, rec)
	if err != nil {
		rec.Status, rec.Reason, rec.Attempts = store.TriggerFailed, err.Error(), attempt
		return errors.Join(fmt.Errorf("%w: %v", asynq.SkipRetry, err), tr.put(ctx, rec))
	}
	rec.Attempts = attempt
	var retry error
	switch {
	case res.OK():
		rec.Status = store.TriggerTriggered
	case res.Refused:
		rec.Status, rec.Reason = store.TriggerFailed, "not sent: "+res.Err.Error()
		retry = fmt.Errorf("%w: %v", asynq.SkipRetry, res.Err)
	case attempt >= attempts:
		rec.Status, rec.Reason = store.TriggerFailed, fmt.Sprintf("gave up after %d attempts: %v", attempt, res.Err)
		retry = res.Err
	default:
		rec.Status, rec.Reason = store.TriggerFailed, fmt.Sprintf("attempt %d of %d failed, will retry: %v", attempt, attempts, res.Err)
		retry = res.Err
	}
	tr.log().Info("trigger delivery", "trigger", t.ID, "repository", d.Repository, "tag", d.Tag, "status", rec.Status,
		"status_code", rec.StatusCode, "attempt", attempt, "latency_ms", rec.LatencyMS)
	if err := tr.put(ctx, rec); err != nil {
		if res.OK() {
			// Sent: a retry would send it again. Losing the record is the smaller harm.
			tr.log().Error("record a trigger delivery", "trigger", t.ID, "record", rec.ID, "err", err)
			return nil
		}
		return errors.Join(retry, err)
	}
	return retry
}

// TestDelivery sends a sample payload to t now, once, and records and returns the outcome. The sample is the
// repository's newest image version, or tag "latest" with SampleDigest when it has none. Filter and enabled
// are not consulted: it tests the receiver.
func (tr *Triggers) TestDelivery(ctx context.Context, t *store.Trigger) (*store.TriggerRecord, error) {
	repo, err := tr.repository(ctx, t.Repository)
	if err != nil {
		return nil, err
	}
	tag, digest, pushedAt := "latest", SampleDigest, time.Now()
	if vs, _, err := tr.Store.ListImageVersions(ctx, t.Repository, store.Page{Page: 1, PageSize: 1}); err == nil && len(vs) > 0 {
		tag, digest, pushedAt = vs[0].Tag, vs[0].Digest, vs[0].PushedAt
	}
	var nonce [8]byte
	_, _ = rand.Read(nonce[:])
	rec := &store.TriggerRecord{ID: store.TriggerRecordID(t.ID, time.Now(), "test:"+hex.EncodeToString(nonce[:])),
		TriggerID: t.ID, Repository: t.Repository, Tag: tag, Digest: digest, Attempts: 1}
	res, err := tr.send(ctx, t, repo, tag, digest, pushedAt, rec)
	switch {
	case err != nil:
		rec.Status, rec.Reason = store.TriggerFailed, "test delivery: "+err.Error()
	case res.OK():
		rec.Status, rec.Reason = store.TriggerTriggered, "test delivery"
	case res.Refused:
		rec.Status, rec.Reason = store.TriggerFailed, "test delivery not sent: "+res.Err.Error()
	default:
		rec.Status, rec.Reason = store.TriggerFailed, "test delivery: "+res.Err.Error()
	}
	if err := tr.put(ctx, rec); err != nil {
		return nil, err
	}
	return rec, nil
}

func (tr *Triggers) repository(ctx context.Context, full string) (*store.Repository, error) {
	ns, name, _ := strings.Cut(full, "/")
	return tr.Store.GetRepository(ctx, ns, name)
}

// send builds, signs and sends the payload, filling rec with what was sent and answered. An error means
// nothing was sent for a reason on Berth's side.
func (tr *Triggers) send(ctx context.Context, t *store.Trigger, repo *store.Repository, tag, digest string,
	pushedAt time.Time, rec *store.TriggerRecord) (outbound.Result, error) {
	body, err := outbound.NewPayload(outbound.Repo{Namespace: repo.Namespace, Name: repo.Name, Region: tr.Region,
		Public: repo.Visibility == store.VisibilityPublic, CreatedAt: repo.CreatedAt}, digest, tag, pushedAt, tr.Location).Marshal()
	if err != nil {
		return outbound.Result{}, fmt.Errorf("building the payload: %w", err)
	}
	rec.RequestBody = string(body)
	secret, err := tr.Box.Open(t.Secret)
	if err != nil {
		return outbound.Result{}, fmt.Errorf("the trigger's secret cannot be opened (was the master key changed?); set a new secret: %w", err)
	}
	deliverer := tr.Deliverer
	if deliverer == nil {
		deliverer = &outbound.Deliverer{}
	}
	res := deliverer.Deliver(ctx, t.URL, body, string(secret))
	rec.StatusCode, rec.ResponseExcerpt, rec.LatencyMS = res.StatusCode, res.ResponseExcerpt, res.Latency.Milliseconds()
	return res, nil
}

func (tr *Triggers) put(ctx context.Context, rec *store.TriggerRecord) error {
	rec.Time = time.Now().UTC()
	return tr.Store.PutTriggerRecord(ctx, rec)
}
