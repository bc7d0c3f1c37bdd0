//go:build !noembed

// Package embedded runs the services Berth needs in-process when none is configured: FerretDB on SQLite as
// the MongoDB-compatible store, and miniredis as the Redis that Asynq uses. Production builds may leave it out
// with `-tags noembed`; then --mongo-uri and --redis-addr are required.
package embedded

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
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
	URI     string
	dir     string
	sockDir string // a temp dir holding the socket, removed by Stop
	cancel  context.CancelFunc
	done    chan error
}

// StartMongo runs FerretDB with its SQLite handler, keeping its files in dir. It listens only on a Unix socket
// of mode 0600 in dir (or, when dir's path is too long for a socket, in a 0700 directory of the temp dir), so
// that nothing without the data dir's owner's rights (a build's RUN step, another user of the host) reaches
// the store, which has no authentication of its own. URI is the socket's mongodb://%2F… URI.
func StartMongo(ctx context.Context, dir string, logger *slog.Logger) (*Mongo, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create embedded store dir: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil { // the socket's directory: Berth's alone
		return nil, fmt.Errorf("embedded store dir: %w", err)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.Default()
	}
	sock, sockDir, err := socketPath(abs, "mongo.sock")
	if err != nil {
		return nil, fmt.Errorf("embedded store socket: %w", err)
	}
	// FerretDB logs every connection at INFO; keep only its errors (it warns on every driver command it lacks, e.g. endSessions).
	quiet := slog.New(levelFilter{h: logger.Handler(), min: slog.LevelError})
	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{Unix: sock},
		Handler:   "sqlite",
		SQLiteURL: "file:" + abs + "/",
		Logger:    quiet,
	})
	if err != nil {
		return nil, fmt.Errorf("start embedded store: %w", err)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	m := &Mongo{dir: abs, sockDir: sockDir, cancel: cancel, done: make(chan error, 1)}
	go func() { m.done <- f.Run(runCtx) }()
	fail := func(err error) (*Mongo, error) {
		m.Stop()
		return nil, err
	}
	// The listener is up once the socket accepts connections.
	deadline := time.Now().Add(10 * time.Second)
	for {
		if c, err := net.DialTimeout("unix", sock, 200*time.Millisecond); err == nil {
			c.Close()
			if err := os.Chmod(sock, 0o600); err != nil {
				return fail(fmt.Errorf("embedded store socket: %w", err))
			}
			m.URI = "mongodb://" + url.PathEscape(sock) + "/"
			return m, nil
		}
		select {
		case err := <-m.done:
			m.done <- err
			return fail(fmt.Errorf("embedded store stopped at start: %w", err))
		case <-ctx.Done():
			return fail(ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fail(errors.New("embedded store did not start listening within 10s"))
		}
	}
}

// maxSocketPath keeps unix socket paths under the kernel's 108-byte limit (sun_path), with room to spare.
const maxSocketPath = 100

// socketPath is dir/name when short enough for a unix socket, else name in a directory of the temp dir named
// after dir (mode 0700, returned as tmp so the caller removes it). A socket left there by a process that was
// killed is removed.
func socketPath(dir, name string) (path, tmp string, err error) {
	path = filepath.Join(dir, name)
	if len(path) > maxSocketPath {
		sum := sha256.Sum256([]byte(path))
		tmp = filepath.Join(os.TempDir(), "berth-"+hex.EncodeToString(sum[:6]))
		if err := os.MkdirAll(tmp, 0o700); err != nil {
			return "", "", err
		}
		if err := os.Chmod(tmp, 0o700); err != nil {
			return "", "", err
		}
		path = filepath.Join(tmp, name)
	}
	if fi, err := os.Lstat(path); err == nil && fi.Mode()&os.ModeSocket != 0 {
		os.Remove(path)
	}
	return path, tmp, nil
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
	if m.sockDir != "" {
		os.RemoveAll(m.sockDir)
	}
}

// Redis is a running embedded Redis: a redis-server child (StartRedisServer) or an in-memory miniredis
// (StartRedis).
type Redis struct {
	// Network is "unix" (redis-server: Addr is its socket's path) or "tcp" (miniredis: Addr is host:port).
	Network  string
	Addr     string
	Password string // generated at every start
	sockDir  string // a temp dir holding the socket, removed by Stop
	m        *miniredis.Miniredis
	stop     chan struct{}
	done     chan struct{}
	cmd      *exec.Cmd
	exited   chan struct{}
}

// ttlTick is how often the embedded Redis moves its TTLs on with the wall clock: a key expires at most this late.
const ttlTick = 100 * time.Millisecond

// StartRedis runs miniredis, in memory, on a loopback port (miniredis has no Unix socket listener) with a
// generated password, and with TTLs following the wall clock, as Asynq needs.
// miniredis's own ClockTTL would do that on every command by visiting (and sorting) every key, which makes each
// command cost O(keys); a ticker does it ten times a second instead.
func StartRedis() (*Redis, error) {
	password, err := randomPassword()
	if err != nil {
		return nil, err
	}
	m := miniredis.NewMiniRedis()
	m.RequireAuth(password)
	if err := m.StartAddr("127.0.0.1:0"); err != nil {
		return nil, fmt.Errorf("start embedded redis: %w", err)
	}
	r := &Redis{Network: "tcp", Addr: m.Addr(), Password: password, m: m, stop: make(chan struct{}), done: make(chan struct{})}
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
		if r.sockDir != "" {
			os.RemoveAll(r.sockDir)
		}
		return
	}
	close(r.stop)
	<-r.done
	r.m.Close()
}

