package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/berth-dev/berth/registry"
	"github.com/berth-dev/berth/store"
	"github.com/berth-dev/berth/store/lease"
)

// ErrGCRunning is returned when a garbage collection is already running, in this process or another replica.
var ErrGCRunning = errors.New("a garbage collection is already running")

// GCLeaseKey is the Redis key whose holder is the one replica collecting garbage.
const GCLeaseKey = "berth:gc:lease"

// DefaultGCLeaseTTL bounds how long a lease outlives a crashed holder; the holder renews it every third of that.
const DefaultGCLeaseTTL = 30 * time.Second

// Collector is what the garbage collector runs: the registry.
type Collector interface {
	GarbageCollect(ctx context.Context, opts registry.GCOptions) (registry.GCStats, error)
}

// GarbageCollector runs the registry's garbage collection, one at a time across every replica sharing Redis
// (a lease: SET NX PX, renewed while the run lasts, released by its holder only), and records each run in the
// store.
type GarbageCollector struct {
	Registry Collector
	Store    store.Store
	Redis    redis.UniversalClient
	Defaults registry.GCOptions // graces of scheduled runs, and of API and CLI runs that set none
	Logger   *slog.Logger
	LeaseTTL time.Duration // default DefaultGCLeaseTTL

	bg background
}

// DefaultOptions are the graces of runs that set none.
func (g *GarbageCollector) DefaultOptions() registry.GCOptions { return g.Defaults }

// Close stops runs in the background and waits for them (their records say they were cancelled).
func (g *GarbageCollector) Close() { g.bg.close() }

// errGCLeaseLost cancels a run whose lease a renewal found lost.
var errGCLeaseLost = errors.New("the garbage collection lease was lost")

// lease takes the GC lease for id, or answers ErrGCRunning. While held it is renewed; if a renewal finds the
// lease lost (Redis flushed, or a pause longer than its TTL let another replica take it), ctx's run is
// cancelled so two collections never overlap for long. release gives it back.
func (g *GarbageCollector) lease(ctx context.Context, id string) (runCtx context.Context, release func(), err error) {
	ttl := g.LeaseTTL
	if ttl <= 0 {
		ttl = DefaultGCLeaseTTL
	}
	runCtx, release, err = lease.Redis{Client: g.Redis}.Hold(ctx, GCLeaseKey, id, ttl, errGCLeaseLost)
	if errors.Is(err, lease.ErrHeld) {
		return nil, nil, ErrGCRunning
	}
	if err != nil {
		return nil, nil, fmt.Errorf("take the garbage collection lease: %w", err)
	}
	return runCtx, release, nil
}

// begin takes the lease and records the run as started.
func (g *GarbageCollector) begin(ctx context.Context, opts registry.GCOptions, trigger string) (*store.GCRun, context.Context, func(), error) {
	run := &store.GCRun{StartedAt: time.Now(), DryRun: opts.DryRun, Trigger: trigger,
		UntaggedGrace: opts.UntaggedGrace.String(), BlobGrace: opts.BlobGrace.String()}
	run.ID = store.NewGCRunID(run.StartedAt)
	runCtx, release, err := g.lease(ctx, run.ID)
	if err != nil {
		return nil, nil, nil, err
	}
	if err := g.Store.CreateGCRun(ctx, run); err != nil {
		release()
		return nil, nil, nil, fmt.Errorf("record the garbage collection: %w", err)
	}
	// Holding the lease, no other run is going: one still unfinished died with its process.
	if n, err := g.Store.EndUnfinishedGCRuns(ctx, run.ID, "interrupted: the process running it stopped before the end"); err != nil {
		g.log().Warn("close interrupted garbage collection runs", "err", err)
	} else if n > 0 {
		g.log().Warn("garbage collection runs were interrupted", "count", n)
	}
	return run, runCtx, release, nil
}

// finish runs the collection under the lease and records its outcome.
func (g *GarbageCollector) finish(ctx context.Context, run *store.GCRun, opts registry.GCOptions, release func()) error {
	defer release()
	st, err := g.Registry.GarbageCollect(ctx, opts)
	run.ManifestsDeleted, run.BlobsDeleted, run.BytesFreed = st.ManifestsDeleted, st.BlobsDeleted, st.BytesFreed
	if err != nil {
		if cause := context.Cause(ctx); cause != nil && ctx.Err() != nil {
			err = fmt.Errorf("%w (%v)", err, cause)
		}
		run.Error = err.Error()
		g.log().Error("garbage collection failed", "id", run.ID, "err", err)
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if ferr := g.Store.FinishGCRun(sctx, run); ferr != nil {
		g.log().Error("record the end of a garbage collection", "id", run.ID, "err", ferr)
		if err == nil {
			err = ferr
		}
	}
	return err
}

// Run collects garbage now and waits for the end (berth admin gc). The returned record holds the outcome.
func (g *GarbageCollector) Run(ctx context.Context, opts registry.GCOptions, trigger string) (*store.GCRun, error) {
	run, runCtx, release, err := g.begin(ctx, opts, trigger)
	if err != nil {
		return nil, err
	}
	err = g.finish(runCtx, run, opts, release)
	return run, err
}

// Start begins a collection in the background and returns its record as started (POST /api/v1/system/gc).
func (g *GarbageCollector) Start(ctx context.Context, opts registry.GCOptions, trigger string) (*store.GCRun, error) {
	run, runCtx, release, err := g.begin(g.bg.base(), opts, trigger)
	if err != nil {
		return nil, err
	}
	cp := *run
	g.bg.run(func() { _ = g.finish(runCtx, run, opts, release) })
	return &cp, nil
}

// Schedule runs a collection with the default graces every interval until ctx ends. Every replica runs a
// schedule; each looks at the last recorded run first, so together they collect about once per interval, and
// the lease keeps their runs apart. It returns a function that stops the schedule and waits for it.
func (g *GarbageCollector) Schedule(ctx context.Context, interval time.Duration) (stop func()) {
	began := time.Now()
	return every(ctx, interval, func(ctx context.Context) {
		last := began
		if run, err := g.Store.LastGCRun(ctx); err == nil {
			last = run.StartedAt
		} else if !errors.Is(err, store.ErrNotFound) {
			g.log().Warn("garbage collection schedule: read the last run", "err", err)
			return
		}
		if time.Since(last) < interval {
			return
		}
		_, err := g.Run(ctx, g.Defaults, "schedule")
		if err != nil && !errors.Is(err, ErrGCRunning) && ctx.Err() == nil {
			g.log().Warn("scheduled garbage collection", "err", err)
		}
	})
}

func (g *GarbageCollector) log() *slog.Logger {
	if g.Logger == nil {
		return slog.Default()
	}
	return g.Logger
}
