// Package apptest starts whole Berth instances for tests, on loopback, on real components: the embedded
// FerretDB (or the MongoDB at BERTH_TEST_MONGO_URI, one database per instance) and Berth's own Redis — its
// redis-server child keeping the queue in DATA/queue, which BERTH_TEST_REDIS=real requires (the test command
// sets it; CI installs redis-server), so that a restart on the same data dir keeps the queue.
package apptest

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/berth-dev/berth/server/app"
	"github.com/berth-dev/berth/store/embedded"
)

// AdminPassword is the administrator's password in every test instance.
const AdminPassword = "admin-test-password"

// Instance is a running Berth.
type Instance struct {
	*app.App
	URL     string // http://127.0.0.1:PORT
	Host    string // 127.0.0.1:PORT, for image references
	DataDir string
	t       testing.TB
	ln      net.Listener
	cancel  context.CancelFunc
	done    chan error
	stopIn  time.Duration
}

// Options adjust an instance.
type Options struct {
	DataDir        string // reuse a data dir (restart tests); default t.TempDir()
	NamespaceLimit int    // default 3
	Region         string // default "local"
	Configure      func(*app.Config)
	// StopTimeout bounds Stop's wait for Serve to return; a longer shutdown fails the test (default 40 s,
	// past Serve's own 30 s grace for in-flight requests).
	StopTimeout time.Duration
}

var seq atomic.Int64

// Start runs an instance until the test ends.
func Start(t testing.TB, o Options) *Instance {
	t.Helper()
	if o.DataDir == "" {
		o.DataDir = t.TempDir()
	}
	cfg, err := app.ParseConfig("serve", nil)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Addr = ln.Addr().String()
	cfg.DataDir = o.DataDir
	cfg.ScanDBRepository = "" // no downloads from the Internet; tests that download set their own
	cfg.NamespaceLimit = 3
	if o.NamespaceLimit != 0 {
		cfg.NamespaceLimit = o.NamespaceLimit
	}
	if o.Region != "" {
		cfg.Region = o.Region
	}
	level := slog.LevelWarn
	if os.Getenv("BERTH_TEST_LOG") != "" {
		level = slog.LevelDebug
	}
	cfg.Logger = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: level}))
	if uri := os.Getenv("BERTH_TEST_MONGO_URI"); uri != "" {
		cfg.MongoURI = uri
		cfg.MongoDatabase = fmt.Sprintf("apptest_%d_%d", os.Getpid(), seq.Add(1))
	}
	realRedis := os.Getenv("BERTH_TEST_REDIS") == "real"
	if realRedis {
		// Berth's own redis-server child, keeping the queue in DATA/queue: a restart on the same data dir
		// finds the tasks the last run left, as it does for users.
		if _, err := exec.LookPath("redis-server"); err != nil {
			t.Fatalf("BERTH_TEST_REDIS=real needs redis-server (apt-get install -y redis-server): %v", err)
		}
	}
	if o.Configure != nil {
		o.Configure(cfg)
	}
	ownRedis := cfg.RedisAddr == "" && cfg.RedisCluster == ""
	t.Setenv("BERTH_ADMIN_PASSWORD", AdminPassword)
	ctx, cancel := context.WithCancel(context.Background())
	a, err := app.Open(ctx, cfg)
	if err != nil {
		cancel()
		ln.Close()
		t.Fatalf("open berth: %v", err)
	}
	if opt, ok := a.Redis.(asynq.RedisClientOpt); realRedis && ownRedis && (!ok || opt.Password == "") {
		a.Close()
		cancel()
		ln.Close()
		t.Fatalf("BERTH_TEST_REDIS=real but Berth did not start its redis-server child (got %T)", a.Redis)
	}
	// The listener's own address: Configure may have set a wildcard --addr (0.0.0.0:PORT).
	host := ln.Addr().String()
	in := &Instance{App: a, URL: "http://" + host, Host: host, DataDir: o.DataDir, t: t, ln: ln, cancel: cancel,
		done: make(chan error, 1), stopIn: 40 * time.Second}
	if o.StopTimeout > 0 {
		in.stopIn = o.StopTimeout
	}
	go func() { in.done <- a.Serve(ctx, ln) }()
	t.Cleanup(func() { _ = in.Stop() })
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(in.URL + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("berth not ready within 10s: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return in
}

// Stop shuts the instance down gracefully, waits for Serve to return and closes the instance; safe to call
// twice. It returns Serve's error, and fails the test on it. A shutdown still running after StopTimeout fails
// the test with the stacks of Berth's goroutines (what hung) and leaves the instance open.
func (in *Instance) Stop() error {
	if in.cancel == nil {
		return nil
	}
	in.cancel()
	in.cancel = nil
	select {
	case err := <-in.done:
		in.App.Close()
		if err != nil {
			in.t.Errorf("berth serve on %s returned an error: %v", in.Host, err)
		}
		return err
	case <-time.After(in.stopIn):
		err := fmt.Errorf("berth on %s did not stop within %s", in.Host, in.stopIn)
		in.t.Errorf("%v; Berth's goroutines:\n%s", err, berthStacks())
		return err
	}
}

// berthStacks is the stacks of the goroutines running Berth's code (those of the test harness and of the
// runtime left out).
func berthStacks() string {
	buf := make([]byte, 1<<22)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "github.com/berth-dev/berth/") && !strings.Contains(g, "apptest.berthStacks") {
			out = append(out, g)
		}
	}
	return strings.Join(out, "\n\n")
}

// StartRedisServer runs a redis-server for one test, like Berth's own child (embedded.StartRedisServer), and
// returns its address as a --redis-addr URI.
func StartRedisServer(t testing.TB) string {
	t.Helper()
	r, err := embedded.StartRedisServer(context.Background(), t.TempDir())
	if err != nil {
		t.Fatalf("BERTH_TEST_REDIS=real needs redis-server (apt-get install -y redis-server): %v", err)
	}
	t.Cleanup(r.Stop)
	return r.URI()
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

var _ io.Writer = testWriter{}
