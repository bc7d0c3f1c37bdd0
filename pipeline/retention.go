package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/berth-dev/berth/registry"
	"github.com/berth-dev/berth/store"
	"github.com/berth-dev/berth/store/lease"
)

// TagDeleter is the part of the registry that deletes tags.
type TagDeleter interface {
	DeleteTag(ctx context.Context, name, tag string) error
}

// DeleteTag deletes repo:tag as every deletion of a tag does (REST, console, retention): from the registry,
// which refuses an immutable tag (registry.IsTagImmutable), then from the store. reg may be nil (tests of
// metadata alone). The manifest stays, untagged, for garbage collection.
func DeleteTag(ctx context.Context, reg TagDeleter, st store.Store, repo, tag string) error {
	if reg != nil {
		if err := reg.DeleteTag(ctx, repo, tag); err != nil && registry.ErrorCode(err) != registry.CodeManifestUnknown {
			return err
		}
	}
	if err := st.DeleteImageVersion(ctx, repo, tag); err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	return nil
}

// ErrRetentionRunning is returned when a retention run is already going, in this process or another replica.
var ErrRetentionRunning = errors.New("a retention run is already going")

// RetentionLeaseKey is the Redis key whose holder is the one replica applying retention rules.
const RetentionLeaseKey = "berth:retention:lease"

// retentionPage is how many versions a run reads at once.
const retentionPage = 500

// Retention applies namespaces' retention rules (SPEC §14), one run at a time across every replica sharing
// Redis (a lease, as the garbage collector's), and records each run in the store.
type Retention struct {
	Store    store.Store
	Registry TagDeleter
	Redis    redis.UniversalClient
	Logger   *slog.Logger
	LeaseTTL time.Duration // default DefaultGCLeaseTTL
	Now      func() time.Time

	bg background
}

// Close stops runs in the background and waits for them.
func (r *Retention) Close() { r.bg.close() }

var errRetentionLeaseLost = errors.New("the retention lease was lost")

// begin takes the lease and records the run as started.
func (r *Retention) begin(ctx context.Context, ns string, dryRun bool, trigger string) (*store.RetentionRun, context.Context, func(), error) {
	run := &store.RetentionRun{Namespace: ns, StartedAt: time.Now(), DryRun: dryRun, Trigger: trigger}
	run.ID = store.NewRetentionRunID(run.StartedAt)
	ttl := r.LeaseTTL
	if ttl <= 0 {
		ttl = DefaultGCLeaseTTL
	}
	runCtx, release, err := lease.Redis{Client: r.Redis}.Hold(ctx, RetentionLeaseKey, run.ID, ttl, errRetentionLeaseLost)
	if errors.Is(err, lease.ErrHeld) {
		return nil, nil, nil, ErrRetentionRunning
	}
	if err != nil {
		return nil, nil, nil, fmt.Errorf("take the retention lease: %w", err)
	}
	if err := r.Store.CreateRetentionRun(ctx, run); err != nil {
		release()
		return nil, nil, nil, fmt.Errorf("record the retention run: %w", err)
	}
	if _, err := r.Store.EndUnfinishedRetentionRuns(ctx, run.ID, "interrupted: the process running it stopped before the end"); err != nil {
		r.log().Warn("close interrupted retention runs", "err", err)
	}
	return run, runCtx, release, nil
}

