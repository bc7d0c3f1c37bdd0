package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	s3driver "github.com/berth-dev/berth/registry/storage/driver/s3"
	"github.com/berth-dev/berth/registry/storage/driver/s3/s3test"
	"github.com/berth-dev/berth/store/embedded"
)

const (
	adminUser     = "admin"
	adminPassword = "bench-admin-password"
)

// stack holds what the bench started, stopped in reverse order.
type stack struct {
	mu    sync.Mutex
	stops []func()
}

func (s *stack) push(f func()) {
	s.mu.Lock()
	s.stops = append(s.stops, f)
	s.mu.Unlock()
}

func (s *stack) stopAll() {
	s.mu.Lock()
	stops := s.stops
	s.stops = nil
	s.mu.Unlock()
	for i := len(stops) - 1; i >= 0; i-- {
		stops[i]()
	}
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// startProcess runs bin with args (output to logPath) and stops it with SIGTERM (SIGKILL after 20 s) when the
// bench ends; it dies with the bench if the bench is killed.
func (s *stack) startProcess(logPath string, env []string, bin string, args ...string) (pid int, err error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return 0, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return 0, fmt.Errorf("start %s: %w", bin, err)
	}
	s.push(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		logf.Close()
	})
	return cmd.Process.Pid, nil
}

