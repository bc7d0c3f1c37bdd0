package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/hibiken/asynq"

	"github.com/berth-dev/berth/store"
	"github.com/berth-dev/berth/store/secretbox"
	"github.com/berth-dev/berth/webhooks/inbound"
	"github.com/berth-dev/berth/webhooks/outbound"
	"github.com/berth-dev/berth/workers/gitclone"
)

// TaskBuild runs one build: clone, BuildKit build, push. Its TaskID is the build id, so a build is queued at
// most once however often it is enqueued.
const TaskBuild = "build:run"

// Build pipeline bounds.
const (
	// BuildMaxRetry is how often a build is delivered again after its worker died (a failed build is final
	// and is not retried).
	BuildMaxRetry = 2
	// BuildTimeout bounds one attempt; the build then fails as timed out.
	BuildTimeout = time.Hour
	// BuildRetryDelay is the wait before a build whose worker died runs again.
	BuildRetryDelay = 2 * time.Second
	// HeartbeatInterval is how often a running build's worker proves it is alive.
	HeartbeatInterval = 5 * time.Second
	// StaleAfter fails a running build whose worker sent no heartbeat for this long. It is well past the
	// queue's own recovery of a dead worker's task (lease 30 s, checked every minute, then BuildRetryDelay),
	// so the retry gets its chance first.
	StaleAfter = 10 * time.Minute
	// DeliveryRetention is how long webhook delivery ids are remembered.
	DeliveryRetention = 24 * time.Hour
	// DeliveryTakeoverAfter is how long a delivery whose handler never finished counts as a redelivery.
	DeliveryTakeoverAfter = time.Minute
)

// BuildTask is the payload of a build:run task.
type BuildTask struct {
	BuildID string `json:"build_id"`
}

// QueueFor returns the queue (region) the builds of src run on.
func QueueFor(src *store.Source) string {
	if src.OverseasBuild {
		return QueueOverseas
	}
	return QueueDefault
}

// EnqueueBuild queues b on its region's queue. Enqueuing a build that is queued or running already does
// nothing (TaskID).
func EnqueueBuild(ctx context.Context, q Enqueuer, b *store.Build) error {
	body, err := json.Marshal(BuildTask{BuildID: b.ID})
	if err != nil {
		return err
	}
	_, err = q.EnqueueContext(ctx, asynq.NewTask(TaskBuild, body), asynq.Queue(b.Region), asynq.TaskID(b.ID),
		asynq.MaxRetry(BuildMaxRetry), asynq.Timeout(BuildTimeout))
	if errors.Is(err, asynq.ErrTaskIDConflict) {
		return nil
	}
	return err
}

// BuildRetryDelayFunc wraps next (the queue's retry delay) so that a build whose worker died runs again after
// BuildRetryDelay; other task types keep next.
func BuildRetryDelayFunc(next asynq.RetryDelayFunc) asynq.RetryDelayFunc {
	if next == nil {
		next = asynq.DefaultRetryDelayFunc
	}
	return func(n int, err error, t *asynq.Task) time.Duration {
		if t.Type() == TaskBuild {
			return BuildRetryDelay
		}
		return next(n, err, t)
	}
}

// Builds makes, queues, cancels and recovers builds for the API and the webhook endpoint.
type Builds struct {
	Store store.Store
	Queue Enqueuer
	// Inspector cancels running tasks and drops queued ones; nil leaves cancel to the workers' heartbeat check.
	Inspector *asynq.Inspector
	// Box seals source credentials and webhook secrets.
	Box    *secretbox.Box
	Logger *slog.Logger
	// SourceGuard confines "build now" for sources the administrator did not set (see CloneGuard).
	SourceGuard *outbound.Guard

	dedupe inbound.Deduper
	cache  hookCache
}

// Errors callers branch on.
var (
	ErrBuildFinished = errors.New("the build has finished already")
	ErrNoMatch       = errors.New("the ref does not match the rule")
)

// Ref is a branch or tag at a commit, as a push or "build now" names it.
type Ref struct {
	Type   string // store.RuleBranch or store.RuleTag
	Name   string
	Commit string // empty: the head when the build clones
	Pusher string
}

// Skipped is a rule that matched a push but started no build, and why.
type Skipped struct {
	RuleID string `json:"rule_id"`
	Reason string `json:"reason"`
}

