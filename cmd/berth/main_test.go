package main

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// These tests run the berth binary as users do: built with `go build`, started as a process, stopped by signal.

var (
	binMu   sync.Mutex
	binPath = map[string]string{}
)

// berthBin builds ./cmd/berth with the given build tags, once per test binary.
func berthBin(t *testing.T, tags string) string {
	t.Helper()
	binMu.Lock()
	defer binMu.Unlock()
	if p, ok := binPath[tags]; ok {
		return p
	}
	dir, err := os.MkdirTemp("", "berth-bin-")
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "berth")
	args := []string{"build", "-o", out}
	if tags != "" {
		args = append(args, "-tags", tags)
	}
	start := time.Now()
	if msg, err := exec.Command("go", append(args, ".")...).CombinedOutput(); err != nil {
		t.Fatalf("go build -tags %q: %v\n%s", tags, err, msg)
	}
	t.Logf("built berth (tags %q) in %v", tags, time.Since(start).Round(time.Second))
	binPath[tags] = out
	return out
}

// env is the test's environment without BERTH_ variables (a developer's own settings), plus extra.
func env(extra ...string) []string {
	var out []string
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "BERTH_") {
			out = append(out, e)
		}
	}
	return append(out, extra...)
}

// syncBuf is an output buffer safe to read while the process writes it.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

type server struct {
	cmd  *exec.Cmd
	addr string
	out  *syncBuf
	done chan error
}

// startServe runs `berth serve` on dataDir until it is stopped or the test ends.
func startServe(t *testing.T, dataDir string, extraEnv ...string) *server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	s := &server{addr: addr, out: &syncBuf{}, done: make(chan error, 1)}
	s.cmd = exec.Command(berthBin(t, ""), "serve", "--data-dir", dataDir, "--addr", addr, "--log-level", "warn")
	s.cmd.Env = env(extraEnv...)
	s.cmd.Stdout, s.cmd.Stderr = s.out, s.out
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s.done <- s.cmd.Wait() }()
	t.Cleanup(func() {
		if s.cmd.ProcessState == nil {
			_ = s.cmd.Process.Kill()
			<-s.done
		}
		if t.Failed() {
			t.Logf("berth serve output:\n%s", s.out)
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return s
			}
		}
		select {
		case err := <-s.done:
			t.Fatalf("berth serve exited: %v\n%s", err, s.out)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("berth serve not ready within 60s: %v\n%s", err, s.out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop sends SIGTERM and waits for a clean exit.
func (s *server) stop(t *testing.T) {
	t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-s.done:
		if err != nil {
			t.Fatalf("berth serve exited with %v after SIGTERM:\n%s", err, s.out)
		}
	case <-time.After(45 * time.Second):
		t.Fatalf("berth serve still running 45s after SIGTERM:\n%s", s.out)
	}
}

// status is the answer to an authenticated API GET.
func (s *server) status(t *testing.T, user, pass, path string) int {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+s.addr+path, nil)
	req.SetBasicAuth(user, pass)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

var printedPassword = regexp.MustCompile(`Berth administrator created: user admin, password (\S+)`)

// TestAdminPassword: without BERTH_ADMIN_PASSWORD the first start prints a random administrator password, once
// (not on the next start), and it logs in; `berth admin reset-password` sets a new random one (or
// BERTH_NEW_PASSWORD), after which only the new one logs in.
func TestAdminPassword(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	s := startServe(t, data)
	m := printedPassword.FindAllStringSubmatch(s.out.String(), -1)
	if len(m) != 1 || len(m[0][1]) < 16 {
		t.Fatalf("first start printed %d passwords:\n%s", len(m), s.out)
	}
	pw := m[0][1]
	if c := s.status(t, "admin", pw, "/api/v1/namespaces"); c != 200 {
		t.Fatalf("admin with the printed password: %d", c)
	}
	if c := s.status(t, "admin", pw+"x", "/api/v1/namespaces"); c != 401 {
		t.Fatalf("admin with a wrong password: %d", c)
	}
	s.stop(t)

	s = startServe(t, data)
	if out := s.out.String(); strings.Contains(out, "administrator created") || strings.Contains(out, pw) {
		t.Fatalf("the second start printed the password again:\n%s", out)
	}
	if c := s.status(t, "admin", pw, "/api/v1/namespaces"); c != 200 {
		t.Fatalf("admin after a restart: %d", c)
	}
	s.stop(t)

	reset := func(extra ...string) string {
		cmd := exec.Command(berthBin(t, ""), "admin", "reset-password", "--data-dir", data, "admin")
		cmd.Env = env(extra...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("reset-password: %v\n%s", err, out)
		}
		m := regexp.MustCompile(`password of admin set to: (\S+)\n`).FindSubmatch(out)
		if m == nil {
			t.Fatalf("reset-password printed:\n%s", out)
		}
		return string(m[1])
	}
	random := reset()
	if random == pw || len(random) < 16 {
		t.Fatalf("reset-password chose %q (old %q)", random, pw)
	}
	s = startServe(t, data)
	if c := s.status(t, "admin", pw, "/api/v1/namespaces"); c != 401 {
		t.Errorf("the old password after reset-password: %d", c)
	}
	if c := s.status(t, "admin", random, "/api/v1/namespaces"); c != 200 {
		t.Errorf("the new password: %d", c)
	}
	s.stop(t)

	if got := reset("BERTH_NEW_PASSWORD=chosen-by-the-operator"); got != "chosen-by-the-operator" {
		t.Fatalf("reset-password with BERTH_NEW_PASSWORD set %q", got)
	}
	s = startServe(t, data)
	if c := s.status(t, "admin", "chosen-by-the-operator", "/api/v1/namespaces"); c != 200 {
		t.Errorf("the chosen password: %d", c)
	}
	if c := s.status(t, "admin", random, "/api/v1/namespaces"); c != 401 {
		t.Errorf("the previous password: %d", c)
	}
	s.stop(t)

	cmd := exec.Command(berthBin(t, ""), "admin", "reset-password", "--data-dir", data, "nobody")
	cmd.Env = env()
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "user nobody") {
		t.Errorf("reset-password of an unknown user: %v\n%s", err, out)
	}
}

// TestGracefulSIGTERM: a request in flight when SIGTERM arrives (its body still coming) is answered in full,
// and a task in flight (a trigger delivery waiting on its receiver) finishes; the process then exits 0, and
// after a restart the request's namespace is there and the delivery is recorded TRIGGERED on its first attempt.
func TestGracefulSIGTERM(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	const pw = "sigterm-admin-password"
	env := []string{"BERTH_ADMIN_PASSWORD=" + pw, "BERTH_TRIGGER_ALLOW_CIDR=127.0.0.0/8"}
	s := startServe(t, data, env...)

	arrived, release := make(chan struct{}, 1), make(chan struct{})
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		<-release
		fmt.Fprint(w, `{"ok":true}`)
	}))
	defer rcv.Close()
	defer func() {
		select {
		case <-release:
		default:
			close(release)
		}
	}()
	s.api(t, pw, "POST", "/api/v1/namespaces", `{"name":"team"}`, 201)
	s.api(t, pw, "POST", "/api/v1/namespaces/team/repositories", `{"name":"app"}`, 201)
	trig := s.api(t, pw, "POST", "/api/v1/repositories/team/app/triggers", fmt.Sprintf(`{"name":"slow","url":%q}`, rcv.URL+"/hook"), 201)
	img, err := random.Image(1024, 1)
	if err != nil {
		t.Fatal(err)
	}
	ref, _ := name.ParseReference(s.addr+"/team/app:v1", name.Insecure)
	if err := remote.Write(ref, img, remote.WithAuth(&authn.Basic{Username: "admin", Password: pw})); err != nil {
		t.Fatal(err)
	}
	select {
	case <-arrived:
	case <-time.After(30 * time.Second):
		t.Fatalf("the trigger delivery never reached its receiver:\n%s", s.out)
	}

	conn, err := net.Dial("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	body := `{"name":"inflight"}`
	head := fmt.Sprintf("POST /api/v1/namespaces HTTP/1.1\r\nHost: %s\r\nAuthorization: Basic %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n",
		s.addr, basicAuth("admin", pw), len(body))
	if _, err := io.WriteString(conn, head+body[:5]); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second) // shutting down, waiting for the request and the delivery
	select {
	case err := <-s.done:
		t.Fatalf("berth exited (%v) with a request and a task in flight:\n%s", err, s.out)
	default:
	}
	close(release)
	if _, err := io.WriteString(conn, body[5:]); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("the in-flight request got no answer: %v", err)
	}
	ans, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 201 {
		t.Fatalf("the in-flight request: %s %s", resp.Status, ans)
	}
	conn.Close()
	select {
	case err := <-s.done:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, s.out)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("berth still running 30s after SIGTERM, its request answered:\n%s", s.out)
	}
	s = startServe(t, data, env...)
	if c := s.status(t, "admin", pw, "/api/v1/namespaces/inflight"); c != 200 {
		t.Errorf("the namespace created during shutdown, after a restart: %d", c)
	}
	recs := s.api(t, pw, "GET", "/api/v1/repositories/team/app/triggers/"+trig["id"].(string)+"/records", "", 200)
	items, _ := recs["items"].([]any)
	if len(items) != 1 {
		t.Fatalf("trigger records after the restart: %v", recs)
	}
	if rec := items[0].(map[string]any); rec["status"] != "TRIGGERED" || rec["attempts"] != float64(1) || rec["status_code"] != float64(200) {
		t.Errorf("the delivery in flight at SIGTERM: %v", rec)
	}
	s.stop(t)
}

