//go:build !noembed

// Package embedded runs the services Berth needs in-process when none is configured: FerretDB on SQLite as
// the MongoDB-compatible store, and miniredis as the Redis that Asynq uses. Production builds may leave it out
// with `-tags noembed`; then --mongo-uri and --redis-addr are required.
package embedded

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	_ "modernc.org/sqlite" // the driver of FerretDB's SQLite handler, for IndexIDs
)

// Available reports whether this build carries the embedded services.
const Available = true

// Mongo is a running embedded FerretDB.
type Mongo struct {
	URI    string
	dir    string
	cancel context.CancelFunc
	done   chan error
}

// StartMongo runs FerretDB with its SQLite handler on a loopback port, keeping its files in dir.
func StartMongo(ctx context.Context, dir string, logger *slog.Logger) (*Mongo, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create embedded store dir: %w", err)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.Default()
	}
	// FerretDB logs every connection at INFO; keep only its errors (it warns on every driver command it lacks, e.g. endSessions).
	quiet := slog.New(levelFilter{h: logger.Handler(), min: slog.LevelError})
	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: "127.0.0.1:0"},
		Handler:   "sqlite",
		SQLiteURL: "file:" + abs + "/",
		Logger:    quiet,
	})
	if err != nil {
		return nil, fmt.Errorf("start embedded store: %w", err)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	m := &Mongo{dir: abs, cancel: cancel, done: make(chan error, 1)}
	go func() { m.done <- f.Run(runCtx) }()
	// MongoDBURI is ready once the listener is up; poll until it accepts connections.
	deadline := time.Now().Add(10 * time.Second)
	for {
		uri := f.MongoDBURI()
		if u := hostOf(uri); u != "" {
			if c, err := net.DialTimeout("tcp", u, 200*time.Millisecond); err == nil {
				c.Close()
				m.URI = uri
				return m, nil
			}
		}
		select {
		case err := <-m.done:
			cancel()
			return nil, fmt.Errorf("embedded store stopped at start: %w", err)
		case <-ctx.Done():
			cancel()
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			cancel()
			return nil, errors.New("embedded store did not start listening within 10s")
		}
	}
}