// Start makes a QUEUED build of rule for ref and queues it. ErrNoMatch when ref does not match the rule; an
// invalid image tag from the rule's template is an error too (nothing is recorded).
func (s *Builds) Start(ctx context.Context, src *store.Source, rule *store.BuildRule, ref Ref, trigger string) (*store.Build, error) {
	return s.start(ctx, src, rule, ref, trigger, nil)
}

func (s *Builds) start(ctx context.Context, src *store.Source, rule *store.BuildRule, ref Ref, trigger string, deliveries []string) (*store.Build, error) {
	if ref.Type != rule.SourceType {
		return nil, fmt.Errorf("%w: %s %q is not a %s", ErrNoMatch, strings.ToLower(ref.Type), ref.Name, strings.ToLower(rule.SourceType))
	}
	m, err := CompileRef(rule.SourceRef)
	if err != nil {
		return nil, err
	}
	vars, ok := m.Match(ref.Name)
	if !ok {
		return nil, fmt.Errorf("%w: %s %q does not match source_ref %q", ErrNoMatch, strings.ToLower(ref.Type), ref.Name, rule.SourceRef)
	}
	tag, err := ExpandTag(rule.ImageTag, vars)
	if err != nil {
		return nil, err
	}
	b := &store.Build{
		Repository: src.Repository, RuleID: rule.ID, Trigger: trigger, RefType: ref.Type, Ref: ref.Name,
		Commit: ref.Commit, Pusher: ref.Pusher, ImageTag: tag, Region: QueueFor(src), NoCache: src.NoCache,
		Deliveries: deliveries,
		Spec: store.BuildSpec{DockerfileDir: rule.DockerfileDir, DockerfileName: rule.DockerfileName,
			BuildArgs: maps.Clone(rule.BuildArgs), Target: rule.Target, Platforms: slices.Clone(rule.Platforms)},
	}
	if err := s.Store.CreateBuild(ctx, b); err != nil {
		return nil, err
	}
	if err := EnqueueBuild(ctx, s.Queue, b); err != nil {
		// The build stays QUEUED, marked: the sweeper queues it again once Redis answers.
		s.log().Error("enqueue build; the sweeper will retry", "build", b.ID, "err", err)
		if nb, uerr := s.Store.UpdateBuild(context.WithoutCancel(ctx), b.ID, func(b *store.Build) error {
			b.QueueError = err.Error()
			return nil
		}); uerr == nil {
			b = nb
		}
	}
	return b, nil
}

// Push starts a build for every rule of src that matches the pushed ref. Deleted refs and sources with
// auto_build off start nothing. keys are those of the webhook delivery Seen let through: its builds carry them,
// which tells a later redelivery that the delivery was handled (store.TakeOverDelivery).
func (s *Builds) Push(ctx context.Context, src *store.Source, ev *inbound.PushEvent, keys []string) ([]*store.Build, []Skipped, error) {
	if ev.Deleted || !src.AutoBuild {
		return nil, nil, nil
	}
	ref := Ref{Type: store.RuleBranch, Name: ev.Name, Commit: ev.Commit, Pusher: ev.Pusher}
	if ev.RefType == inbound.RefTypeTag {
		ref.Type = store.RuleTag
	}
	rules, err := s.rulesOf(ctx, src.Repository)
	if err != nil {
		return nil, nil, err
	}
	var builds []*store.Build
	var skipped []Skipped
	for i := range rules {
		b, err := s.start(ctx, src, &rules[i], ref, store.BuildByWebhook, keys)
		switch {
		case errors.Is(err, ErrNoMatch):
		case errors.Is(err, ErrInvalidRule), errors.Is(err, ErrBadImageTag):
			skipped = append(skipped, Skipped{RuleID: rules[i].ID, Reason: err.Error()})
		case err != nil:
			return builds, skipped, err
		default:
			builds = append(builds, b)
		}
	}
	return builds, skipped, nil
}

