package apptest

import (
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// BuildBerth compiles cmd/berth into a temporary directory and returns its path.
func BuildBerth(t testing.TB) string {
	t.Helper()
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("go is not on PATH: %v", err)
	}
	out := filepath.Join(t.TempDir(), "berth")
	start := time.Now()
	if msg, err := exec.Command(gobin, "build", "-o", out, "github.com/berth-dev/berth/cmd/berth").CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/berth: %v\n%s", err, msg)
	}
	t.Logf("built berth in %v", time.Since(start).Round(time.Millisecond))
	return out
}

// Process is a `berth serve` or `berth worker` running as a process of its own, with its own data dir, until
// the test ends. For serve, the embedded Instance has its URL and Host (Admin and Call work; App is nil).
type Process struct {
	*Instance
	Cmd *exec.Cmd
	Log string // its standard output and error
	// Exited is closed when the process has exited.
	Exited chan struct{}
}

// StartProcess runs bin with args ("serve" or "worker" first, then flags; --data-dir is added unless args
// name one, and --addr for serve) and env added to the test's environment. A serve process is returned once /readyz answers 200.
func StartProcess(t testing.TB, bin string, env []string, args ...string) *Process {
	t.Helper()
	dir := t.TempDir()
	p := &Process{Instance: &Instance{DataDir: filepath.Join(dir, "data")}, Log: filepath.Join(dir, args[0]+".log"),
		Exited: make(chan struct{})}
	if i := slices.Index(args, "--data-dir"); i >= 0 && i+1 < len(args) {
		p.DataDir = args[i+1] // a process sharing another's data dir (its embedded store)
	} else {
		args = append(args, "--data-dir", p.DataDir)
	}
	if args[0] == "serve" {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		p.Host = ln.Addr().String()
		p.URL = "http://" + p.Host
		ln.Close()
		args = append(args, "--addr", p.Host)
	}
	logf, err := os.Create(p.Log)
	if err != nil {
		t.Fatal(err)
	}
	p.Cmd = exec.Command(bin, args...)
	p.Cmd.Env = append(os.Environ(), env...)
	p.Cmd.Stdout, p.Cmd.Stderr = logf, logf
	p.Cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.Cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = p.Cmd.Wait(); logf.Close(); close(p.Exited) }()
	t.Cleanup(func() {
		_ = p.Cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.Exited:
		case <-time.After(20 * time.Second):
			_ = p.Cmd.Process.Kill()
			<-p.Exited
		}
		if t.Failed() {
			t.Logf("berth %s (pid %d) log, last lines:\n%s", args[0], p.Cmd.Process.Pid, p.Tail(80))
		}
	})
	if args[0] != "serve" {
		return p
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(p.URL + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return p
			}
		}
		select {
		case <-p.Exited:
			t.Fatalf("berth serve exited before it was ready:\n%s", p.Tail(80))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("berth serve not ready within 60s: %v\n%s", err, p.Tail(80))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Kill ends the process with SIGKILL, as a crash or the OOM killer would, and waits for it.
func (p *Process) Kill() {
	_ = p.Cmd.Process.Kill()
	<-p.Exited
}

// Pid is the process's id.
func (p *Process) Pid() int { return p.Cmd.Process.Pid }

// Tail returns the last n lines of the process's log.
func (p *Process) Tail(n int) string {
	data, _ := os.ReadFile(p.Log)
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
