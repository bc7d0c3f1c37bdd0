// Package apptest starts whole Berth instances for tests, on loopback, on real components: the embedded
// FerretDB (or the MongoDB at BERTH_TEST_MONGO_URI, one database per instance) and miniredis, or a real
// redis-server per instance when BERTH_TEST_REDIS=real (the test command sets it; CI installs redis-server).
package apptest

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

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
	cancel  context.CancelFunc
	done    chan error
}

// Options adjust an instance.
type Options struct {
	DataDir        string // reuse a data dir (restart tests); default t.TempDir()
	NamespaceLimit int    // default 3
	Region         string // default "local"
	Configure      func(*app.Config)
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
	if os.Getenv("BERTH_TEST_REDIS") == "real" {
		cfg.RedisAddr = StartRedisServer(t)
	}
	if o.Configure != nil {
		o.Configure(cfg)
	}
	t.Setenv("BERTH_ADMIN_PASSWORD", AdminPassword)
	ctx, cancel := context.WithCancel(context.Background())
	a, err := app.Open(ctx, cfg)
	if err != nil {
		cancel()
		ln.Close()
		t.Fatalf("open berth: %v", err)
	}
	in := &Instance{App: a, URL: "http://" + cfg.Addr, Host: cfg.Addr, DataDir: o.DataDir, cancel: cancel, done: make(chan error, 1)}
	go func() { in.done <- a.Serve(ctx, ln) }()
	t.Cleanup(in.Stop)
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

// Stop shuts the instance down gracefully and waits for it; safe to call twice.
func (in *Instance) Stop() {
	if in.cancel == nil {
		return
	}
	in.cancel()
	in.cancel = nil
	select {
	case <-in.done:
	case <-time.After(40 * time.Second):
	}
	in.App.Close()
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
	return "redis://:" + r.Password + "@" + r.Addr
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

var _ io.Writer = testWriter{}
