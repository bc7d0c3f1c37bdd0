package buildkit

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/moby/buildkit/client"
)

// ErrNoBuilder means this machine cannot run builds itself.
var ErrNoBuilder = errors.New("no builder: install buildkitd and runc (task install-buildkit) or set --buildkit-addr")

// DaemonConfig configures a buildkitd child process.
type DaemonConfig struct {
	// Binary is the buildkitd executable; empty means FindBinary.
	Binary string
	// RootDir holds BuildKit's state (cache, snapshots) and the generated
	// buildkitd.toml. Required.
	RootDir string
	// SocketPath is the unix socket to listen on. Empty means
	// RootDir/buildkitd.sock when that is short enough for a unix socket,
	// else /tmp/berth-bk-<hash of RootDir>/buildkitd.sock.
	SocketPath string
	// InsecureRegistries are host:port registries reached over plain HTTP
	// (or HTTPS without verification). 127.0.0.1 and localhost already use
	// plain HTTP by default.
	InsecureRegistries []string
	// GCKeepBytes caps the local build cache; 0 keeps BuildKit's default
	// (a share of the disk).
	GCKeepBytes int64
	// LogWriter receives the daemon's log (stderr); nil discards it.
	LogWriter io.Writer
	// Debug turns on buildkitd's debug log.
	Debug bool
	// AllowCIDRs are IPv4 ranges builds may reach although private (--build-allow-cidr). Builds run in a
	// network namespace of their own (see CheckSandbox) and never reach the host itself.
	AllowCIDRs []netip.Prefix
	// Registries are Berth's own registries (host:port, as builds name them in FROM and as the push target):
	// buildkitd runs in a network namespace of its own, and reaches each of these, for the registry API only,
	// through a path Berth opens into that namespace (AllowRegistry adds one later). Every other address that
	// a refused range holds stays out of reach of everything BuildKit fetches.
	Registries []string
}

// Daemon is a running buildkitd child process.
type Daemon struct {
	cmd     *exec.Cmd
	addr    string
	root    string
	dir     string // socket dir we created, removed on Stop
	tail    *tailBuffer
	sandbox *sandbox

	done    chan struct{} // closed when the process has exited
	waitErr error

	stopOnce sync.Once
	stopErr  error
}

// maxSocketPath keeps unix socket paths under the kernel's 108-byte limit
// (sun_path), with room for the terminating NUL.
const maxSocketPath = 100

// readyTimeout bounds how long Start waits for the daemon to answer.
const readyTimeout = 30 * time.Second

// Start writes RootDir/buildkitd.toml, starts buildkitd and waits until it
// lists a worker. ctx bounds the wait only: the daemon runs until Stop (or
// until this process dies: it gets SIGTERM then).
func Start(ctx context.Context, cfg DaemonConfig) (*Daemon, error) {
	if cfg.RootDir == "" {
		return nil, errors.New("buildkitd: RootDir is required")
	}
	root, err := filepath.Abs(cfg.RootDir)
	if err != nil {
		return nil, err
	}
	if cfg.Binary == "" {
		if cfg.Binary, err = FindBinary(); err != nil {
			return nil, err
		}
	}
	cniBin, err := CheckSandbox()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, fmt.Errorf("buildkitd: %w", err)
	}

	d := &Daemon{root: root, tail: newTailBuffer(8 << 10), done: make(chan struct{})}
	sock := cfg.SocketPath
	if sock == "" {
		sock, d.dir = defaultSocketPath(root)
	}
	if len(sock) > maxSocketPath {
		return nil, fmt.Errorf("buildkitd: socket path %s is longer than %d bytes (unix socket limit)", sock, maxSocketPath)
	}
	if err := os.MkdirAll(filepath.Dir(sock), 0o700); err != nil {
		return nil, fmt.Errorf("buildkitd: socket dir: %w", err)
	}
	if d.dir != "" || filepath.Dir(sock) == root {
		// The socket is the daemon's whole API: only root may reach it, whatever the mode it gets.
		if err := os.Chmod(filepath.Dir(sock), 0o700); err != nil {
			return nil, fmt.Errorf("buildkitd: socket dir: %w", err)
		}
	}
	// A socket left behind by a daemon that was killed makes buildkitd fail.
	if fi, err := os.Lstat(sock); err == nil && fi.Mode()&os.ModeSocket != 0 {
		os.Remove(sock)
	}
	d.addr = "unix://" + sock

	// The subnet is chosen, and the bridge made (by the daemon, before it is ready), under a host-wide lock.
	unlock, err := subnetLock()
	if err != nil {
		return nil, fmt.Errorf("buildkitd: %w", err)
	}
	defer unlock()
	if d.sandbox, err = newSandbox(root, cniBin, cfg.AllowCIDRs); err != nil {
		return nil, err
	}
	if err := d.sandbox.up(ctx); err != nil {
		_ = d.sandbox.down()
		return nil, err
	}
	for _, r := range cfg.Registries {
		if err := d.sandbox.allowRegistry(ctx, r); err != nil {
			_ = d.sandbox.down()
			return nil, err
		}
	}

	confPath := filepath.Join(root, "buildkitd.toml")
	if err := os.WriteFile(confPath, []byte(daemonConfigTOML(cfg, root, d.addr, d.sandbox)), 0o600); err != nil {
		_ = d.sandbox.down()
		return nil, fmt.Errorf("buildkitd: write config: %w", err)
	}

	args := []string{"--config", confPath, "--root", root, "--addr", d.addr}
	if cfg.Debug {
		args = append(args, "--debug")
	}
	// buildkitd runs in the sandbox's namespace.
	cmd := d.sandbox.command(cfg.Binary, args...)
	var logw io.Writer = d.tail
	if cfg.LogWriter != nil {
		logw = io.MultiWriter(d.tail, cfg.LogWriter)
	}
	cmd.Stdout, cmd.Stderr = logw, logw
	cmd.SysProcAttr = &syscall.SysProcAttr{
		// Own process group: a terminal's Ctrl-C reaches us, and we stop
		// the daemon in order; but if we die, so does the daemon.
		Setpgid:   true,
		Pdeathsig: syscall.SIGTERM,
	}
	if err := cmd.Start(); err != nil {
		_ = d.sandbox.down()
		return nil, fmt.Errorf("buildkitd: start %s: %w", cfg.Binary, err)
	}
	d.cmd = cmd
	go func() {
		d.waitErr = cmd.Wait()
		close(d.done)
	}()

	if err := d.waitReady(ctx); err != nil {
		d.Stop()
		return nil, err
	}
	return d, nil
}