// waitHTTP waits until GET u answers one of the statuses ok (any status when ok is empty).
func waitHTTP(u, logPath string, ok ...int) error {
	deadline := time.Now().Add(90 * time.Second)
	for {
		resp, err := http.Get(u)
		if err == nil {
			resp.Body.Close()
			if len(ok) == 0 {
				return nil
			}
			for _, s := range ok {
				if resp.StatusCode == s {
					return nil
				}
			}
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(logPath)
			return fmt.Errorf("%s not ready within 90s: %v\n%s", u, err, tail(b, 4000))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// goBuild builds pkg (relative to dir) into out.
func goBuild(dir, pkg, out string) error {
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Dir = dir
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %v\n%s", pkg, err, b)
	}
	return nil
}

// startDistribution runs cmd/distribution-fsync (distribution v3 on its filesystem driver with Berth's fsyncs).
func (s *stack) startDistribution(bin, dir string) (*target, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	logPath := filepath.Join(dir, "distribution.log")
	pid, err := s.startProcess(logPath, nil, bin, "-addr", addr, "-root", filepath.Join(dir, "data"))
	if err != nil {
		return nil, err
	}
	base := "http://" + addr
	if err := waitHTTP(base+"/v2/", logPath, http.StatusOK); err != nil {
		return nil, err
	}
	return &target{name: "distribution", bases: []string{base}, pids: []int{pid}}, nil
}

// startServe runs one `berth serve` with its data dir under dir and returns its URL and PID once ready.
func (s *stack) startServe(bin, dir string, env []string, args ...string) (string, int, error) {
	addr, err := freeAddr()
	if err != nil {
		return "", 0, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", 0, err
	}
	logPath := filepath.Join(dir, "berth.log")
	env = append([]string{"BERTH_ADMIN_PASSWORD=" + adminPassword}, env...)
	args = append([]string{"serve", "--data-dir", filepath.Join(dir, "data"), "--addr", addr, "--log-level", "error"}, args...)
	pid, err := s.startProcess(logPath, env, bin, args...)
	if err != nil {
		return "", 0, err
	}
	base := "http://" + addr
	return base, pid, waitHTTP(base+"/readyz", logPath, http.StatusOK)
}

// createNamespace makes the namespace "bench", whose repositories are made on push.
func createNamespace(base string) error {
	req, _ := http.NewRequest("POST", base+"/api/v1/namespaces", strings.NewReader(`{"name":"bench","auto_create_repo":true}`))
	req.SetBasicAuth(adminUser, adminPassword)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	return expectStatus(resp, err, http.StatusCreated)
}

// startBerth runs n `berth serve` processes with extra args; with n > 1 they must share a store, a queue and a
// bucket (args). The first creates the administrator and the namespace before the others start.
func (s *stack) startBerth(name, bin, dir string, n int, env []string, args ...string) (*target, error) {
	t := &target{name: name, user: adminUser, password: adminPassword}
	if n > 1 { // replicas share one master key, as they must (the first process on a store records it)
		key := make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return nil, err
		}
		env = append(slices.Clone(env), "BERTH_MASTER_KEY="+hex.EncodeToString(key))
	}
	for i := range n {
		base, pid, err := s.startServe(bin, filepath.Join(dir, fmt.Sprintf("replica%d", i)), env, args...)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		if i == 0 {
			if err := createNamespace(base); err != nil {
				return nil, fmt.Errorf("%s: namespace: %w", name, err)
			}
		}
		t.bases, t.pids = append(t.bases, base), append(t.pids, pid)
	}
	return t, t.login()
}

// login fetches a bearer token from each endpoint's own token service, as a client does after the registry's
// challenge (so it works whether replicas share their signing key or not).
func (t *target) login() error {
	if t.user == "" {
		t.tokens = make([]string, len(t.bases))
		return nil
	}
	var toks []string
	for _, base := range t.bases {
		tok, err := fetchToken(base, t.user, t.password)
		if err != nil {
			return fmt.Errorf("%s: %w", t.name, err)
		}
		toks = append(toks, tok)
	}
	t.tokens = toks
	return nil
}

func fetchToken(base, user, password string) (string, error) {
	resp, err := http.Get(base + "/v2/")
	if err != nil {
		return "", err
	}
	resp.Body.Close()
	ch := resp.Header.Get("WWW-Authenticate")
	realm, service := challengeParam(ch, "realm"), challengeParam(ch, "service")
	if realm == "" {
		return "", fmt.Errorf("no bearer challenge from %s: %q", base, ch)
	}
	q := url.Values{"service": {service}, "scope": {"repository:" + repo + ":pull,push"}}
	req, _ := http.NewRequest("GET", realm+"?"+q.Encode(), nil)
	req.SetBasicAuth(user, password)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var tok struct {
		Token string `json:"token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil || tok.Token == "" {
		return "", fmt.Errorf("token from %s: %s %v", realm, resp.Status, err)
	}
	return tok.Token, nil
}

// challengeParam reads one parameter of a `Bearer realm="…",service="…"` challenge.
func challengeParam(ch, key string) string {
	i := strings.Index(ch, key+`="`)
	if i < 0 {
		return ""
	}
	rest := ch[i+len(key)+2:]
	if j := strings.IndexByte(rest, '"'); j >= 0 {
		return rest[:j]
	}
	return ""
}

// startS3 runs versitygw (posix backend) as the tests do and returns it and its PID.
func (s *stack) startS3(dir string) (*s3test.Server, int, error) {
	bin, err := s3test.Bin()
	if err != nil {
		return nil, 0, err
	}
	data := filepath.Join(dir, "data")
	if err := os.MkdirAll(data, 0o755); err != nil {
		return nil, 0, err
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, 0, err
	}
	logPath := filepath.Join(dir, "versitygw.log")
	pid, err := s.startProcess(logPath, nil, bin, "--quiet", "--access", s3test.AccessKey, "--secret", s3test.SecretKey, "--port", addr, "posix", data)
	if err != nil {
		return nil, 0, err
	}
	srv := &s3test.Server{Endpoint: "http://" + addr, Dir: data}
	return srv, pid, waitHTTP(srv.Endpoint+"/", logPath) // any answer (403 to an anonymous request) means it listens
}

func createBucket(srv *s3test.Server, name string) error {
	d, err := s3driver.New(srv.Config(name))
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err = d.Client().CreateBucket(ctx, &s3.CreateBucketInput{Bucket: &name})
	return err
}

// s3Args are `berth serve`'s flags and environment for bucket on srv.
func s3Args(srv *s3test.Server, bucket string) (env, args []string) {
	return []string{"BERTH_S3_ACCESS_KEY=" + s3test.AccessKey, "BERTH_S3_SECRET_KEY=" + s3test.SecretKey},
		[]string{"--s3-endpoint", srv.Endpoint, "--s3-bucket", bucket, "--s3-region", "us-east-1", "--s3-path-style"}
}

// startShared runs the store (embedded FerretDB) and the queue (redis-server) that replicas share.
func (s *stack) startShared(dir string) (mongoURI, redisURI string, err error) {
	m, err := embedded.StartMongo(context.Background(), filepath.Join(dir, "mongo"), slog.New(slog.DiscardHandler))
	if err != nil {
		return "", "", err
	}
	s.push(m.Stop)
	r, err := embedded.StartRedisServer(context.Background(), filepath.Join(dir, "redis"))
	if err != nil {
		return "", "", fmt.Errorf("redis-server (apt-get install -y redis-server): %w", err)
	}
	s.push(r.Stop)
	return m.URI, r.URI(), nil
}