// Seen reports whether a webhook delivery of repo was handled before, by this process (in memory) or by any
// replica or before a restart (in the store), and records it if not. When the store cannot record it, the
// delivery counts as new (a push is not dropped because of a bookkeeping failure) and the error is logged.
//
// A delivery recorded by a handler that never finished (its process died, or the store failed it, before its
// builds existed; see Done) is not a redelivery once DeliveryTakeoverAfter has passed: the Git host's retry,
// or a manual redelivery, then starts its builds, on exactly one replica.
//
// This process remembers only the deliveries it claimed (until it fails them): a copy it merely found taken may
// yet fail on the replica that took it, and its retry must then be let through here too.
func (s *Builds) Seen(ctx context.Context, repo, key string) bool {
	mem := repo + "\n" + key
	if s.dedupe.Has(mem) {
		return true
	}
	err := s.Store.RecordDelivery(ctx, repo, key)
	if errors.Is(err, store.ErrAlreadyExists) {
		took, err := s.Store.TakeOverDelivery(ctx, repo, key, DeliveryTakeoverAfter)
		if err != nil {
			s.log().Warn("look at an unfinished webhook delivery", "repository", repo, "err", err)
		}
		if !took {
			return true
		}
		s.log().Info("webhook delivery taken over: its first handler never finished", "repository", repo)
	} else if err != nil {
		s.log().Warn("record webhook delivery", "repository", repo, "err", err)
	}
	return s.dedupe.Seen(mem) // false, unless a copy claimed it in this process meanwhile
}

// Failed drops the deliveries of repo by keys, which Seen let through, after their handling failed: the Git
// host's retry handles them again (on any replica; where the store cannot drop them, after
// DeliveryTakeoverAfter).
func (s *Builds) Failed(ctx context.Context, repo string, keys ...string) {
	for _, k := range keys {
		s.dedupe.Forget(repo + "\n" + k)
		if err := s.Store.ForgetDelivery(context.WithoutCancel(ctx), repo, k); err != nil {
			s.log().Warn("forget a failed webhook delivery", "repository", repo, "err", err)
		}
	}
}

// Cancel marks b CANCELED and stops its task: a queued task is dropped, a running one has its context
// canceled, which stops the BuildKit solve. ErrBuildFinished when it had finished.
func (s *Builds) Cancel(ctx context.Context, b *store.Build, who string) (*store.Build, error) {
	nb, err := s.Store.UpdateBuild(ctx, b.ID, func(b *store.Build) error {
		if store.BuildFinal(b.Status) {
			return ErrBuildFinished
		}
		b.Finish(store.BuildCanceled, "canceled by "+who, time.Now().UTC())
		return nil
	})
	if err != nil {
		return nil, err
	}
	if s.Inspector != nil {
		// Either may fail because the task is elsewhere (or gone): the worker checks the record anyway.
		if err := s.Inspector.DeleteTask(nb.Region, nb.ID); err != nil && !errors.Is(err, asynq.ErrTaskNotFound) {
			_ = s.Inspector.CancelProcessing(nb.ID)
		}
	}
	return nb, nil
}

// Recover queues again every build left QUEUED or running (by a process that stopped); builds whose task
// still exists are left alone (TaskID). Run it when the instance starts: an in-memory queue forgets
// everything on restart.
func (s *Builds) Recover(ctx context.Context) (int, error) {
	statuses := append([]string{store.BuildQueued}, store.BuildRunning...)
	n := 0
	err := s.eachBuild(ctx, statuses, func(b *store.Build) error {
		if err := EnqueueBuild(ctx, s.Queue, b); err != nil {
			return fmt.Errorf("re-enqueue build %s: %w", b.ID, err)
		}
		n++
		return nil
	})
	return n, err
}

// eachBuild calls fn for every build in statuses, a page at a time.
func (s *Builds) eachBuild(ctx context.Context, statuses []string, fn func(*store.Build) error) error {
	after := ""
	for {
		bs, err := s.Store.BuildsInStatus(ctx, statuses, after, 500)
		if err != nil {
			return err
		}
		for i := range bs {
			if err := fn(&bs[i]); err != nil {
				return err
			}
		}
		if len(bs) < 500 {
			return nil
		}
		after = bs[len(bs)-1].ID
	}
}