// finish applies the rules under the lease and records the outcome.
func (r *Retention) finish(ctx context.Context, run *store.RetentionRun, release func()) error {
	defer release()
	err := r.apply(ctx, run)
	if err != nil {
		if cause := context.Cause(ctx); cause != nil && ctx.Err() != nil {
			err = fmt.Errorf("%w (%v)", err, cause)
		}
		run.Error = err.Error()
		r.log().Error("retention run failed", "namespace", run.Namespace, "id", run.ID, "err", err)
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if ferr := r.Store.FinishRetentionRun(sctx, run); ferr != nil && err == nil {
		err = ferr
	}
	return err
}

// Run applies ns's rules now and waits for the end.
func (r *Retention) Run(ctx context.Context, ns string, dryRun bool, trigger string) (*store.RetentionRun, error) {
	run, runCtx, release, err := r.begin(ctx, ns, dryRun, trigger)
	if err != nil {
		return nil, err
	}
	err = r.finish(runCtx, run, release)
	return run, err
}

// Start begins a run in the background and returns its record as started.
func (r *Retention) Start(ctx context.Context, ns string, dryRun bool, trigger string) (*store.RetentionRun, error) {
	run, runCtx, release, err := r.begin(r.bg.base(), ns, dryRun, trigger)
	if err != nil {
		return nil, err
	}
	cp := *run
	r.bg.run(func() { _ = r.finish(runCtx, run, release) })
	return &cp, nil
}

// Schedule runs every namespace's rules about once per interval until ctx ends (every replica runs a
// schedule; the lease keeps their runs apart, and each looks at a namespace's last run first).
func (r *Retention) Schedule(ctx context.Context, interval time.Duration) (stop func()) {
	began := time.Now()
	return every(ctx, interval, func(ctx context.Context) {
		nss, err := r.Store.NamespacesWithRetentionRules(ctx)
		if err != nil {
			r.log().Warn("retention schedule: list namespaces", "err", err)
			return
		}
		for _, ns := range nss {
			last, err := r.lastRealRun(ctx, ns)
			if err != nil {
				r.log().Warn("retention schedule: read the last run", "namespace", ns, "err", err)
				continue
			}
			if last.IsZero() {
				last = began
			}
			if time.Since(last) < interval {
				continue
			}
			if _, err := r.Run(ctx, ns, false, "schedule"); err != nil && !errors.Is(err, ErrRetentionRunning) && ctx.Err() == nil {
				r.log().Warn("scheduled retention run", "namespace", ns, "err", err)
			}
		}
	})
}

// lastRealRun is when the newest run of ns that was not a dry run started (zero when none is among the newest
// 100): a preview does not push the next deletion back.
func (r *Retention) lastRealRun(ctx context.Context, ns string) (time.Time, error) {
	const pageSize, pages = 20, 5
	for p := 1; p <= pages; p++ {
		runs, _, err := r.Store.ListRetentionRuns(ctx, ns, store.Page{Page: p, PageSize: pageSize})
		if err != nil {
			return time.Time{}, err
		}
		for _, run := range runs {
			if !run.DryRun {
				return run.StartedAt, nil
			}
		}
		if len(runs) < pageSize {
			break
		}
	}
	return time.Time{}, nil
}

// retentionRule is a rule with its patterns compiled.
type retentionRule struct {
	store.RetentionRule
	repo, tag *regexp.Regexp
}

func compileRules(rules []store.RetentionRule) ([]retentionRule, error) {
	var out []retentionRule
	for _, ru := range rules {
		if !ru.Enabled {
			continue
		}
		repo, err := store.CompilePattern(ru.RepositoryPattern)
		if err != nil {
			return nil, fmt.Errorf("rule %s: repository_pattern: %w", ru.ID, err)
		}
		tag, err := store.CompilePattern(ru.TagPattern)
		if err != nil {
			return nil, fmt.Errorf("rule %s: tag_pattern: %w", ru.ID, err)
		}
		out = append(out, retentionRule{RetentionRule: ru, repo: repo, tag: tag})
	}
	return out, nil
}

// apply runs ns's enabled rules over each of its repositories, filling run.
func (r *Retention) apply(ctx context.Context, run *store.RetentionRun) error {
	all, err := r.Store.GetRetentionRules(ctx, run.Namespace)
	if err != nil {
		return err
	}
	rules, err := compileRules(all)
	if err != nil {
		return err
	}
	for p := 1; ; p++ {
		repos, _, err := r.Store.ListRepositories(ctx, "", run.Namespace, store.Page{Page: p, PageSize: 100})
		if err != nil {
			return err
		}
		for i := range repos {
			if err := r.applyRepository(ctx, run, &repos[i], rules); err != nil {
				return fmt.Errorf("%s: %w", repos[i].FullName, err)
			}
		}
		if len(repos) < 100 {
			return nil
		}
	}
}

func (r *Retention) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// applyRepository decides, newest push first, which of repo's tags the rules delete, then deletes them.
func (r *Retention) applyRepository(ctx context.Context, run *store.RetentionRun, repo *store.Repository, all []retentionRule) error {
	var rules []retentionRule
	for _, ru := range all {
		if ru.repo.MatchString(repo.Name) {
			rules = append(rules, ru)
		}
	}
	if len(rules) == 0 {
		_, total, err := r.Store.ListImageVersions(ctx, repo.FullName, store.Page{Page: 1, PageSize: 1})
		run.KeptCount += int(total)
		return err
	}
	now := r.now()
	matched := make([]int, len(rules)) // per rule: the matching tags seen so far, newest first
	seen := map[string]bool{}          // a push during the run shifts the pages: a tag is judged once
	var doomed []store.ImageVersion
	immutable := repo.ImmutableMatcher()
	for p := 1; ; p++ {
		vs, _, err := r.Store.ListImageVersions(ctx, repo.FullName, store.Page{Page: p, PageSize: retentionPage})
		if err != nil {
			return err
		}
		for _, v := range vs {
			if seen[v.Tag] {
				continue
			}
			seen[v.Tag] = true
			hit, keep := false, false
			for i, ru := range rules {
				if !ru.tag.MatchString(v.Tag) {
					continue
				}
				hit = true
				matched[i]++
				if matched[i] <= ru.KeepLast || (ru.KeepDays > 0 && now.Sub(v.PushedAt) < time.Duration(ru.KeepDays)*24*time.Hour) {
					keep = true
				}
			}
			if !hit || keep || immutable(v.Tag) {
				run.KeptCount++
				continue
			}
			doomed = append(doomed, store.ImageVersion{Tag: v.Tag, Digest: v.Digest, PushedAt: v.PushedAt})
		}
		if len(vs) < retentionPage {
			break
		}
	}
	for _, v := range doomed {
		if !run.DryRun {
			// A tag pushed again since it was judged is another version: kept.
			cur, err := r.Store.GetImageVersion(ctx, repo.FullName, v.Tag)
			if errors.Is(err, store.ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			if !cur.PushedAt.Equal(v.PushedAt) || cur.Digest != v.Digest {
				run.KeptCount++
				continue
			}
			err = DeleteTag(ctx, r.Registry, r.Store, repo.FullName, v.Tag)
			if registry.IsTagImmutable(err) { // made immutable since
				run.KeptCount++
				continue
			}
			if err != nil {
				return err
			}
		}
		run.DeletedCount++
		if len(run.Deleted) < store.MaxRetentionDeletedListed {
			run.Deleted = append(run.Deleted, store.RetentionDeletion{Repository: repo.Name, Tag: v.Tag, Digest: v.Digest})
		}
	}
	return nil
}

func (r *Retention) log() *slog.Logger {
	if r.Logger == nil {
		return slog.Default()
	}
	return r.Logger
}
