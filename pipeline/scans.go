package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/hibiken/asynq"

	"github.com/berth-dev/berth/policies/signature"
	"github.com/berth-dev/berth/store"
)

// TaskImageScan scans one manifest (and, for an index, its platform images) and then releases the pushes
// waiting for it to the policy gate and their triggers.
const TaskImageScan = "image:scan"

// Scan task bounds.
const (
	// ScanMaxRetry retries a scan whose worker or scanner was lost; a scan that answered (DONE or FAILED) is final.
	ScanMaxRetry = 2
	// ScanTaskTimeout covers every platform image of an index (the scanner bounds each scan to 10 minutes).
	ScanTaskTimeout = 40 * time.Minute
	// BuildScanWait bounds how long a build waits in SCANNING for its image's scan.
	BuildScanWait = 20 * time.Minute
)

// ScanTask is the payload of an image:scan task.
type ScanTask struct {
	Digest     string `json:"digest"`
	Repository string `json:"repository"` // where the scanner pulls it from
	// Reason says why it was queued: "push", "api" or "db-update".
	Reason string `json:"reason,omitempty"`
}

// ScanTaskID makes the scan of a pushed digest idempotent: pushes of one digest while its scan is queued or
// running share that scan.
func ScanTaskID(digest string) string { return "scan:" + digest }

// EnqueueScan queues t with the given TaskID; an equal TaskID already queued or running is not an error.
func EnqueueScan(ctx context.Context, q Enqueuer, t ScanTask, taskID string) error {
	body, err := json.Marshal(t)
	if err != nil {
		return err
	}
	_, err = q.EnqueueContext(ctx, asynq.NewTask(TaskImageScan, body), asynq.Queue(QueueScan), asynq.TaskID(taskID),
		asynq.MaxRetry(ScanMaxRetry), asynq.Timeout(ScanTaskTimeout))
	if errors.Is(err, asynq.ErrTaskIDConflict) {
		return nil
	}
	return err
}

// Scans is the second half of the pipeline around the scanner: a push waits for its digest's scan, the gate
// judges it, and its triggers fire (or record NOT_TRIGGERED with reason BLOCKED).
type Scans struct {
	Store store.Store
	Queue Enqueuer
	Gate  *Gate
	// PollInterval is how soon a build in SCANNING looks at its scan again, first; default 50 ms, one read of a
	// scan by its digest, the wait doubling after each look up to a second. A signed build pushes a new digest every time (its provenance differs), so its SCANNING waits for
	// the scan of a new index even when every platform image was scanned before.
	PollInterval time.Duration
	Logger       *slog.Logger
}

// Pushed takes a push event: when its digest has a DONE scan the gate judges it at once; otherwise the push
// waits on the digest's scan record and a scan is queued (once per digest).
func (s *Scans) Pushed(ctx context.Context, ev PushEvent) error {
	// The stored waiter keeps milliseconds: every path fires with that time, so they all write one record.
	w := store.ScanWaiter{Repository: ev.Namespace + "/" + ev.Repo, Tag: ev.Tag,
		PushedAt: ev.PushedAt.UTC().Truncate(time.Millisecond), BuildID: ev.BuildID}
	sc, err := s.Store.GetScan(ctx, ev.Digest)
	if err == nil && sc.Status == store.ScanDone {
		return s.fire(ctx, ev.Digest, w)
	}
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	if sc, err = s.Store.AddScanWaiter(ctx, ev.Digest, w); err != nil {
		return err
	}
	return s.settle(ctx, sc, w, "push")
}

