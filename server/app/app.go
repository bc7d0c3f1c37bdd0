// Package app is Berth's composition root: it opens or starts the store and the queue, builds the registry,
// the API and the workers from a Config, and serves them on one listener. cmd/berth parses flags into a
// Config; tests start whole instances with it.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/berth-dev/berth/registry"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/berth-dev/berth/audit"
	"github.com/berth-dev/berth/pipeline"
	"github.com/berth-dev/berth/policies/access"
	"github.com/berth-dev/berth/store"
	"github.com/berth-dev/berth/store/embedded"
	"github.com/berth-dev/berth/store/lease"
	"github.com/berth-dev/berth/store/secretbox"
	"github.com/berth-dev/berth/workers"
)

// app holds the services both serve and worker stand on, and stops them in reverse order.
// App is one running Berth.
type App struct {
	Cfg    *Config
	Logger *slog.Logger
	Store  store.Store
	Redis  asynq.RedisConnOpt
	Queue  *asynq.Client
	// Enqueue queues tasks on Queue and wakes the workers waiting for them (pipeline.WakingQueue).
	Enqueue  pipeline.Enqueuer
	Box      *secretbox.Box
	Instance *store.Instance
	Access   *access.Service
	Registry *registry.Registry
	// SigningKey is the instance's image signing key (SPEC §15): builds sign with it; its public half is served
	// at GET /api/v1/system/signing-key and verifies signatures for the security policy.
	SigningKey *pipeline.SigningKey
	// GC runs the registry's garbage collection: on schedule in Serve, on demand from the API and berth admin gc.
	GC *pipeline.GarbageCollector
	// Retention runs namespaces' tag retention rules.
	Retention *pipeline.Retention
	// Audit is the audit log (SPEC §14): the API, the console and the registry record into it.
	Audit   *audit.Log
	Handler http.Handler // the API and the registry on one mux
	Metrics *prometheus.Registry
	// MongoURI is --mongo-uri; empty on the embedded store, whose file is StorePath (a `berth worker` on this
	// machine given the same --data-dir shares it).
	MongoURI  string
	StorePath string

	workers  *wokenServer
	triggers *workers.Triggers
	pipe     *buildPipeline
	scan     *scanning
	regions  *pipeline.Workers
	stops    []func()
}

func NewLogger(c *Config) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(c.LogLevel)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch c.LogFormat {
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	default:
		return nil, fmt.Errorf("--log-format must be text or json, got %q", c.LogFormat)
	}
}

