// Package audit keeps Berth's audit log (SPEC §14): the API, the console and the registry hand it one entry per
// change, sign-in, push, delete (and, with --audit-pulls, pull), and it writes them to the store in batches,
// off the request's path, and sweeps the entries older than the retention.
//
//	log := audit.New(st, audit.Options{Metrics: reg, Logger: logger})
//	defer log.Close()           // writes what is still buffered
//	log.Record(ctx, store.AuditEntry{User: "alice", Action: "cr:PushRepository", …})
//	stop := log.StartSweep(ctx, 90*24*time.Hour)
//
// Record never blocks the request: entries wait in a bounded buffer for the writer, which takes up to MaxBatch
// at a time in one store write. When the buffer is full (the store is down or far slower than the traffic),
// the entry is dropped, counted in berth_audit_entries_dropped_total and a warning is logged (at most one per
// 10 s): a push or pull never waits for the audit log. Entries a failed write held are counted in
// berth_audit_entries_failed_total the same way.
package audit

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/berth-dev/berth/store"
)

// Actions of the entries that are no API route's (the registry's and sign-ins): the registry's are the RAM
// actions its token service checks (SPEC §9).
const (
	// ActionLogin is a sign-in with a password, an access key or a temporary password: a console login, a
	// registry token request or Basic login (docker login), or an API request whose credentials were refused.
	ActionLogin = "ram:Login"
	// ActionLogout is a console sign-out.
	ActionLogout = "ram:Logout"
	// ActionConsoleForm is a console form refused before it reached the API (not signed in, unreadable, or
	// failing the CSRF check); a form that reaches the API is recorded under the API route's action.
	ActionConsoleForm = "console:SubmitForm"
)

// Anonymous is the user of an entry whose caller gave no credentials.
const Anonymous = "anonymous"

// Store is what the log needs of the store.
type Store interface {
	AddAuditEntries(ctx context.Context, entries []store.AuditEntry) error
	DeleteAuditEntriesBefore(ctx context.Context, cutoff time.Time) (int64, error)
}

// Options tune a Log; the zero value is right for production.
type Options struct {
	Buffer   int // entries waiting for the writer (default 16384)
	MaxBatch int // entries per store write (default 512)
	Metrics  prometheus.Registerer
	Logger   *slog.Logger
}

// Log is the audit log's writer. A nil *Log records nothing.
type Log struct {
	st       Store
	ch       chan item
	maxBatch int
	logger   *slog.Logger
	stop     chan struct{}
	done     chan struct{}
	once     sync.Once
	lastWarn atomic.Int64
	ndropped atomic.Int64

	written, dropped, failed prometheus.Counter
}

// New starts the writer of a log into st.
func New(st Store, o Options) *Log {
	if o.Buffer <= 0 {
		o.Buffer = 16384
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = 512
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	l := &Log{st: st, ch: make(chan item, o.Buffer), maxBatch: o.MaxBatch, logger: o.Logger,
		stop: make(chan struct{}), done: make(chan struct{}),
		written: prometheus.NewCounter(prometheus.CounterOpts{Name: "berth_audit_entries_written_total",
			Help: "Audit log entries written to the store."}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{Name: "berth_audit_entries_dropped_total",
			Help: "Audit log entries dropped because the writer's buffer was full."}),
		failed: prometheus.NewCounter(prometheus.CounterOpts{Name: "berth_audit_entries_failed_total",
			Help: "Audit log entries lost to a failed store write."}),
	}
	if o.Metrics != nil {
		o.Metrics.MustRegister(l.written, l.dropped, l.failed)
	}
	go l.run()
	return l
}

// Record queues e for the writer without waiting: Time defaults to now, User to "anonymous", Resource to "*".
// This is the entry point for every part of Berth that audits (the API, the console, the registry, and jobs
// such as retention runs).
func (l *Log) Record(_ context.Context, e store.AuditEntry) {
	if l == nil {
		return
	}
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	if e.User == "" {
		e.User = Anonymous
	}
	if e.Resource == "" {
		e.Resource = "*"
	}
	select {
	case l.ch <- item{e: e}:
	default:
		l.dropped.Inc()
		l.ndropped.Add(1)
		l.warn("audit log buffer full: entry dropped (the store is slow or unreachable)", "action", e.Action, "user", e.User)
	}
}

// warn logs at most one warning per 10 s.
func (l *Log) warn(msg string, args ...any) {
	now := time.Now().UnixNano()
	last := l.lastWarn.Load()
	if now-last < int64(10*time.Second) || !l.lastWarn.CompareAndSwap(last, now) {
		return
	}
	l.logger.Warn(msg, args...)
}

// Close writes the entries still buffered and stops the writer (up to 10 s). Entries recorded after Close are
// not written.
func (l *Log) Close() {
	if l == nil {
		return
	}
	l.once.Do(func() { close(l.stop) })
	select {
	case <-l.done:
	case <-time.After(10 * time.Second):
		l.logger.Warn("audit log: the last entries were not written within 10s", "buffered", len(l.ch))
	}
}

// Flush waits until every entry recorded before it is written (or its write failed).
func (l *Log) Flush(ctx context.Context) error {
	if l == nil {
		return nil
	}
	done := make(chan struct{})
	select {
	case l.ch <- item{flushed: done}:
	case <-l.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-done:
		return nil
	case <-l.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// item is an entry, or a flush waiting for the entries before it.
type item struct {
	e       store.AuditEntry
	flushed chan struct{}
}

// run is the writer: it takes what is buffered, up to maxBatch entries, and writes it in one store write.
func (l *Log) run() {
	defer close(l.done)
	batch := make([]store.AuditEntry, 0, l.maxBatch)
	var flushes []chan struct{}
	take := func(it item) {
		if it.flushed != nil {
			flushes = append(flushes, it.flushed)
		} else {
			batch = append(batch, it.e)
		}
	}
	write := func() {
		if len(batch) > 0 {
			l.write(batch)
		}
		for _, f := range flushes {
			close(f)
		}
		batch, flushes = batch[:0], flushes[:0]
	}
	for {
		select {
		case it := <-l.ch:
			take(it)
		case <-l.stop:
			for { // what is still buffered
				select {
				case it := <-l.ch:
					take(it)
					if len(batch) >= l.maxBatch {
						write()
					}
					continue
				default:
				}
				write()
				return
			}
		}
	drain:
		for len(batch) < l.maxBatch {
			select {
			case it := <-l.ch:
				take(it)
			default:
				break drain
			}
		}
		write()
	}
}

// write stores a batch, trying once more after a second; a batch that still fails is counted and logged.
func (l *Log) write(batch []store.AuditEntry) {
	var err error
	for attempt := range 2 {
		if attempt > 0 {
			time.Sleep(time.Second)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err = l.st.AddAuditEntries(ctx, batch)
		cancel()
		if err == nil {
			l.written.Add(float64(len(batch)))
			return
		}
	}
	l.failed.Add(float64(len(batch)))
	l.logger.Warn("audit log: entries not written", "entries", len(batch), "err", err)
}

// StartSweep deletes the entries older than retention, at once and then periodically, until the returned stop
// is called.
func (l *Log) StartSweep(ctx context.Context, retention time.Duration) (stop func()) {
	return store.StartSweep(ctx, l.logger, "audit entries", retention, l.st.DeleteAuditEntriesBefore)
}

// Dropped says how many entries were dropped because the buffer was full.
func (l *Log) Dropped() int64 { return l.ndropped.Load() }
