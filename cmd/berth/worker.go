package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/hibiken/asynq"

	"github.com/berth-dev/berth/workers"
)

// worker runs pipeline workers only, for the chosen queues (regions).
func worker(ctx context.Context, args []string) error {
	cfg, err := parseConfig("worker", args)
	if err != nil {
		return err
	}
	if cfg.Queues == "" {
		cfg.Queues = "default"
	}
	a, err := openApp(ctx, cfg)
	if err != nil {
		return err
	}
	defer a.close()
	queues := map[string]int{}
	for _, q := range strings.Split(cfg.Queues, ",") {
		if q = strings.TrimSpace(q); q != "" {
			queues[q] = 1
		}
	}
	qs := asynq.NewServer(a.redis, asynq.Config{Concurrency: 2, Queues: queues,
		Logger: asynqLogger{a.logger.With("component", "queue")}, LogLevel: asynq.WarnLevel})
	if err := qs.Start(workers.Handlers(workers.Deps{Store: a.store, Queue: a.queue, Logger: a.logger, Region: cfg.Region})); err != nil {
		return fmt.Errorf("start workers: %w", err)
	}
	a.logger.Info("berth worker running", "queues", cfg.Queues, "region", cfg.Region)
	<-ctx.Done()
	qs.Shutdown()
	return nil
}