// settle makes sure something releases waiter w of sc, the scan record as it was right after w was added.
// The record's status then says whether a scan worker will see w: a scan that is SCANNING reads its
// waiters when it finishes (FinishScan, after w was added); one that already finished (DONE or FAILED) took
// its copy of the waiters before w was there, even if its task is still winding up. So:
//   - NOT_SCANNED: queue the digest's scan (its per-digest task id shares it between concurrent pushes);
//   - DONE, or FAILED after w was pushed (this push's own failure): release w now;
//   - FAILED before w was pushed: a new push tries again (the DB may be there now), as a task named after
//     that failed result, never the per-digest id, which the finishing task may still hold and would
//     swallow. The retry's FinishScan reads w.
//
// Firing twice is harmless (FireTriggers is idempotent), so settling a waiter the worker also saw is fine.
func (s *Scans) settle(ctx context.Context, sc *store.Scan, w store.ScanWaiter, reason string) error {
	t := ScanTask{Digest: sc.Digest, Repository: w.Repository, Reason: reason}
	switch {
	case sc.Status == store.ScanNotScanned:
		return EnqueueScan(ctx, s.Queue, t, ScanTaskID(sc.Digest))
	case sc.Status == store.ScanDone || (sc.Status == store.ScanFailed && !sc.FinishedAt.Before(w.PushedAt)):
		if err := s.fire(ctx, sc.Digest, w); err != nil {
			return err
		}
		return s.Store.RemoveScanWaiter(ctx, sc.Digest, w)
	case sc.Status == store.ScanFailed:
		return EnqueueScan(ctx, s.Queue, t, RetryScanTaskID(sc))
	}
	return nil // SCANNING: the running scan releases w
}

// RetryScanTaskID names the retry of a failed scan after its result: the pushes that find the same failed
// result share one retry, and no retry waits on the task that produced the failure.
func RetryScanTaskID(sc *store.Scan) string {
	result := sc.ResultID
	if result == "" { // a result recorded before results had ids
		result = fmt.Sprint(sc.FinishedAt.UnixNano())
	}
	return ScanTaskID(sc.Digest) + ":retry:" + result
}

// Rescan queues a new scan of digest (pulled from repo) now, marking it SCANNING; the previous result stays
// in force at the gate until the new one is in.
func (s *Scans) Rescan(ctx context.Context, repo, digest, reason string) error {
	if err := s.Store.StartScan(ctx, digest, repo, time.Now()); err != nil {
		return err
	}
	s.Gate.Changed()
	id := fmt.Sprintf("%s:%s:%d", ScanTaskID(digest), reason, time.Now().UnixNano())
	return EnqueueScan(ctx, s.Queue, ScanTask{Digest: digest, Repository: repo, Reason: reason}, id)
}

// Recover queues again the scans left queued or running by a process that stopped (an in-memory queue forgets
// them; with Redis the TaskID makes this a no-op for a scan still queued), and settles the pushes still
// waiting on a finished scan (a process stopped between a scan's end and their release, or before their
// retry ran). Run it when the instance starts.
func (s *Scans) Recover(ctx context.Context) (int, error) {
	scans, err := s.Store.UnfinishedScans(ctx, 1000)
	if err != nil {
		return 0, err
	}
	n := 0
	var errs []error
	for i := range scans {
		sc := &scans[i]
		if store.ScanFinal(sc.Status) {
			for _, w := range sc.Waiting {
				errs = append(errs, s.settle(ctx, sc, w, "recover"))
			}
			n++
			continue
		}
		repo := sc.PullFrom
		if repo == "" && len(sc.Waiting) > 0 {
			repo = sc.Waiting[0].Repository
		}
		if repo == "" {
			continue
		}
		if err := EnqueueScan(ctx, s.Queue, ScanTask{Digest: sc.Digest, Repository: repo, Reason: "recover"}, ScanTaskID(sc.Digest)); err != nil {
			return n, err
		}
		n++
	}
	return n, errors.Join(errs...)
}

