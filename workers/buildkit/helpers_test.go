package buildkit

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/berth-dev/berth/registry"
	"github.com/berth-dev/berth/registry/registrytest"
	"github.com/berth-dev/berth/workers/buildkit/buildkittest"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// The tests share one buildkitd (started on first use, stopped by TestMain)
// to keep them fast; each test uses its own registry.
var shared struct {
	once    sync.Once
	daemon  *Daemon
	builder *Builder
	root    string
	err     error
	skip    string
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.daemon != nil {
		if err := shared.daemon.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stop buildkitd:", err)
			code = 1
		}
		shared.builder.Close()
	}
	if shared.root != "" {
		os.RemoveAll(shared.root)
	}
	os.Exit(code)
}

// requireBuildkit returns buildkitd's path, or skips the test when buildkitd
// or runc are missing or we are not root — except in CI, where it fails.
func requireBuildkit(t *testing.T) string {
	t.Helper()
	bin, err := FindBinary()
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("CI is set and builds cannot run: %v", err)
		}
		t.Skipf("skipping: %v (build it with scripts/install-buildkit.sh)", err)
	}
	return bin
}

// testBuilder returns a Builder on the shared daemon, starting it once.
func testBuilder(t *testing.T) *Builder {
	t.Helper()
	bin := requireBuildkit(t)
	shared.once.Do(func() {
		shared.root, shared.err = os.MkdirTemp("", "berth-bk-test-")
		if shared.err != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		start := time.Now()
		shared.daemon, shared.err = Start(ctx, DaemonConfig{
			Binary:      bin,
			RootDir:     shared.root,
			GCKeepBytes: 512 << 20,
			LogWriter:   logFile(filepath.Join(shared.root, "buildkitd.log")),
		})
		if shared.err != nil {
			return
		}
		log.Printf("buildkitd ready in %v at %s", time.Since(start).Round(time.Millisecond), shared.daemon.Addr())
		shared.builder, shared.err = NewBuilder(ctx, shared.daemon.Addr())
	})
	if shared.err != nil {
		t.Fatalf("shared buildkitd: %v", shared.err)
	}
	return shared.builder
}

// allowRegistry opens the shared daemon's path to registry host (buildkitd's namespace reaches nothing of the
// host's but through such a path) until the test ends.
func allowRegistry(t *testing.T, host string) {
	t.Helper()
	if shared.daemon == nil {
		return
	}
	remove, err := shared.daemon.AllowRegistry(t.Context(), host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(remove)
}

func logFile(path string) io.Writer {
	f, err := os.Create(path)
	if err != nil {
		return io.Discard
	}
	return f // closed when the test binary exits
}

// newTestRegistry starts Berth's registry (package registry, on its filesystem storage) on 127.0.0.1 and
// returns its host:port. Anonymous clients may pull and push anything, through the registry's own token flow.
// BuildKit talks plain HTTP to 127.0.0.1 without configuration.
func newTestRegistry(t *testing.T) string {
	t.Helper()
	host, _ := startRegistry(t, &registrytest.Authorizer{Anonymous: []registrytest.Rule{{Pattern: "*", Actions: []string{"pull", "push"}}}})
	return host
}

// newTokenRegistry is Berth's registry for one user: /v2/ wants a bearer token, which /token issues for the
// right basic credentials; anonymous clients get nothing.
func newTokenRegistry(t *testing.T, user, password string) string {
	t.Helper()
	host, tokenRequests := startRegistry(t, &registrytest.Authorizer{Users: map[string]registrytest.User{
		user: {Password: password, Rules: []registrytest.Rule{{Pattern: "*", Actions: []string{"*"}}}},
	}})
	t.Cleanup(func() {
		if tokenRequests.Load() == 0 && !t.Failed() {
			t.Errorf("the token endpoint was never used")
		}
	})
	return host
}

// startRegistry serves Berth's registry with authz until the test ends; it returns host:port and the count of
// requests to /token.
func startRegistry(t *testing.T, authz registry.Authorizer) (string, *atomic.Int64) {
	t.Helper()
	srv := httptest.NewUnstartedServer(nil)
	host := srv.Listener.Addr().String()
	reg, err := registry.New(registry.Config{RootDir: t.TempDir(), PublicURL: "http://" + host,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, authz, nil)
	if err != nil {
		t.Fatal(err)
	}
	var tokenRequests atomic.Int64
	srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/token" {
			tokenRequests.Add(1)
		}
		reg.ServeHTTP(w, r)
	})
	srv.Start()
	t.Cleanup(func() { srv.Close(); reg.Close() })
	allowRegistry(t, host)
	return host, &tokenRequests
}

// pushBusybox makes HOST/library/busybox:latest from Debian's busybox-static (buildkittest.BusyboxImage).
func pushBusybox(t *testing.T, host string, auth authn.Authenticator) string {
	t.Helper()
	img, err := buildkittest.BusyboxImage()
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal(err)
		}
		t.Skipf("skipping: %v", err)
	}
	ref := host + "/library/busybox:latest"
	tag, err := name.NewTag(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if auth == nil {
		auth = authn.Anonymous
	}
	if err := remote.Write(tag, img, remote.WithAuth(auth), remote.WithContext(t.Context())); err != nil {
		t.Fatalf("push base image: %v", err)
	}
	return ref
}

// imageFiles reads the regular files of a pushed image's flattened
// filesystem (path without leading slash → content), and the digest.
func imageFiles(t *testing.T, ref string, auth authn.Authenticator) (map[string]string, string) {
	t.Helper()
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if auth == nil {
		auth = authn.Anonymous
	}
	desc, err := remote.Get(r, remote.WithAuth(auth), remote.WithContext(t.Context()))
	if err != nil {
		t.Fatalf("get %s: %v", ref, err)
	}
	img, err := desc.Image()
	if err != nil {
		t.Fatalf("image %s: %v", ref, err)
	}
	files, err := buildkittest.Files(img)
	if err != nil {
		t.Fatal(err)
	}
	return files, desc.Digest.String()
}

// writeFiles creates files (relative path → content) under dir.
func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for p, c := range files {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// logWriter sends build output to the test log, line by line.
type logWriter struct {
	t   *testing.T
	mu  sync.Mutex
	buf bytes.Buffer
	all bytes.Buffer
}

func newLogWriter(t *testing.T) *logWriter { return &logWriter{t: t} }

func (w *logWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.all.Write(p)
	if testing.Verbose() {
		w.buf.Write(p)
		for {
			line, err := w.buf.ReadString('\n')
			if err != nil {
				w.buf.WriteString(line)
				break
			}
			w.t.Log(strings.TrimRight(line, "\n"))
		}
	}
	return len(p), nil
}

func (w *logWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.all.String()
}
