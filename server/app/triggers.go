package app

import (
	"context"
	"fmt"
	"time"

	"github.com/hibiken/asynq"

	"github.com/berth-dev/berth/pipeline"
	"github.com/berth-dev/berth/store"
	"github.com/berth-dev/berth/webhooks/outbound"
	"github.com/berth-dev/berth/workers"
)

// buildTriggers makes the trigger deliverer from the config: the SSRF allowlist, the payload time zone and
// the store's trigger indexes.
func (a *App) buildTriggers() (*workers.Triggers, error) {
	c := a.Cfg
	allow, err := outbound.ParseAllowCIDRs(c.TriggerAllow)
	if err != nil {
		return nil, err
	}
	loc, err := time.LoadLocation(c.TimeZone)
	if err != nil {
		return nil, fmt.Errorf("--time-zone %q is not an IANA time zone like UTC or Asia/Shanghai: %w", c.TimeZone, err)
	}
	if c.TriggerRecordRetention <= 0 {
		return nil, fmt.Errorf("--trigger-record-retention must be positive, like 720h; got %s", c.TriggerRecordRetention)
	}
	if c.TriggerRetryBase <= 0 {
		return nil, fmt.Errorf("--trigger-retry-base must be positive, like 10s; got %s", c.TriggerRetryBase)
	}
	return &workers.Triggers{Store: a.Store, Box: a.Box, Deliverer: &outbound.Deliverer{AllowCIDRs: allow},
		Region: c.Region, Location: loc, Logger: a.Logger.With("component", "triggers")}, nil
}

// tuneQueue sets what every Asynq server of this instance shares: the trigger backoff, and polling often
// enough that a push reaches a trigger's receiver well within a second.
func (a *App) tuneQueue(qc asynq.Config) asynq.Config {
	qc.RetryDelayFunc = pipeline.RetryDelay(a.Cfg.TriggerRetryBase)
	if a.Cfg.QueueCheckInterval > 0 {
		qc.TaskCheckInterval = a.Cfg.QueueCheckInterval
	}
	// Retries wait in Redis until this check moves them back to their queue.
	qc.DelayedTaskCheckInterval = min(max(a.Cfg.TriggerRetryBase/4, 50*time.Millisecond), 5*time.Second)
	return qc
}

// startTriggerCleanup deletes trigger records older than --trigger-record-retention, at once and then
// periodically (FerretDB has no TTL indexes), until the returned stop is called.
func (a *App) startTriggerCleanup(ctx context.Context) (stop func()) {
	return store.StartSweep(ctx, a.Logger, "trigger records", a.Cfg.TriggerRecordRetention, a.Store.DeleteTriggerRecordsBefore)
}