// Sweep fails running builds whose worker has sent no heartbeat for staleAfter (the worker died and the queue
// did not run the build again), queues again the builds that could not be queued when they were made, and
// forgets old webhook deliveries.
func (s *Builds) Sweep(ctx context.Context, staleAfter time.Duration) (failed int, err error) {
	cutoff := time.Now().Add(-staleAfter)
	err = s.eachBuild(ctx, store.BuildRunning, func(b *store.Build) error {
		if b.Heartbeat.After(cutoff) {
			return nil
		}
		_, err := s.Store.UpdateBuild(ctx, b.ID, func(b *store.Build) error {
			if !b.Running() || b.Heartbeat.After(cutoff) {
				return ErrBuildFinished
			}
			b.Finish(store.BuildFailed, fmt.Sprintf("the worker %s stopped during %s (no heartbeat for %s; attempt %d of %d): "+
				"it was killed or lost its connection", b.Worker, b.Status, staleAfter, b.Attempt, BuildMaxRetry+1), time.Now().UTC())
			return nil
		})
		if err == nil {
			failed++
			s.log().Warn("build failed: worker lost", "build", b.ID, "repository", b.Repository, "worker", b.Worker)
		}
		return nil
	})
	if err != nil {
		return failed, err
	}
	unqueued, err := s.Store.UnqueuedBuilds(ctx, 500)
	if err != nil {
		return failed, err
	}
	for i := range unqueued {
		if err := EnqueueBuild(ctx, s.Queue, &unqueued[i]); err != nil {
			return failed, err
		}
		if _, err := s.Store.UpdateBuild(ctx, unqueued[i].ID, func(b *store.Build) error { b.QueueError = ""; return nil }); err != nil {
			return failed, err
		}
	}
	_, err = s.Store.DeleteDeliveriesBefore(ctx, time.Now().Add(-DeliveryRetention))
	return failed, err
}

// SealSecret seals a credential or webhook secret for the store.
func (s *Builds) SealSecret(secret string) string {
	if secret == "" {
		return ""
	}
	return s.Box.Seal([]byte(secret))
}

// OpenSecret opens a sealed secret ("" stays "").
func (s *Builds) OpenSecret(sealed string) (string, error) { return openSecret(s.Box, sealed) }

func openSecret(box *secretbox.Box, sealed string) (string, error) {
	if sealed == "" {
		return "", nil
	}
	b, err := box.Open(sealed)
	if err != nil {
		return "", fmt.Errorf("open a sealed secret (was the master key changed?): %w", err)
	}
	return string(b), nil
}

// GitCredentials opens the credentials of src for cloning; nil when it has none.
func GitCredentials(box *secretbox.Box, src *store.Source) (*gitclone.Credentials, error) {
	pw, err := openSecret(box, src.Password)
	if err != nil {
		return nil, err
	}
	key, err := openSecret(box, src.SSHKey)
	if err != nil {
		return nil, err
	}
	if src.Username == "" && pw == "" && key == "" {
		return nil, nil
	}
	c := &gitclone.Credentials{Username: src.Username, Password: pw}
	if key != "" {
		c.SSHKey = []byte(key)
	}
	return c, nil
}

// ResolveHead asks the Git server which commit the branch or tag name of a rule points at ("build now").
func (s *Builds) ResolveHead(ctx context.Context, src *store.Source, refType, name string) (string, error) {
	creds, err := GitCredentials(s.Box, src)
	if err != nil {
		return "", err
	}
	t := gitclone.Branch
	if refType == store.RuleTag {
		t = gitclone.Tag
	}
	commit, _, err := gitclone.ResolveRef(ctx, src.URL, t, name, creds, CloneGuard(s.SourceGuard, src))
	return commit, err
}

// Refs asks src's Git server for its branches and tags (at most gitclone.MaxRefs of each), for pickers.
func (s *Builds) Refs(ctx context.Context, src *store.Source) (*gitclone.Refs, error) {
	creds, err := GitCredentials(s.Box, src)
	if err != nil {
		return nil, err
	}
	return gitclone.ListRefs(ctx, src.URL, creds, CloneGuard(s.SourceGuard, src))
}

// CloneGuard is the guard Berth's requests to src's Git server go through: none when the administrator set
// its URL; otherwise g (--source-allow-cidr), or, when g is nil, a guard that refuses every non-public address.
func CloneGuard(g *outbound.Guard, src *store.Source) *outbound.Guard {
	if src.AdminURL {
		return nil
	}
	if g == nil {
		g = &outbound.Guard{Flag: gitclone.SourceAllowFlag}
	}
	return g
}

func (s *Builds) log() *slog.Logger {
	if s.Logger == nil {
		return slog.Default()
	}
	return s.Logger
}
