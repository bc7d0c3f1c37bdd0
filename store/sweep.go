package store

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// StartSweep runs deleteBefore(now - retention) at once and then periodically (FerretDB has no TTL indexes),
// logging what it removed as `what`, until the returned stop is called. The retention sweeps of trigger
// records and of the audit log use it.
func StartSweep(ctx context.Context, logger *slog.Logger, what string, retention time.Duration,
	deleteBefore func(ctx context.Context, cutoff time.Time) (int64, error)) (stop func()) {
	interval := min(max(retention/24, time.Second), time.Hour)
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			n, err := deleteBefore(ctx, time.Now().Add(-retention))
			switch {
			case err != nil && ctx.Err() == nil:
				logger.Warn(what+" cleanup", "err", err)
			case n > 0:
				logger.Info(what+" expired", "deleted", n, "retention", retention.String())
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return func() { cancel(); wg.Wait() }
}
