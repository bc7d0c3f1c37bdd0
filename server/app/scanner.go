package app

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/berth-dev/berth/pipeline"
	"github.com/berth-dev/berth/workers"
	"github.com/berth-dev/berth/workers/scandb"
)

// Scanner child and DB watch bounds.
const (
	scannerStartTimeout = time.Minute
	scannerStopTimeout  = 10 * time.Second
	// rescanWindow and rescanMax bound the rescan when the vulnerability DB changes.
	rescanWindow = 7 * 24 * time.Hour
	rescanMax    = 500
)

// scanning is this instance's share of the scan pipeline: the gate the registry asks on every manifest pull,
// the scan runner of the workers, and the scanner they call — the berth-scanner at --scanner-addr, or a
// berth-scanner child started on the first scan that needs it (all-in-one mode).
type scanning struct {
	app             *App
	creds           *pipeline.ScanCredentials
	gate            *pipeline.Gate
	scans           *pipeline.Scans
	runner          *workers.ScanRunner
	dbDir, cacheDir string
	bin             string // "" when no berth-scanner was found
	fetch           *dbFetcher

	mu      sync.Mutex
	child   *scannerChild
	logFile *os.File
}

func (a *App) newScanning() (*scanning, error) {
	c := a.Cfg
	s := &scanning{app: a, creds: pipeline.NewScanCredentials(a.Box.Derive("scan-credentials")), gate: pipeline.NewGate(a.Store),
		dbDir: c.ScanDBDir, cacheDir: filepath.Join(c.DataDir, "scan-cache")}
	// The instance signing key's public half (SPEC §15) satisfies require_signature.
	s.gate.InstanceKey = a.instancePublicKey
	if s.dbDir == "" {
		s.dbDir = filepath.Join(c.DataDir, "trivy")
	}
	s.fetch = &dbFetcher{dir: s.dbDir, remote: scandb.Remote{Repository: c.ScanDBRepository, Username: c.ScanDBUsername,
		Password: os.Getenv("BERTH_SCAN_DB_PASSWORD"), Insecure: c.ScanDBInsecure}}
	u, err := c.internalURL()
	if err != nil {
		return nil, err
	}
	if c.ScannerAddr == "" {
		bin, err := findScanner(c.ScannerBin)
		if err != nil && c.ScannerBin != "" {
			return nil, err
		}
		s.bin = bin
		if bin == "" {
			a.Logger.Warn("no berth-scanner found: every scan will end FAILED; " + workers.NoScannerMessage)
		}
	}
	log := a.Logger.With("component", "scan")
	s.scans = &pipeline.Scans{Store: a.Store, Queue: a.Enqueue, Gate: s.gate, Logger: log}
	s.runner = &workers.ScanRunner{Scans: s.scans, Scanner: s, Credentials: s.creds, Registry: u.Host,
		Insecure: u.Scheme == "http", Logger: log}
	if a.pipe != nil && a.pipe.runner != nil {
		// A build ends BLOCKED when the security policy blocks the image it pushed.
		a.pipe.runner.AfterPush = s.scans.AfterBuildPush
		// Signed builds attest their images' SBOMs, which the scanner makes.
		a.pipe.runner.SBOMScanner = s
	}
	a.stops = append(a.stops, s.close)
	return s, nil
}

