package app

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/redis/go-redis/v9"

	"github.com/berth-dev/berth/pipeline"
	"github.com/berth-dev/berth/policies/access"
	"github.com/berth-dev/berth/registry"
	"github.com/berth-dev/berth/server"
	"github.com/berth-dev/berth/server/console"
	"github.com/berth-dev/berth/server/forwarded"
	"github.com/berth-dev/berth/store/lease"
	"github.com/berth-dev/berth/workers"
)

// build makes the registry, the API and the workers over the opened store and queue.
func (a *App) build() error {
	c := a.Cfg
	urls, err := forwarded.New(c.TrustedProxy, c.publicURL())
	if err != nil {
		return err
	}
	a.Metrics = prometheus.NewRegistry()
	a.Metrics.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	if a.Audit, err = a.newAuditLog(); err != nil {
		return err
	}
	a.Access = access.New(a.Store, a.Instance.AccountID, a.Box.Derive("temporary-tokens"), a.Logger)
	triggers, err := a.buildTriggers()
	if err != nil {
		return err
	}
	a.triggers = triggers
	if a.pipe, err = a.newBuildPipeline(); err != nil {
		return err
	}
	if a.scan, err = a.newScanning(); err != nil {
		return err
	}
	authz := a.internalAuthorizer(&access.RegistryAuthorizer{Service: a.Access, Region: c.Region})
	hooks := &pipeline.RegistryHooks{Store: a.Store, Queue: a.Enqueue, Logger: a.Logger, Blocked: a.scan.gate.Check,
		AccessoriesChanged: a.scan.gate.Changed, MayPush: func(ctx context.Context, subj registry.Subject, repo string) bool {
			granted, err := authz.Grant(ctx, subj, []registry.Access{{Type: "repository", Name: repo, Actions: []string{registry.ActionPush}}})
			return err == nil && len(granted) == 1 && slices.Contains(granted[0].Actions, registry.ActionPush)
		}}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	signingKey, err := a.registrySigningKey(ctx)
	if err == nil {
		a.SigningKey, err = a.imageSigningKey(ctx)
	}
	cancel()
	if err != nil {
		return err
	}
	if !c.NoBuildSigning {
		a.pipe.runner.Signer = &workers.Signer{Key: a.SigningKey}
	}
	drv, err := c.storageDriver()
	if err != nil {
		return err
	}
	tagLocks, ok := a.Redis.MakeRedisClient().(redis.UniversalClient)
	if !ok {
		return errors.New("the registry needs a Redis client for the locks of immutable tags")
	}
	a.stops = append(a.stops, func() { _ = tagLocks.Close() })
	reg, err := registry.New(registry.Config{
		TagLocker:    lease.Redis{Client: tagLocks},
		Driver:       drv,
		BlobRedirect: c.S3.Redirect,
		CacheTTL:     sharedCacheTTL,
		RootDir:      filepath.Join(c.DataDir, "registry"),
		PublicURL:    cmp.Or(c.publicURL(), "http://"+c.Addr), // names the tokens' audience
		URLFor:       forwarded.PublicURL,
		SigningKey:   signingKey,
		Logger:       a.Logger.With("component", "registry"),
		Metrics:      a.Metrics,
		Audit:        registryAudit{log: a.Audit, region: c.Region, accountID: a.Instance.AccountID},
		AuditPulls:   c.AuditPulls,
		RequestID:    server.RequestID,
	}, authz, hooks)
	if err != nil {
		return err
	}
	a.Registry = reg
	a.stops = append(a.stops, func() { _ = reg.Close() })
	hooks.SetContent(reg)
	a.scan.gate.SetContent(reg)
	if a.GC, err = a.newGarbageCollector(); err != nil {
		return err
	}
	if a.Retention, err = a.newRetention(); err != nil {
		return err
	}
	a.scan.runner.Content = reg

	api := server.New(server.Deps{
		Store: a.Store, Auth: a.Access, Logger: a.Logger, Region: c.Region, AccountID: a.Instance.AccountID,
		NamespaceLimit: c.NamespaceLimit, Registry: reg, Metrics: a.Metrics,
		Triggers: a.triggers, Builds: a.pipe.builds, Scans: a.scan.scans, SourceGuard: a.pipe.guard,
		Workers: workerService(a.workerRegistry()), GC: a.GC, Retention: a.Retention,
		Scanner: a.scan, Audit: a.Audit, SigningKey: a.SigningKey,
		Ready: []server.ReadinessCheck{
			{Name: "store", Check: a.Store.Ping},
			{Name: "queue", Check: func(context.Context) error { return a.Queue.Ping() }},
			{Name: "builds", Check: (&buildsReady{p: a.pipe}).check, Optional: true},
			{Name: "scans", Check: a.scan.scansReady, Optional: true},
		},
	})
	cons, err := console.New(console.Deps{API: api, Auth: a.Access, Store: a.Store,
		Authz: server.Authorization{Region: c.Region, AccountID: a.Instance.AccountID}, Audit: a.Audit,
		Logger: a.Logger.With("component", "console")})
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("/v2/", reg)
	mux.Handle("/token", reg)
	// The API's own paths; every other path is the web console's.
	for _, p := range []string{"/api/", "/hooks/", "/healthz", "/readyz", "/metrics"} {
		mux.Handle(p, api)
	}
	mux.Handle("/", cons)
	a.Handler = urls.Handler(mux)

	// A short wait for wake-ups keeps retries, which are queued without one, prompt.
	a.workers = newWokenServer(a.Redis, a.tuneQueue(asynq.Config{
		Concurrency: 4,
		Queues:      map[string]int{pipeline.QueueEvents: 5, pipeline.QueueTriggers: 3, pipeline.QueueScan: 2},
		Logger:      asynqLogger{a.Logger.With("component", "queue")},
		LogLevel:    asynq.WarnLevel,
	}), 250*time.Millisecond)
	return nil
}