func (d *Daemon) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	var lastErr error
	for {
		select {
		case <-d.done:
			return fmt.Errorf("buildkitd exited before it was ready (%v):\n%s", d.waitErr, d.tail.String())
		default:
		}
		lastErr = ping(ctx, d.addr)
		if lastErr == nil {
			return nil
		}
		select {
		case <-d.done:
		case <-ctx.Done():
			return fmt.Errorf("buildkitd not ready after %v at %s (%v); its log ends with:\n%s",
				readyTimeout, d.addr, lastErr, d.tail.String())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// ping succeeds when the daemon at addr answers and has a worker.
func ping(ctx context.Context, addr string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	c, err := client.New(ctx, addr)
	if err != nil {
		return err
	}
	defer c.Close()
	ws, err := c.ListWorkers(ctx)
	if err != nil {
		return err
	}
	if len(ws) == 0 {
		return errors.New("no workers")
	}
	return nil
}

// defaultSocketPath is root/buildkitd.sock when short enough for a unix
// socket, else a socket in a per-root directory under the temp dir, which
// is returned as dir so Stop can remove it.
func defaultSocketPath(root string) (sock, dir string) {
	sock = filepath.Join(root, "buildkitd.sock")
	if len(sock) <= maxSocketPath {
		return sock, ""
	}
	sum := sha256.Sum256([]byte(root))
	dir = filepath.Join(os.TempDir(), "berth-bk-"+hex.EncodeToString(sum[:6]))
	return filepath.Join(dir, "buildkitd.sock"), dir
}

// AllowRegistry opens a path from buildkitd's namespace to another registry of Berth's (host:port), as
// DaemonConfig.Registries does at start; the returned func closes it.
func (d *Daemon) AllowRegistry(ctx context.Context, hostport string) (func(), error) {
	if err := d.sandbox.allowRegistry(ctx, hostport); err != nil {
		return nil, err
	}
	return func() { d.sandbox.dropRegistry(hostport) }, nil
}

// Done is closed when the daemon process has exited, whether by Stop or
// on its own (a supervisor can then restart it).
func (d *Daemon) Done() <-chan struct{} { return d.done }

// Addr is the daemon's address for client.New, e.g. unix:///…/buildkitd.sock.
func (d *Daemon) Addr() string { return d.addr }

// Stop sends SIGTERM, waits up to 10 s, then kills the daemon. BuildKit
// exits with status 1 on SIGTERM; that is not an error.
func (d *Daemon) Stop() error {
	d.stopOnce.Do(func() {
		d.stopErr = d.stop(10 * time.Second)
		unmountUnder(filepath.Join(d.root, "net"))
		if d.dir != "" {
			os.RemoveAll(d.dir)
		}
		// After the daemon: it tears its build namespaces down on the bridge first.
		if err := d.sandbox.down(); err != nil && d.stopErr == nil {
			d.stopErr = err
		}
	})
	return d.stopErr
}

// unmountUnder detaches what is still mounted below dir: the network namespaces of buildkitd's CNI pool
// (DIR/net/cni/ID, bind mounts) that a daemon which exited, or was killed, before tearing its pool down leaves
// behind. They would keep the root from being removed ("device or resource busy").
func unmountUnder(dir string) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		// The mount point is the fifth field, with spaces and the like octal-escaped.
		mp := strings.NewReplacer(`\040`, " ", `\011`, "\t", `\012`, "\n", `\134`, `\`).Replace(f[4])
		if strings.HasPrefix(mp, dir+"/") {
			_ = syscall.Unmount(mp, syscall.MNT_DETACH)
		}
	}
}

func (d *Daemon) stop(grace time.Duration) error {
	select {
	case <-d.done:
		return d.exitErr(false)
	default:
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
		return d.exitErr(true)
	case <-time.After(grace):
	}
	_ = d.cmd.Process.Kill()
	<-d.done
	return fmt.Errorf("buildkitd did not stop within %v of SIGTERM; killed", grace)
}

func (d *Daemon) exitErr(signaled bool) error {
	var ee *exec.ExitError
	if d.waitErr == nil {
		return nil
	}
	if signaled && errors.As(d.waitErr, &ee) && (ee.ExitCode() == 1 || ee.ExitCode() == -1) {
		// SIGTERM makes buildkitd exit 1 (or die of the signal).
		return nil
	}
	return fmt.Errorf("buildkitd exited: %v:\n%s", d.waitErr, d.tail.String())
}

// daemonConfigTOML renders buildkitd.toml. Values are quoted with strconv,
// which produces valid TOML basic strings for paths and host names.
func daemonConfigTOML(cfg DaemonConfig, root, addr string, sb *sandbox) string {
	var b strings.Builder
	q := strconv.Quote
	fmt.Fprintf(&b, "# Written by Berth; changes are overwritten on start.\nroot = %s\n\n", q(root))
	fmt.Fprintf(&b, "[grpc]\n  address = [%s]\n\n", q(addr))
	b.WriteString("[worker.oci]\n  enabled = true\n  gc = true\n")
	if cfg.GCKeepBytes > 0 {
		fmt.Fprintf(&b, "  reservedSpace = %d\n  maxUsedSpace = %d\n", cfg.GCKeepBytes/2, cfg.GCKeepBytes)
	}
	if sb != nil {
		b.WriteString(sb.workerTOML())
	}
	b.WriteString("\n[worker.containerd]\n  enabled = false\n")
	if sb != nil {
		b.WriteString(sb.dnsTOML())
	}
	for _, host := range cfg.InsecureRegistries {
		fmt.Fprintf(&b, "\n[registry.%s]\n  http = true\n  insecure = true\n", q(host))
	}
	return b.String()
}

// FindBinary finds buildkitd beside the running executable, in the bin/
// directory of the enclosing Go module (the repository's, for development
// and tests), then on PATH, and checks that builds can run here: runc on
// PATH and root. The error matches ErrNoBuilder.
func FindBinary() (string, error) {
	var candidates []string
	if exe, err := os.Executable(); err == nil {
		candidates = append(candidates, filepath.Join(filepath.Dir(exe), "buildkitd"))
	}
	if dir, err := os.Getwd(); err == nil {
		if root := moduleRoot(dir); root != "" {
			candidates = append(candidates, filepath.Join(root, "bin", "buildkitd"))
		}
	}
	var bin string
	for _, c := range candidates {
		if isExecutable(c) {
			bin = c
			break
		}
	}
	if bin == "" {
		p, err := exec.LookPath("buildkitd")
		if err != nil {
			return "", fmt.Errorf("%w: buildkitd not found in %s or on PATH", ErrNoBuilder, strings.Join(candidates, ", "))
		}
		bin = p
	}
	if _, err := exec.LookPath("runc"); err != nil {
		if _, err2 := exec.LookPath("buildkit-runc"); err2 != nil {
			return "", fmt.Errorf("%w: runc not found on PATH", ErrNoBuilder)
		}
	}
	if os.Geteuid() != 0 {
		return "", fmt.Errorf("%w: buildkitd with the runc worker needs root (running as uid %d)", ErrNoBuilder, os.Geteuid())
	}
	return bin, nil
}

// moduleRoot returns the nearest directory at or above dir holding go.mod,
// or "".
func moduleRoot(dir string) string {
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func newTailBuffer(max int) *tailBuffer { return &tailBuffer{max: max} }

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = t.buf[over:]
		if i := bytes.IndexByte(t.buf, '\n'); i >= 0 {
			t.buf = t.buf[i+1:]
		}
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.TrimRight(string(t.buf), "\n")
}
