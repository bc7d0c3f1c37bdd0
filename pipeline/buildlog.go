package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/berth-dev/berth/store"
)

// LogFlushInterval is how often a growing build log is written to the store: how far behind a follower is.
const LogFlushInterval = 250 * time.Millisecond

// truncatedNote ends a log that reached store.MaxLogBytes.
const truncatedNote = "\n[berth] the log reached its limit of 8 MiB and is truncated here; the build goes on\n"

// LogWriter appends a build's log to the store in chunks of at most store.MaxLogChunk bytes, flushing the
// growing chunk every LogFlushInterval so followers see lines as they come. The store is the only copy: a
// follower on another replica reads what a worker on another machine writes. Writes never fail (a log
// that cannot be stored must not fail the build); store errors are logged.
type LogWriter struct {
	st     store.Store
	build  string
	repo   string
	logger *slog.Logger

	mu        sync.Mutex
	seq       int
	cur       []byte
	dirty     bool
	total     int
	truncated bool
	closed    bool

	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

// OpenLog opens b's log for appending. A log left by an earlier attempt is kept: its last chunk is closed and
// this attempt's output starts a new one.
func OpenLog(ctx context.Context, st store.Store, b *store.Build, logger *slog.Logger) (*LogWriter, error) {
	w := &LogWriter{st: st, build: b.ID, repo: b.Repository, logger: logger,
		stop: make(chan struct{}), done: make(chan struct{})}
	// A first attempt has no log yet: the record counts the attempt before anything writes to the log.
	for seq := 0; b.Attempt > 1; seq++ {
		c, err := st.GetLogChunk(ctx, b.ID, seq)
		if errors.Is(err, store.ErrNotFound) {
			w.seq = seq
			break
		}
		if err != nil {
			return nil, fmt.Errorf("open build log: %w", err)
		}
		w.total += len(c.Data)
		if !c.Closed {
			c.Closed = true
			if err := st.PutLogChunk(ctx, c); err != nil {
				return nil, fmt.Errorf("open build log: %w", err)
			}
		}
	}
	w.truncated = w.total >= store.MaxLogBytes-len(truncatedNote)
	go w.flusher()
	return w, nil
}

// Write appends p to the log; it always succeeds.
func (w *LogWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := len(p)
	for len(p) > 0 && !w.truncated && !w.closed {
		room := store.MaxLogBytes - len(truncatedNote) - w.total
		if room <= 0 {
			w.truncated = true
			w.appendLocked([]byte(truncatedNote))
			break
		}
		k := min(len(p), room)
		w.appendLocked(p[:k])
		p = p[k:]
	}
	return n, nil
}

func (w *LogWriter) appendLocked(b []byte) {
	for len(b) > 0 {
		k := min(len(b), store.MaxLogChunk-len(w.cur))
		w.cur = append(w.cur, b[:k]...)
		w.total += k
		w.dirty = true
		b = b[k:]
		if len(w.cur) == store.MaxLogChunk {
			w.putLocked(true)
		}
	}
}

// Printf writes one "[berth] …" line: the pipeline's own messages between BuildKit's.
func (w *LogWriter) Printf(format string, args ...any) {
	fmt.Fprintf(w, "[berth] %s %s\n", time.Now().UTC().Format("15:04:05"), fmt.Sprintf(format, args...))
}

// putLocked stores the current chunk; a closed chunk is final and the next write starts a new one.
func (w *LogWriter) putLocked(closed bool) {
	if !w.dirty && !closed {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := w.st.PutLogChunk(ctx, &store.LogChunk{Build: w.build, Repository: w.repo, Seq: w.seq, Data: string(w.cur), Closed: closed})
	if err != nil && w.logger != nil {
		w.logger.Warn("store build log", "build", w.build, "err", err)
	}
	w.dirty = false
	if closed {
		w.seq++
		w.cur = nil
	}
}

func (w *LogWriter) flusher() {
	defer close(w.done)
	t := time.NewTicker(LogFlushInterval)
	defer t.Stop()
	for {
		select {
		case <-w.stop:
			return
		case <-t.C:
			w.mu.Lock()
			w.putLocked(false)
			w.mu.Unlock()
		}
	}
}

// Close stores the rest of the log and closes its last chunk. Later writes are dropped.
func (w *LogWriter) Close() error {
	w.closeOnce.Do(func() {
		close(w.stop)
		<-w.done
		w.mu.Lock()
		defer w.mu.Unlock()
		if len(w.cur) > 0 || w.dirty {
			w.dirty = true
			w.putLocked(true)
		}
		w.closed = true
	})
	return nil
}

// LogCursor reads a build log from the store as it grows.
type LogCursor struct {
	st    store.Store
	build string
	seq   int
	off   int
	atEnd bool
}

// NewLogCursor reads the log of build from its start.
func NewLogCursor(st store.Store, build string) *LogCursor { return &LogCursor{st: st, build: build} }

// Next returns what was appended since the last call (nil when nothing was).
func (c *LogCursor) Next(ctx context.Context) ([]byte, error) {
	out, _, err := c.NextUpTo(ctx, 0)
	return out, err
}

// NextUpTo is Next, but it stops once it holds max bytes or more (max 0: no bound), so that a long log can be
// sent while the rest is read; more reports that it stopped there, with more stored after it.
func (c *LogCursor) NextUpTo(ctx context.Context, max int) (out []byte, more bool, err error) {
	for {
		ch, err := c.st.GetLogChunk(ctx, c.build, c.seq)
		if errors.Is(err, store.ErrNotFound) {
			c.atEnd = true
			return out, false, nil
		}
		if err != nil {
			return out, false, err
		}
		if len(ch.Data) > c.off {
			out = append(out, ch.Data[c.off:]...)
			c.off = len(ch.Data)
		}
		if !ch.Closed {
			c.atEnd = false
			return out, false, nil
		}
		c.seq, c.off = c.seq+1, 0
		if max > 0 && len(out) >= max {
			c.atEnd = false
			return out, true, nil
		}
	}
}

// AtEnd reports whether the last Next reached the end of every closed chunk: no writer is appending, as far as
// the store shows.
func (c *LogCursor) AtEnd() bool { return c.atEnd }