func workerService(ws *pipeline.Workers) server.WorkerService {
	if ws == nil {
		return nil
	}
	return ws
}

// Serve runs the workers and the HTTP server on ln until ctx ends, then shuts down gracefully: in-flight
// requests finish (up to 30 s), workers finish their tasks.
func (a *App) Serve(ctx context.Context, ln net.Listener) error {
	if err := a.workers.Start(workers.Handlers(a.workerDeps())); err != nil {
		return fmt.Errorf("start workers: %w", err)
	}
	defer a.workers.Shutdown()
	defer a.startTriggerCleanup(ctx)()
	defer a.startScanDBWatch(ctx)()
	defer a.startGCSchedule(ctx)()
	defer a.Retention.Schedule(ctx, a.Cfg.RetentionInterval)()
	defer a.startAuditSweep(ctx)()
	stopBuilds, err := a.startBuilds(ctx)
	if err != nil {
		return err
	}
	defer stopBuilds()
	a.logPrerequisites(ctx)
	srv := &http.Server{Handler: a.Handler, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	public := a.Cfg.publicURL()
	if public == "" {
		public = "the URL each client uses (--addr is a wildcard and --public-url is not set)"
	}
	a.Logger.Info("berth is serving", "addr", ln.Addr().String(), "public_url", public, "region", a.Cfg.Region,
		"account_id", a.Instance.AccountID)
	select {
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			return err
		}
	case <-ctx.Done():
		a.Logger.Info("shutting down: finishing in-flight requests")
		sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			return fmt.Errorf("shutdown: in-flight requests did not finish within 30s: %w", err)
		}
	}
	return nil
}

func (a *App) workerDeps() workers.Deps {
	return workers.Deps{Store: a.Store, Queue: a.Enqueue, Logger: a.Logger, Region: a.Cfg.Region, Triggers: a.triggers,
		Builds: a.pipe.runner, Scans: a.scan.runner}
}

// RunWorkers runs only the workers, on the given queues, until ctx ends (berth worker).
func (a *App) RunWorkers(ctx context.Context, queues map[string]int) error {
	qs := a.buildServer(queues)
	if err := qs.Start(workers.Handlers(a.workerDeps())); err != nil {
		return fmt.Errorf("start workers: %w", err)
	}
	unregister := a.registerWorker(ctx, queues)
	<-ctx.Done()
	qs.Shutdown()
	unregister()
	return nil
}

// asynqLogger sends Asynq's log lines to slog.
type asynqLogger struct {
	l interface{ Warn(string, ...any) }
}

func (q asynqLogger) Debug(args ...any) {}
func (q asynqLogger) Info(args ...any)  {}
func (q asynqLogger) Warn(args ...any)  { q.l.Warn(fmt.Sprint(args...)) }
func (q asynqLogger) Error(args ...any) { q.l.Warn(fmt.Sprint(args...)) }
func (q asynqLogger) Fatal(args ...any) { q.l.Warn(fmt.Sprint(args...)) }
