package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/berth-dev/berth/pipeline"
	"github.com/berth-dev/berth/policies/access"
	"github.com/berth-dev/berth/registry"
	"github.com/berth-dev/berth/server"
	"github.com/berth-dev/berth/workers"
)

func serve(ctx context.Context, args []string) error {
	cfg, err := parseConfig("serve", args)
	if err != nil {
		return err
	}
	if cfg.PublicURL == "" {
		cfg.PublicURL = "http://" + cfg.Addr
	}
	cfg.PublicURL = strings.TrimRight(cfg.PublicURL, "/")
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on --addr %s: %w", cfg.Addr, err)
	}
	defer ln.Close()

	a, err := openApp(ctx, cfg)
	if err != nil {
		return err
	}
	defer a.close()
	if err := a.ensureAdmin(ctx); err != nil {
		return err
	}
	if err := a.store.RecountNamespaces(ctx); err != nil {
		return err
	}

	metrics := prometheus.NewRegistry()
	metrics.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	ids := access.New(a.store, a.instance.AccountID, a.box.Derive("temporary-tokens"), a.logger)
	hooks := &pipeline.RegistryHooks{Store: a.store, Queue: a.queue, Logger: a.logger}
	reg, err := registry.New(registry.Config{
		RootDir:        filepath.Join(cfg.DataDir, "registry"),
		PublicURL:      cfg.PublicURL,
		SigningKeyFile: filepath.Join(cfg.DataDir, "keys", "registry-token.pem"),
		Logger:         a.logger.With("component", "registry"),
		Metrics:        metrics,
	}, &access.RegistryAuthorizer{Service: ids, Region: cfg.Region}, hooks)
	if err != nil {
		return err
	}
	defer reg.Close()
	hooks.SetContent(reg)

	api := server.New(server.Deps{
		Store: a.store, Auth: ids, Logger: a.logger, Region: cfg.Region, AccountID: a.instance.AccountID,
		NamespaceLimit: cfg.NamespaceLimit, PublicURL: cfg.PublicURL, Registry: reg, Metrics: metrics,
		Ready: []server.ReadinessCheck{
			{Name: "store", Check: a.store.Ping},
			{Name: "queue", Check: func(context.Context) error { return a.queue.Ping() }},
		},
	})
	mux := http.NewServeMux()
	mux.Handle("/v2/", reg)
	mux.Handle("/token", reg)
	mux.Handle("/", api)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}

	qs := asynq.NewServer(a.redis, asynq.Config{
		Concurrency: 4,
		Queues:      map[string]int{pipeline.QueueEvents: 5, pipeline.QueueTriggers: 3, pipeline.QueueScan: 2},
		Logger:      asynqLogger{a.logger.With("component", "queue")},
		LogLevel:    asynq.WarnLevel,
	})
	if err := qs.Start(workers.Handlers(workers.Deps{Store: a.store, Queue: a.queue, Logger: a.logger, Region: cfg.Region})); err != nil {
		return fmt.Errorf("start workers: %w", err)
	}
	defer qs.Shutdown()

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	a.logger.Info("berth is serving", "addr", ln.Addr().String(), "public_url", cfg.PublicURL, "region", cfg.Region,
		"account_id", a.instance.AccountID)
	select {
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			return err
		}
	case <-ctx.Done():
		a.logger.Info("shutting down: finishing in-flight requests")
		sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			a.logger.Warn("shutdown", "err", err)
		}
	}
	return nil
}

// asynqLogger sends Asynq's log lines to slog.
type asynqLogger struct {
	l interface{ Info(string, ...any) }
}

func (q asynqLogger) Debug(args ...any) {}
func (q asynqLogger) Info(args ...any)  { q.l.Info(fmt.Sprint(args...)) }
func (q asynqLogger) Warn(args ...any)  { q.l.Info(fmt.Sprint(args...)) }
func (q asynqLogger) Error(args ...any) { q.l.Info(fmt.Sprint(args...)) }
func (q asynqLogger) Fatal(args ...any) { q.l.Info(fmt.Sprint(args...)) }