// api sends an API request as the administrator and decodes the JSON answer, failing on another status.
func (s *server) api(t *testing.T, pw, method, path, body string, want int) map[string]any {
	t.Helper()
	req, _ := http.NewRequest(method, "http://"+s.addr+path, strings.NewReader(body))
	req.SetBasicAuth("admin", pw)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, data)
	}
	var out map[string]any
	_ = json.Unmarshal(data, &out)
	return out
}

// TestNoembedBuild: `go build -tags noembed` has no embedded FerretDB or Redis, and refuses to start without
// --mongo-uri and --redis-addr, saying so.
func TestNoembedBuild(t *testing.T) {
	bin := berthBin(t, "noembed")
	for _, args := range [][]string{
		{},
		{"--redis-addr", "127.0.0.1:1"},
	} {
		cmd := exec.Command(bin, append([]string{"serve", "--data-dir", t.TempDir(), "--addr", "127.0.0.1:0"}, args...)...)
		cmd.Env = env()
		out, err := cmd.CombinedOutput()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
			t.Fatalf("serve %v: %v, want exit status 1\n%s", args, err, out)
		}
		if !strings.Contains(string(out), "berth: ") || !strings.Contains(string(out), "built with -tags noembed): set --mongo-uri and --redis-addr") {
			t.Errorf("serve %v said:\n%s", args, out)
		}
	}
	out, err := exec.Command("go", "version", "-m", bin).CombinedOutput()
	if err != nil {
		t.Fatal(err)
	}
	for _, mod := range []string{"github.com/FerretDB/FerretDB", "github.com/alicebob/miniredis"} {
		if strings.Contains(string(out), mod) {
			t.Errorf("the noembed binary links %s", mod)
		}
	}
}

func basicAuth(user, pass string) string {
	return base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))
}