// findScanner looks for berth-scanner: --scanner-bin, beside this executable, in bin/ of the source tree
// when run from it (go run, go test), then on PATH. "" without an error when there is none.
func findScanner(flagBin string) (string, error) {
	if flagBin != "" {
		if !isExecutable(flagBin) {
			return "", fmt.Errorf("--scanner-bin %s is not an executable file; build it with `task build-scanner`", flagBin)
		}
		return flagBin, nil
	}
	if exe, err := os.Executable(); err == nil {
		if p := filepath.Join(filepath.Dir(exe), "berth-scanner"); isExecutable(p) {
			return p, nil
		}
	}
	if root := sourceRoot(); root != "" {
		if p := filepath.Join(root, "bin", "berth-scanner"); isExecutable(p) {
			return p, nil
		}
	}
	if p, err := exec.LookPath("berth-scanner"); err == nil {
		return p, nil
	}
	return "", nil
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// sourceRoot is the root of Berth's source tree around the working directory, or "".
func sourceRoot() string {
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && bytes.HasPrefix(b, []byte("module github.com/berth-dev/berth\n")) {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

// Scan implements workers.Scanner.
func (s *scanning) Scan(ctx context.Context, req workers.ScanRequest) (workers.ScanReport, error) {
	c, err := s.client(ctx)
	if err != nil {
		return workers.ScanReport{}, err
	}
	rep, err := c.Scan(ctx, req)
	var se *workers.ScannerError
	if errors.As(err, &se) && se.Unreachable() && s.bin != "" {
		s.mu.Lock()
		s.stopChildLocked() // restarted by the retry
		s.mu.Unlock()
	}
	return rep, err
}

// DB implements workers.Scanner.
func (s *scanning) DB(ctx context.Context) (workers.ScanDBInfo, error) {
	if s.app.Cfg.ScannerAddr == "" {
		// The child's DB is ours: read it without starting the child.
		m, err := scandb.ReadMetadata(s.dbDir)
		if err != nil {
			return workers.ScanDBInfo{}, err
		}
		return workers.ScanDBInfo{Version: m.DBVersion(), UpdatedAt: m.UpdatedAt}, nil
	}
	c, err := s.client(ctx)
	if err != nil {
		return workers.ScanDBInfo{}, err
	}
	return c.DB(ctx)
}

// client returns the scanner to call, starting the child when it is needed and not running.
func (s *scanning) client(ctx context.Context) (*workers.ScannerClient, error) {
	if addr := s.app.Cfg.ScannerAddr; addr != "" {
		return &workers.ScannerClient{Addr: addr}, nil
	}
	if s.bin == "" {
		return nil, &workers.ScannerError{Code: "NO_SCANNER", Message: workers.NoScannerMessage}
	}
	// Without a DB the child could only answer NO_VULN_DB: say so without starting it.
	if _, err := scandb.ReadMetadata(s.dbDir); errors.Is(err, scandb.ErrNoDB) {
		return nil, &workers.ScannerError{Code: workers.ScannerNoVulnDB, Message: s.noDBReason(err) + "; then rescan"}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.child != nil {
		select {
		case <-s.child.done:
			s.app.Logger.Warn("berth-scanner exited; starting it again", "err", s.child.waitErr)
			s.child = nil
		default:
			return &workers.ScannerClient{Addr: s.child.addr}, nil
		}
	}
	if err := os.MkdirAll(s.cacheDir, 0o700); err != nil {
		return nil, err
	}
	if s.logFile == nil {
		f, err := os.OpenFile(filepath.Join(s.cacheDir, "berth-scanner.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return nil, err
		}
		s.logFile = f
	}
	start := time.Now()
	ch, err := startScannerChild(ctx, s.bin, s.dbDir, s.cacheDir, s.logFile)
	if err != nil {
		return nil, &workers.ScannerError{Code: workers.ScannerUnreachable, Message: err.Error()}
	}
	s.app.Logger.Info("berth-scanner started", "addr", ch.addr, "bin", s.bin, "db_dir", s.dbDir,
		"took", time.Since(start).Round(time.Millisecond))
	s.child = ch
	return &workers.ScannerClient{Addr: ch.addr}, nil
}

func (s *scanning) stopChildLocked() {
	if s.child != nil {
		s.child.stop()
		s.child = nil
	}
}

func (s *scanning) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopChildLocked()
	if s.logFile != nil {
		s.logFile.Close()
		s.logFile = nil
	}
}

// scannerChild is a running `berth-scanner serve`.
type scannerChild struct {
	cmd     *exec.Cmd
	addr    string
	done    chan struct{}
	waitErr error
}

func startScannerChild(ctx context.Context, bin, dbDir, cacheDir string, logw io.Writer) (*scannerChild, error) {
	cmd := exec.Command(bin, "serve", "--addr", "127.0.0.1:0", "--db-dir", dbDir, "--cache-dir", cacheDir)
	cmd.Stderr = logw
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	// Own process group, and it dies with us.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	ch := &scannerChild{cmd: cmd, done: make(chan struct{})}
	addrc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if a, ok := strings.CutPrefix(sc.Text(), "listening on "); ok {
				addrc <- strings.TrimSpace(a)
				break
			}
		}
		_, _ = io.Copy(logw, stdout)
	}()
	go func() {
		ch.waitErr = cmd.Wait()
		close(ch.done)
	}()
	t := time.NewTimer(scannerStartTimeout)
	defer t.Stop()
	select {
	case ch.addr = <-addrc:
		return ch, nil
	case <-ch.done:
		return nil, fmt.Errorf("berth-scanner exited before listening (%v); see %s", ch.waitErr, filepath.Join(cacheDir, "berth-scanner.log"))
	case <-t.C:
		ch.stop()
		return nil, fmt.Errorf("berth-scanner did not listen within %s", scannerStartTimeout)
	case <-ctx.Done():
		ch.stop()
		return nil, ctx.Err()
	}
}

// stop asks the scanner to finish (SIGTERM), then kills it.
func (c *scannerChild) stop() {
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(scannerStopTimeout):
		_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
		<-c.done
	}
}

// startScanDBWatch queues again the scans a previous run left unfinished, then checks the vulnerability DB at
// once and every --scan-db-check-interval: it downloads --scan-db-repository's artifact when the DB is missing
// or the artifact changed, and when its version (UpdatedAt) is not the one recorded, it rescans
// the images pushed in the last 7 days (at most 500) and records the new version. It runs until the returned
// stop is called.
func (a *App) startScanDBWatch(ctx context.Context) (stop func()) {
	interval := a.Cfg.ScanDBCheckInterval
	if interval <= 0 {
		interval = 10 * time.Minute
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if n, err := a.scan.scans.Recover(ctx); err != nil {
			a.Logger.Warn("re-enqueue unfinished scans", "err", err)
		} else if n > 0 {
			a.Logger.Info("unfinished scans queued again", "scans", n)
		}
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			if _, err := a.scan.fetch.sync(ctx); err != nil && ctx.Err() == nil {
				a.Logger.Warn("vulnerability DB download failed; the DB in force stays", "repository", a.Cfg.ScanDBRepository, "err", err)
			}
			if err := a.checkScanDB(ctx); err != nil && ctx.Err() == nil {
				a.Logger.Warn("vulnerability DB check", "err", err)
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return func() { cancel(); wg.Wait() }
}

func (a *App) checkScanDB(ctx context.Context) error {
	info, err := a.scan.DB(ctx)
	if err != nil {
		return nil // no DB (yet), or no scanner: scans say so themselves
	}
	seen, err := a.Store.ScanDBVersion(ctx)
	if err != nil || seen == info.Version {
		return err
	}
	n, err := a.scan.runner.RescanRecent(ctx, info.Version, time.Now().Add(-rescanWindow), rescanMax)
	if err != nil {
		return err
	}
	a.Logger.Info("vulnerability DB changed: rescanning recent images", "db_version", info.Version, "previous", seen,
		"images", n)
	return a.Store.SetScanDBVersion(ctx, info.Version)
}