// Release hands the pushes waiting for sc's digest to the gate and their triggers. Firing twice is harmless
// (FireTriggers is idempotent), so a waiter is removed only after its triggers were handled.
func (s *Scans) Release(ctx context.Context, sc *store.Scan) error {
	var errs []error
	for _, w := range sc.Waiting {
		if err := s.fire(ctx, sc.Digest, w); err != nil {
			errs = append(errs, err)
			continue
		}
		if err := s.Store.RemoveScanWaiter(ctx, sc.Digest, w); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (s *Scans) fire(ctx context.Context, digest string, w store.ScanWaiter) error {
	v, err := s.Gate.Verdict(ctx, w.Repository, digest)
	if err != nil {
		return err
	}
	if v.Blocked {
		s.log().Info("image blocked by the security policy", "repository", w.Repository, "tag", w.Tag, "digest", digest,
			"reason", v.Message)
	}
	return FireTriggers(ctx, s.Store, s.Queue, PushedVersion{Repository: w.Repository, Tag: w.Tag, Digest: digest,
		PushedAt: w.PushedAt, Blocked: v.Blocked, Reason: v.Message})
}

// AfterBuildPush is the SCANNING stage of a build (workers.BuildRunner.AfterPush): it waits for the scan of
// the pushed image (up to BuildScanWait) and returns BLOCKED with the gate's message when the security
// policy blocks it, SUCCESS otherwise.
func (s *Scans) AfterBuildPush(ctx context.Context, b *store.Build, log *LogWriter) (status, reason string, err error) {
	digest, pushedAt := b.Digest, time.Time{}
	if v, err := s.Store.GetImageVersion(ctx, b.Repository, b.ImageTag); err == nil {
		if digest == "" {
			digest = v.Digest
		}
		pushedAt = v.PushedAt
	}
	if digest == "" {
		return "", "", fmt.Errorf("image %s:%s is not recorded: cannot find its scan", b.Repository, b.ImageTag)
	}
	log.Printf("SCANNING %s@%s", b.Repository, digest)
	every := s.PollInterval
	if every <= 0 {
		every = 50 * time.Millisecond // then doubling, up to a second
	}
	wctx, cancel := context.WithTimeout(ctx, BuildScanWait)
	defer cancel()
	var sc *store.Scan
	for {
		sc, err = s.Store.GetScan(wctx, digest)
		if err != nil && !errors.Is(err, store.ErrNotFound) && wctx.Err() == nil {
			return "", "", err
		}
		// A DONE result is good whenever it was made (same digest, same content); a FAILED one only if it
		// is this push's (an older failure is being retried).
		if err == nil && (sc.Status == store.ScanDone || (sc.Status == store.ScanFailed && !sc.FinishedAt.Before(pushedAt))) {
			break
		}
		select {
		case <-wctx.Done():
			if ctx.Err() != nil {
				return "", "", ctx.Err()
			}
			log.Printf("the scan did not finish within %s; judging the image as it is", BuildScanWait)
		case <-time.After(every):
			every = min(2*every, max(s.PollInterval, time.Second)) // quick to see a fast scan, light on the store for a slow one
			continue
		}
		break
	}
	if sc != nil {
		switch sc.Status {
		case store.ScanDone:
			log.Printf("scan DONE (%s, DB %s): %d high, %d medium, %d low, %d unrated", sc.Scanner, sc.DBVersion,
				sc.Summary.High, sc.Summary.Medium, sc.Summary.Low, sc.Summary.Unrated)
		case store.ScanFailed:
			log.Printf("scan FAILED: %s", sc.Error)
		}
	}
	v, err := s.Gate.Verdict(ctx, b.Repository, digest)
	if err != nil {
		return "", "", err
	}
	if v.Blocked {
		return store.BuildBlocked, v.Message, nil
	}
	return store.BuildSuccess, "", nil
}

func (s *Scans) log() *slog.Logger {
	if s.Logger == nil {
		return slog.Default()
	}
	return s.Logger
}

// Verdict is the gate's verdict on repo@digest.
func (s *Scans) Verdict(ctx context.Context, repo, digest string) (Verdict, error) {
	return s.Gate.Verdict(ctx, repo, digest)
}

// Signature says whether repo@digest is signed by the instance key or a trusted key.
func (s *Scans) Signature(ctx context.Context, repo, digest string) (SignatureStatus, error) {
	return s.Gate.Signature(ctx, repo, digest)
}

// Accessories lists the signatures, attestations and SBOMs of repo@digest.
func (s *Scans) Accessories(ctx context.Context, repo, digest string) ([]Accessory, error) {
	return s.Gate.Accessories(ctx, repo, digest)
}

// Attestations are the verified statements about repo@digest.
func (s *Scans) Attestations(ctx context.Context, repo, digest string) ([]signature.Attestation, error) {
	return s.Gate.Attestations(ctx, repo, digest)
}

// PolicyChanged makes the gate judge every image again with the policies as they are now.
func (s *Scans) PolicyChanged() { s.Gate.Changed() }
