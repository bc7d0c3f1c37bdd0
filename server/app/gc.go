package app

import (
	"context"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/berth-dev/berth/pipeline"
	"github.com/berth-dev/berth/registry"
)

// newGarbageCollector makes the registry's garbage collector from the --gc-* flags, with its own Redis client
// for the lease that keeps replicas from collecting at the same time.
func (a *App) newGarbageCollector() (*pipeline.GarbageCollector, error) {
	c := a.Cfg
	if c.GCInterval < 0 || c.GCUntaggedGrace < 0 || c.GCBlobGrace < 0 {
		return nil, fmt.Errorf("--gc-interval, --gc-untagged-grace and --gc-blob-grace must be 0 or more (got %s, %s, %s)",
			c.GCInterval, c.GCUntaggedGrace, c.GCBlobGrace)
	}
	rc, ok := a.Redis.MakeRedisClient().(redis.UniversalClient)
	if !ok {
		return nil, errors.New("garbage collection needs a Redis client for its lease")
	}
	g := &pipeline.GarbageCollector{Registry: a.Registry, Store: a.Store, Redis: rc, Logger: a.Logger.With("component", "gc"),
		Defaults: registry.GCOptions{UntaggedGrace: c.GCUntaggedGrace, BlobGrace: c.GCBlobGrace}}
	a.stops = append(a.stops, func() { g.Close(); _ = rc.Close() })
	return g, nil
}

// startGCSchedule runs garbage collection every --gc-interval (0: only on demand) until the returned stop.
func (a *App) startGCSchedule(ctx context.Context) (stop func()) {
	return a.GC.Schedule(ctx, a.Cfg.GCInterval)
}

// newRetention makes the runner of namespaces' tag retention rules, with its own Redis client for the lease
// that keeps replicas from running at the same time.
func (a *App) newRetention() (*pipeline.Retention, error) {
	if a.Cfg.RetentionInterval < 0 {
		return nil, fmt.Errorf("--retention-interval must be 0 or more (got %s)", a.Cfg.RetentionInterval)
	}
	rc, ok := a.Redis.MakeRedisClient().(redis.UniversalClient)
	if !ok {
		return nil, errors.New("retention needs a Redis client for its lease")
	}
	r := &pipeline.Retention{Registry: a.Registry, Store: a.Store, Redis: rc, Logger: a.Logger.With("component", "retention")}
	a.stops = append(a.stops, func() { r.Close(); _ = rc.Close() })
	return r, nil
}
