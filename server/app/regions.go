package app

import (
	"context"
	"fmt"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/berth-dev/berth/pipeline"
)

// Version is this binary's version, shown in the worker registry (cmd/berth sets it).
var Version = "dev"

// workerRegistry returns the registry of live build workers in this instance's Redis.
func (a *App) workerRegistry() *pipeline.Workers {
	if a.regions != nil {
		return a.regions
	}
	rc, ok := a.Redis.MakeRedisClient().(redis.UniversalClient)
	if !ok {
		return nil
	}
	a.stops = append(a.stops, func() { _ = rc.Close() })
	a.regions = &pipeline.Workers{Redis: rc, Logger: a.Logger.With("component", "workers")}
	return a.regions
}

// registerWorker records this process as a build worker of queues until the returned stop is called.
func (a *App) registerWorker(ctx context.Context, queues map[string]int) (stop func()) {
	ws := a.workerRegistry()
	if ws == nil {
		return func() {}
	}
	host, _ := os.Hostname()
	names := make([]string, 0, len(queues))
	for q := range queues {
		names = append(names, q)
	}
	slices.Sort(names)
	return ws.Register(ctx, pipeline.WorkerInfo{ID: fmt.Sprintf("%s/%d/%d", host, os.Getpid(), time.Now().UnixNano()),
		Region: a.Cfg.Region, Host: host, Version: Version, Queues: names})
}

// startQueueCheck marks QUEUED builds of regions that no live worker takes, and fails them after
// --build-queue-timeout, until the returned stop is called.
func (a *App) startQueueCheck(ctx context.Context) (stop func()) {
	ws := a.workerRegistry()
	if ws == nil {
		return func() {}
	}
	timeout := a.Cfg.BuildQueueTimeout
	every := min(pipeline.WorkerHeartbeat, max(timeout/4, 100*time.Millisecond))
	if timeout <= 0 {
		every = pipeline.WorkerHeartbeat
	}
	drop := func(queue, id string) { _ = a.pipe.inspector.DeleteTask(queue, id) }
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if err := a.pipe.builds.CheckQueued(ctx, ws, timeout, drop); err != nil && ctx.Err() == nil {
				a.Logger.Warn("check queued builds", "err", err)
			}
		}
	})
	return func() { cancel(); wg.Wait() }
}
