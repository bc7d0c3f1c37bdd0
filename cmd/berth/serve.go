package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"

	"github.com/berth-dev/berth/server/app"
)

func serve(ctx context.Context, args []string) error {
	cfg, err := app.ParseConfig("serve", args)
	if err != nil {
		return err
	}
	if err := app.CheckQueues("serve", cfg.Queues); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on --addr %s: %w", cfg.Addr, err)
	}
	defer ln.Close()
	cfg.Addr = ln.Addr().String()
	if cfg.Logger, err = app.NewLogger(cfg); err != nil {
		return err
	}
	slog.SetDefault(cfg.Logger)
	a, err := app.Open(ctx, cfg)
	if err != nil {
		return err
	}
	defer a.Close()
	return a.Serve(ctx, ln)
}

func init() { app.Version = version }

// worker runs pipeline workers only, for the chosen queues (regions).
func worker(ctx context.Context, args []string) error {
	cfg, err := app.ParseConfig("worker", args)
	if err != nil {
		return err
	}
	if cfg.Queues == "" {
		cfg.Queues = "default"
	}
	if err := app.CheckQueues("worker", cfg.Queues); err != nil {
		return err
	}
	if cfg.Logger, err = app.NewLogger(cfg); err != nil {
		return err
	}
	a, err := app.Open(ctx, cfg)
	if err != nil {
		return err
	}
	defer a.Close()
	queues := map[string]int{}
	for _, q := range strings.Split(cfg.Queues, ",") {
		if q = strings.TrimSpace(q); q != "" {
			queues[q] = 1
		}
	}
	a.Logger.Info("berth worker running", "queues", cfg.Queues, "region", cfg.Region)
	return a.RunWorkers(ctx, queues)
}
