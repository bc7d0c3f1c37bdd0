package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hibiken/asynq"

	"github.com/berth-dev/berth/policies/access"
	"github.com/berth-dev/berth/store"
	"github.com/berth-dev/berth/store/embedded"
	"github.com/berth-dev/berth/store/secretbox"
)

// app holds the services both serve and worker stand on, and stops them in reverse order.
type app struct {
	cfg      *Config
	logger   *slog.Logger
	store    *store.Store
	redis    asynq.RedisConnOpt
	queue    *asynq.Client
	box      *secretbox.Box
	instance *store.Instance
	stops    []func()
}

func newLogger(c *Config) (*slog.Logger, error) {
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

// openApp starts or connects to the store and the queue.
func openApp(ctx context.Context, c *Config) (_ *app, err error) {
	logger, err := newLogger(c)
	if err != nil {
		return nil, err
	}
	slog.SetDefault(logger)
	a := &app{cfg: c, logger: logger}
	defer func() {
		if err != nil {
			a.close()
		}
	}()
	if err := os.MkdirAll(c.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create --data-dir: %w", err)
	}
	keyFile := c.MasterKeyFile
	if keyFile == "" {
		keyFile = filepath.Join(c.DataDir, "keys", "master.key")
	}
	if a.box, err = secretbox.LoadOrCreate(keyFile); err != nil {
		return nil, err
	}

	uri, serialize := c.MongoURI, false
	if uri == "" {
		m, err := embedded.StartMongo(ctx, filepath.Join(c.DataDir, "db"), logger)
		if err != nil {
			return nil, err
		}
		a.stops = append(a.stops, m.Stop)
		uri, serialize = m.URI, true
		logger.Info("embedded store started (FerretDB on SQLite)", "dir", filepath.Join(c.DataDir, "db"))
	}
	if a.store, err = store.Open(ctx, uri, store.Options{SerializeWrites: serialize}); err != nil {
		return nil, err
	}
	a.stops = append(a.stops, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = a.store.Close(ctx)
	})

	switch {
	case c.RedisCluster != "":
		a.redis = asynq.RedisClusterClientOpt{Addrs: strings.Split(c.RedisCluster, ",")}
	case strings.Contains(c.RedisAddr, "://"):
		if a.redis, err = asynq.ParseRedisURI(c.RedisAddr); err != nil {
			return nil, fmt.Errorf("--redis-addr: %w", err)
		}
	case c.RedisAddr != "":
		a.redis = asynq.RedisClientOpt{Addr: c.RedisAddr}
	default:
		r, err := embedded.StartRedis()
		if err != nil {
			return nil, err
		}
		a.stops = append(a.stops, r.Stop)
		a.redis = asynq.RedisClientOpt{Addr: r.Addr}
		logger.Info("embedded queue started (miniredis, in memory)")
	}
	a.queue = asynq.NewClient(a.redis)
	a.stops = append(a.stops, func() { _ = a.queue.Close() })
	if err := a.queue.Ping(); err != nil {
		return nil, fmt.Errorf("reach Redis (check --redis-addr): %w", err)
	}

	inst, created, err := a.store.EnsureInstance(ctx)
	if err != nil {
		return nil, fmt.Errorf("load the main account: %w", err)
	}
	a.instance = inst
	if created {
		logger.Info("main account created", "account_id", inst.AccountID)
	}
	return a, nil
}

// ensureAdmin creates the administrator on first start.
func (a *app) ensureAdmin(ctx context.Context) error {
	if _, err := a.store.GetUser(ctx, "admin"); err == nil {
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
	err = a.store.CreateUser(ctx, &store.User{Name: "admin", AccountID: a.instance.AccountID, DisplayName: "Administrator",
		PasswordHash: hash, Enabled: true, Admin: true})
	if errors.Is(err, store.ErrAlreadyExists) {
		return nil
	}
	if err != nil {
		return err
	}
	if fromEnv && pw != "" {
		a.logger.Info("administrator created", "user", "admin", "password", "from BERTH_ADMIN_PASSWORD")
	} else {
		// Printed once, on purpose: there is no other way to learn it.
		fmt.Fprintf(os.Stderr, "\n  Berth administrator created: user admin, password %s\n  (shown only now; change it with `berth admin reset-password`)\n\n", pw)
	}
	return nil
}

func (a *app) close() {
	for i := len(a.stops) - 1; i >= 0; i-- {
		a.stops[i]()
	}
	a.stops = nil
}
