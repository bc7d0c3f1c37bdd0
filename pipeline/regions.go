package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/berth-dev/berth/store"
)

// Worker registration: every process that runs build workers records itself in one Redis hash and renews
// the record every WorkerHeartbeat; a record older than WorkerTTL is a worker that is gone.
const (
	workersKey      = "berth:workers"
	WorkerHeartbeat = 5 * time.Second
	WorkerTTL       = 3 * WorkerHeartbeat
)

// WorkerInfo is one registered build worker (GET /api/v1/system/workers).
type WorkerInfo struct {
	ID       string    `json:"id"`
	Region   string    `json:"region"`
	Host     string    `json:"host"`
	Version  string    `json:"version"`
	Queues   []string  `json:"queues"`
	LastSeen time.Time `json:"last_seen"`
}

// Workers registers build workers in Redis and lists the live ones.
type Workers struct {
	Redis  redis.UniversalClient
	Logger *slog.Logger
}

// Register records w now and every WorkerHeartbeat until the returned stop is called, which removes it.
func (ws *Workers) Register(ctx context.Context, w WorkerInfo) (stop func()) {
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	beat := func() {
		w.LastSeen = time.Now().UTC()
		b, _ := json.Marshal(w)
		if err := ws.Redis.HSet(ctx, workersKey, w.ID, b).Err(); err != nil && ctx.Err() == nil {
			ws.log().Warn("worker heartbeat", "err", err)
		}
	}
	beat()
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(WorkerHeartbeat)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				beat()
			}
		}
	})
	return func() {
		cancel()
		wg.Wait()
		dctx, dcancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer dcancel()
		_ = ws.Redis.HDel(dctx, workersKey, w.ID).Err()
	}
}

// Live returns the workers seen within WorkerTTL, by region then host, and forgets the others.
func (ws *Workers) Live(ctx context.Context) ([]WorkerInfo, error) {
	all, err := ws.Redis.HGetAll(ctx, workersKey).Result()
	if err != nil {
		return nil, err
	}
	cutoff := time.Now().Add(-WorkerTTL)
	out := []WorkerInfo{}
	for id, raw := range all {
		var w WorkerInfo
		if json.Unmarshal([]byte(raw), &w) != nil || w.LastSeen.Before(cutoff) {
			_ = ws.Redis.HDel(ctx, workersKey, id).Err()
			continue
		}
		out = append(out, w)
	}
	slices.SortFunc(out, func(a, b WorkerInfo) int {
		if a.Region != b.Region {
			return compare(a.Region, b.Region)
		}
		if a.Host != b.Host {
			return compare(a.Host, b.Host)
		}
		return compare(a.ID, b.ID)
	})
	return out, nil
}

func compare(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func (ws *Workers) log() *slog.Logger {
	if ws.Logger == nil {
		return slog.Default()
	}
	return ws.Logger
}

// NoWorkerMessage is a QUEUED build's error while no live worker takes its region's queue.
func NoWorkerMessage(region string) string {
	return fmt.Sprintf("no live worker for region %s; start `berth worker --queues %s`", region, region)
}

// NoWorkerFailure is the reason of a build that waited --build-queue-timeout with no worker for its region.
func NoWorkerFailure(region string) string { return "no worker for region " + region }

// CheckQueued looks at every QUEUED build: while no live worker takes its region's queue the build says
// so (its error); one queued longer than timeout with still none ends FAILED "no worker for region R"
// (drop, when set, removes its task from the queue). The message goes once a worker is back.
func (s *Builds) CheckQueued(ctx context.Context, ws *Workers, timeout time.Duration, drop func(queue, id string)) error {
	live, err := ws.Live(ctx)
	if err != nil {
		return err
	}
	served := map[string]bool{}
	for _, w := range live {
		for _, q := range w.Queues {
			served[q] = true
		}
	}
	now := time.Now()
	return s.eachBuild(ctx, []string{store.BuildQueued}, func(b *store.Build) error {
		region, msg := b.Region, NoWorkerMessage(b.Region)
		var change func(b *store.Build) error
		switch {
		case served[region] && b.Error == msg:
			change = func(b *store.Build) error {
				if b.Status != store.BuildQueued || b.Error != msg {
					return ErrBuildFinished
				}
				b.Error = ""
				return nil
			}
		case served[region]:
			return nil
		case timeout > 0 && now.Sub(b.CreatedAt) >= timeout:
			change = func(b *store.Build) error {
				if b.Status != store.BuildQueued {
					return ErrBuildFinished
				}
				b.Finish(store.BuildFailed, NoWorkerFailure(region), time.Now().UTC())
				return nil
			}
		case b.Error != msg:
			change = func(b *store.Build) error {
				if b.Status != store.BuildQueued {
					return ErrBuildFinished
				}
				b.Error = msg
				return nil
			}
		default:
			return nil
		}
		nb, err := s.Store.UpdateBuild(ctx, b.ID, change)
		if errors.Is(err, ErrBuildFinished) {
			return nil
		}
		if err != nil {
			return err
		}
		if nb.Status == store.BuildFailed {
			s.log().Warn("build failed: no worker for its region", "build", b.ID, "repository", b.Repository,
				"region", region, "queued_for", now.Sub(b.CreatedAt).Round(time.Second))
			if drop != nil {
				drop(region, b.ID)
			}
		}
		return nil
	})
}