// Open starts or connects to the store and the queue.
func Open(ctx context.Context, c *Config) (_ *App, err error) {
	logger := c.Logger
	if logger == nil {
		if logger, err = NewLogger(c); err != nil {
			return nil, err
		}
	}
	a := &App{Cfg: c, Logger: logger}
	defer func() {
		if err != nil {
			a.Close()
		}
	}()
	if err := os.MkdirAll(c.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create --data-dir: %w", err)
	}
	var keySource string
	if a.Box, keySource, err = c.openMasterKey(); err != nil {
		return nil, err
	}

	a.MongoURI = c.MongoURI
	if c.MongoURI == "" {
		db, err := openEmbeddedStore(ctx, c.DataDir, c.MongoDatabase, logger)
		if err != nil {
			return nil, err
		}
		a.Store, a.StorePath = db, db.Path()
		a.stops = append(a.stops, func() { _ = db.Close(context.Background()) })
		logger.Info("embedded store opened (SQLite)", "file", db.Path())
	}

	switch {
	case c.RedisCluster != "":
		a.Redis = asynq.RedisClusterClientOpt{Addrs: strings.Split(c.RedisCluster, ",")}
	case strings.Contains(c.RedisAddr, "://"):
		if a.Redis, err = asynq.ParseRedisURI(c.RedisAddr); err != nil {
			return nil, fmt.Errorf("--redis-addr: %w", err)
		}
	case c.RedisAddr != "":
		a.Redis = asynq.RedisClientOpt{Addr: c.RedisAddr}
	default:
		// A redis-server child keeps the queue across restarts; without one installed, miniredis keeps it in
		// memory (builds still queued are queued again at start; trigger retries and scans in flight are lost).
		dir := filepath.Join(c.DataDir, "queue")
		r, err := embedded.StartRedisServer(ctx, dir)
		what := "redis-server child, kept in " + dir
		if errors.Is(err, embedded.ErrNoRedisServer) {
			r, err = embedded.StartRedis()
			what = "miniredis, in memory: install redis-server to keep it across restarts"
		}
		if err != nil {
			return nil, err
		}
		a.stops = append(a.stops, r.Stop)
		a.Redis = asynq.RedisClientOpt{Network: r.Network, Addr: r.Addr, Password: r.Password}
		logger.Info("embedded queue started ("+what+")", "addr", r.Addr)
	}
	a.Queue = asynq.NewClient(a.Redis)
	a.stops = append(a.stops, func() { _ = a.Queue.Close() })
	rc, ok := a.Redis.MakeRedisClient().(redis.UniversalClient)
	if !ok {
		return nil, fmt.Errorf("the queue's Redis client is a %T", a.Redis.MakeRedisClient())
	}
	a.stops = append(a.stops, func() { _ = rc.Close() })
	a.Enqueue = &pipeline.WakingQueue{Enqueuer: a.Queue, Redis: rc}
	if err := a.Queue.Ping(); err != nil {
		return nil, fmt.Errorf("reach Redis (check --redis-addr): %w", err)
	}

	if a.Store == nil {
		// The MongoDB store's guarded writes hold leases in the queue's Redis, which every replica shares.
		m, err := store.Open(ctx, c.MongoURI, store.Options{Database: c.MongoDatabase, Locker: lease.Redis{Client: rc}})
		if err != nil {
			return nil, err
		}
		a.Store = m
		a.stops = append(a.stops, func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = m.Close(ctx)
		})
	}
	if err := a.checkMasterKey(ctx, keySource); err != nil {
		return nil, err
	}

	inst, created, err := a.Store.EnsureInstance(ctx)
	if err != nil {
		return nil, fmt.Errorf("load the main account: %w", err)
	}
	a.Instance = inst
	if created {
		logger.Info("main account created", "account_id", inst.AccountID)
	}
	if err := a.EnsureAdmin(ctx); err != nil {
		return nil, err
	}
	if err := a.build(); err != nil {
		return nil, err
	}
	return a, nil
}

// EnsureAdmin creates the administrator on first start.
func (a *App) EnsureAdmin(ctx context.Context) error {
	if _, err := a.Store.GetUser(ctx, "admin"); err == nil {
		return nil
	} else if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	pw, fromEnv := os.LookupEnv("BERTH_ADMIN_PASSWORD")
	if !fromEnv || pw == "" {
		pw = access.RandomPassword()
	}
	hash, err := access.HashPassword(pw)
	if err != nil {
		return fmt.Errorf("BERTH_ADMIN_PASSWORD: %w", err)
	}
	err = a.Store.CreateUser(ctx, &store.User{Name: "admin", AccountID: a.Instance.AccountID, DisplayName: "Administrator",
		PasswordHash: hash, Enabled: true, Admin: true})
	if errors.Is(err, store.ErrAlreadyExists) {
		return nil
	}
	if err != nil {
		return err
	}
	if fromEnv && pw != "" {
		a.Logger.Info("administrator created", "user", "admin", "password", "from BERTH_ADMIN_PASSWORD")
	} else {
		// Printed once, on purpose: there is no other way to learn it.
		fmt.Fprintf(os.Stderr, "\n  Berth administrator created: user admin, password %s\n  (shown only now; change it with `berth admin reset-password`)\n\n", pw)
	}
	return nil
}

// Close stops everything Open started, in reverse order.
func (a *App) Close() {
	for i := len(a.stops) - 1; i >= 0; i-- {
		a.stops[i]()
	}
	a.stops = nil
}