// ErrNoRedisServer: redis-server is not installed (on PATH).
var ErrNoRedisServer = errors.New("redis-server is not installed")

// StartRedisServer runs redis-server as a child listening only on a Unix socket of mode 0600 in dir (or in a
// 0700 directory of the temp dir when dir's path is too long for a socket), with a random password, keeping the
// queue in dir in an append-only file, so that queued and retried tasks survive a restart. Its config (with the
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
	if err := os.Chmod(dir, 0o700); err != nil { // the socket's directory: Berth's alone
		return nil, fmt.Errorf("queue dir: %w", err)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	password, err := randomPassword()
	if err != nil {
		return nil, err
	}
	sock, sockDir, err := socketPath(abs, "redis.sock")
	if err != nil {
		return nil, fmt.Errorf("queue socket: %w", err)
	}
	conf := filepath.Join(abs, "redis.conf")
	text := fmt.Sprintf("# written by berth at every start\nport 0\nunixsocket %s\nunixsocketperm 600\nrequirepass %s\n"+
		"dir %s\nappendonly yes\nappendfsync everysec\nsave \"\"\ndaemonize no\n", strconv.Quote(sock), password, strconv.Quote(abs))
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
	r := &Redis{Network: "unix", Addr: sock, Password: password, sockDir: sockDir, cmd: cmd, exited: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(r.exited)
	}()
	if err := r.waitReady(ctx); err != nil {
		r.Stop()
		return nil, fmt.Errorf("redis-server did not start (see %s): %w", filepath.Join(abs, "redis.log"), err)
	}
	return r, nil
}

// URI is the Redis's address as a --redis-addr URI (redis-socket:// or redis://), password included.
func (r *Redis) URI() string {
	if r.Network == "unix" {
		return "redis-socket://:" + r.Password + "@" + r.Addr
	}
	return "redis://:" + r.Password + "@" + r.Addr
}

func randomPassword() (string, error) {
	var pw [24]byte
	if _, err := rand.Read(pw[:]); err != nil {
		return "", err
	}
	return hex.EncodeToString(pw[:]), nil
}

// waitReady waits until the child answers PING with its password, up to 10 s (loading a large append-only
// file takes longer: then it is LOADING, which is waited for too).
func (r *Redis) waitReady(ctx context.Context) error {
	c := redis.NewClient(&redis.Options{Network: r.Network, Addr: r.Addr, Password: r.Password, MaxRetries: -1})
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