// IndexIDs makes lookups by _id in database use an index. FerretDB's SQLite handler filters them on the
// expression _ferretdb_sjson->'$._id' but indexes _ferretdb_sjson->"_id", which SQLite does not match: without
// this every lookup of a build, source or log chunk reads its whole collection. It adds the missing index to the
// table of every collection that exists now (it is harmless to FerretDB, which neither lists nor drops it, and
// goes with the table). Call it again after creating collections; it skips tables indexed already.
func (m *Mongo) IndexIDs(ctx context.Context, database string) (added int, err error) {
	db, err := sql.Open("sqlite", "file:"+filepath.Join(m.dir, database+".sqlite")+"?_pragma=busy_timeout(10000)")
	if err != nil {
		return 0, fmt.Errorf("open the embedded store's file: %w", err)
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, `SELECT table_name FROM "_ferretdb_collections"`)
	if err != nil {
		return 0, fmt.Errorf("list the embedded store's collections: %w", err)
	}
	var tables []string
	for rows.Next() {
		var t string
		if err := rows.Scan(&t); err != nil {
			rows.Close()
			return 0, err
		}
		tables = append(tables, t)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	for _, t := range tables {
		idx := t + "_berth_id"
		var n int
		if err := db.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = ?`, idx).Scan(&n); err != nil {
			return added, err
		}
		if n > 0 {
			continue
		}
		if _, err := db.ExecContext(ctx, fmt.Sprintf(`CREATE INDEX IF NOT EXISTS %q ON %q (_ferretdb_sjson->'$._id')`, idx, t)); err != nil {
			return added, fmt.Errorf("index _id of %s in the embedded store: %w", t, err)
		}
		added++
	}
	return added, nil
}

// Stop shuts FerretDB down and waits for it to flush.
func (m *Mongo) Stop() {
	m.cancel()
	select {
	case <-m.done:
	case <-time.After(10 * time.Second):
	}
}

func hostOf(uri string) (host string) {
	defer func() {
		if recover() != nil {
			host = ""
		}
	}()
	const p = "mongodb://"
	if len(uri) <= len(p) {
		return ""
	}
	rest := uri[len(p):]
	for i, c := range rest {
		if c == '/' || c == '?' {
			return rest[:i]
		}
	}
	return rest
}

// Redis is a running embedded Redis: a redis-server child (StartRedisServer) or an in-memory miniredis
// (StartRedis).
type Redis struct {
	Addr     string
	Password string // redis-server's, from its config file; "" for miniredis
	m        *miniredis.Miniredis
	stop     chan struct{}
	done     chan struct{}
	cmd      *exec.Cmd
	exited   chan struct{}
}

// ttlTick is how often the embedded Redis moves its TTLs on with the wall clock: a key expires at most this late.
const ttlTick = 100 * time.Millisecond

// StartRedis runs miniredis, in memory, on a loopback port with TTLs following the wall clock, as Asynq needs.
// miniredis's own ClockTTL would do that on every command by visiting (and sorting) every key, which makes each
// command cost O(keys); a ticker does it ten times a second instead.
func StartRedis() (*Redis, error) {
	m := miniredis.NewMiniRedis()
	if err := m.StartAddr("127.0.0.1:0"); err != nil {
		return nil, fmt.Errorf("start embedded redis: %w", err)
	}
	r := &Redis{Addr: m.Addr(), m: m, stop: make(chan struct{}), done: make(chan struct{})}
	go r.tick()
	return r, nil
}

func (r *Redis) tick() {
	defer close(r.done)
	t := time.NewTicker(ttlTick)
	defer t.Stop()
	last := time.Now()
	for {
		select {
		case <-r.stop:
			return
		case now := <-t.C:
			r.m.FastForward(now.Sub(last))
			last = now
		}
	}
}

// Stop stops the Redis: redis-server is asked to shut down (it writes its append-only file) and killed if it
// has not within 10 s; miniredis is closed.
func (r *Redis) Stop() {
	if r.cmd != nil {
		_ = r.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-r.exited:
		case <-time.After(10 * time.Second):
			_ = r.cmd.Process.Kill()
			<-r.exited
		}
		return
	}
	close(r.stop)
	<-r.done
	r.m.Close()
}

// ErrNoRedisServer: redis-server is not installed (on PATH).
var ErrNoRedisServer = errors.New("redis-server is not installed")

// StartRedisServer runs redis-server as a child on a loopback port, with a random password, keeping the queue
// in dir in an append-only file, so that queued and retried tasks survive a restart. Its config (with the
// password) and its log are in dir too; the child is stopped by Stop, and by the kernel if this process dies.
// ErrNoRedisServer when redis-server is not on PATH.
func StartRedisServer(ctx context.Context, dir string) (*Redis, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, ErrNoRedisServer
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create the queue dir: %w", err)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	var pw [24]byte
	if _, err := rand.Read(pw[:]); err != nil {
		return nil, err
	}
	password := hex.EncodeToString(pw[:])
	var lastErr error
	for range 3 { // the port is free when picked, not necessarily when redis-server binds it
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		conf := filepath.Join(abs, "redis.conf")
		text := fmt.Sprintf("# written by berth at every start\nbind 127.0.0.1\nport %d\nprotected-mode yes\nrequirepass %s\n"+
			"dir %s\nappendonly yes\nappendfsync everysec\nsave \"\"\ndaemonize no\n", port, password, strconv.Quote(abs))
		if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
			return nil, fmt.Errorf("write %s: %w", conf, err)
		}
		logf, err := os.OpenFile(filepath.Join(abs, "redis.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return nil, err
		}
		cmd := exec.Command(bin, conf)
		cmd.Stdout, cmd.Stderr = logf, logf
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
		if err := cmd.Start(); err != nil {
			logf.Close()
			return nil, fmt.Errorf("start %s: %w", bin, err)
		}
		r := &Redis{Addr: fmt.Sprintf("127.0.0.1:%d", port), Password: password, cmd: cmd, exited: make(chan struct{})}
		go func() {
			_ = cmd.Wait()
			logf.Close()
			close(r.exited)
		}()
		if lastErr = r.waitReady(ctx); lastErr == nil {
			return r, nil
		}
		r.Stop()
	}
	return nil, fmt.Errorf("redis-server did not start (see %s): %w", filepath.Join(abs, "redis.log"), lastErr)
}

// waitReady waits until the child answers PING with its password, up to 10 s (loading a large append-only
// file takes longer: then it is LOADING, which is waited for too).
func (r *Redis) waitReady(ctx context.Context) error {
	c := redis.NewClient(&redis.Options{Addr: r.Addr, Password: r.Password, MaxRetries: -1})
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := c.Ping(ctx).Err()
		if err == nil {
			return nil
		}
		loading := strings.HasPrefix(err.Error(), "LOADING")
		select {
		case <-r.exited:
			return errors.New("redis-server exited")
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) && !loading {
			return err
		}
	}
}

type levelFilter struct {
	h   slog.Handler
	min slog.Level
}

func (l levelFilter) Enabled(ctx context.Context, lv slog.Level) bool {
	return lv >= l.min && l.h.Enabled(ctx, lv)
}
func (l levelFilter) Handle(ctx context.Context, r slog.Record) error { return l.h.Handle(ctx, r) }
func (l levelFilter) WithAttrs(a []slog.Attr) slog.Handler {
	return levelFilter{h: l.h.WithAttrs(a), min: l.min}
}
func (l levelFilter) WithGroup(n string) slog.Handler {
	return levelFilter{h: l.h.WithGroup(n), min: l.min}
}
