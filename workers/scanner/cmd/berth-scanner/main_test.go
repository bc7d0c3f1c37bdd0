package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berth-dev/berth/workers/scanner"
	"github.com/berth-dev/berth/workers/scanner/internal/scantest"
)

// The tests run this test binary as berth-scanner (no second 280 MB link): with the variable set, TestMain
// runs main instead of the tests.
const runMainEnv = "BERTH_SCANNER_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(runMainEnv) == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func command(args ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), runMainEnv+"=1")
	return cmd
}

const user, password = "berth", "pw"

func pushAlpine(t *testing.T) (*scantest.Registry, string) {
	t.Helper()
	reg := scantest.NewRegistry(user, password)
	t.Cleanup(reg.Close)
	img, err := scantest.Image(scantest.Alpine322(scantest.APKPackage{Name: "musl", Version: "1.2.5-r8"}))
	if err != nil {
		t.Fatal(err)
	}
	ref, err := reg.Push("ns/alpine", img)
	if err != nil {
		t.Fatal(err)
	}
	return reg, ref
}

func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

func TestScanCommand(t *testing.T) {
	_, ref := pushAlpine(t)
	dbDir, cacheDir := t.TempDir(), t.TempDir()
	args := []string{"scan", "--db-dir", dbDir, "--cache-dir", cacheDir, "--image", ref, "--username", user, "--insecure"}

	run := func(stdin string, extra ...string) (int, string, string) {
		cmd := command(append(args, extra...)...)
		var stdout, stderr bytes.Buffer
		cmd.Stdin, cmd.Stdout, cmd.Stderr = strings.NewReader(stdin), &stdout, &stderr
		err := cmd.Run()
		return exitCode(err), stdout.String(), stderr.String()
	}

	code, out, errOut := run("", "--password", password)
	if code != 1 || out != "" || !strings.Contains(errOut, "no vulnerability DB in "+filepath.Join(dbDir, "db")) {
		t.Fatalf("scan without a DB: exit %d, stdout %q, stderr %q", code, out, errOut)
	}

	if err := scantest.WriteDB(dbDir, scantest.Fixture()); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = run(password+"\n", "--password-stdin")
	if code != 0 {
		t.Fatalf("scan: exit %d, stderr %s", code, errOut)
	}
	var rep scanner.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("stdout is not a report: %v\n%s", err, out)
	}
	if rep.OS != "alpine 3.22.0" || len(rep.Vulnerabilities) != 1 || rep.Vulnerabilities[0].ID != "CVE-2025-26519" ||
		rep.Vulnerabilities[0].FixedVersion != "1.2.5-r9" || rep.Vulnerabilities[0].Severity != "HIGH" {
		t.Errorf("report = %+v", rep)
	}
	// Temporary files live under the cache dir and are gone after the run.
	entries, err := os.ReadDir(filepath.Join(cacheDir, "tmp"))
	if err != nil || len(entries) != 0 {
		t.Errorf("cache-dir/tmp after a scan: %v, %v", entries, err)
	}

	code, _, errOut = run("", "--password", "wrong")
	if code != 1 || !strings.Contains(errOut, "registry refused the credentials") {
		t.Errorf("wrong password: exit %d, stderr %q", code, errOut)
	}

	for _, bad := range [][]string{
		{"scan", "--db-dir", dbDir, "--cache-dir", cacheDir},
		{"scan", "--image", ref},
		{"scan", "--bogus"},
		{"frobnicate"},
		{},
	} {
		var stderr bytes.Buffer
		cmd := command(bad...)
		cmd.Stderr = &stderr
		if code := exitCode(cmd.Run()); code != 2 || !strings.Contains(stderr.String(), "berth-scanner: usage error") {
			t.Errorf("%q: exit %d, stderr %q", bad, code, stderr.String())
		}
	}
}

// serve starts `berth-scanner serve` and returns its base URL once it printed its address.
func serve(t *testing.T, dbDir, cacheDir string) (*exec.Cmd, string, *bytes.Buffer) {
	t.Helper()
	cmd := command("serve", "--addr", "127.0.0.1:0", "--db-dir", dbDir, "--cache-dir", cacheDir, "--shutdown-timeout", "20s")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	select {
	case line := <-lines:
		addr, ok := strings.CutPrefix(line, "listening on ")
		if !ok || strings.HasSuffix(addr, ":0") || !strings.HasPrefix(addr, "127.0.0.1:") {
			t.Fatalf("first line %q", line)
		}
		go func() { // nothing more is expected on stdout
			for l := range lines {
				t.Errorf("unexpected stdout line %q", l)
			}
		}()
		return cmd, "http://" + addr, &stderr
	case <-time.After(60 * time.Second):
		t.Fatalf("no address printed; stderr:\n%s", stderr.String())
	}
	return nil, "", nil
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestServeCommand(t *testing.T) {
	reg, ref := pushAlpine(t)
	dbDir, cacheDir := t.TempDir(), t.TempDir()
	cmd, base, stderr := serve(t, dbDir, cacheDir)

	if code, body := get(t, base+"/healthz"); code != 200 {
		t.Errorf("GET /healthz = %d %s", code, body)
	}
	if code, body := get(t, base+"/db"); code != 503 || !strings.Contains(body, `"code":"NO_VULN_DB"`) ||
		!strings.Contains(body, "no vulnerability DB in "+filepath.Join(dbDir, "db")+": ") {
		t.Errorf("GET /db without a DB = %d %s", code, body)
	}
	if err := scantest.WriteDB(dbDir, scantest.Fixture()); err != nil {
		t.Fatal(err)
	}
	if code, body := get(t, base+"/db"); code != 200 || !strings.Contains(body, `"version":"2026-01-02T03:04:05Z"`) {
		t.Errorf("GET /db = %d %s", code, body)
	}

	// A scan running when SIGTERM arrives completes; then the process exits 0.
	reg.SetBlobDelay(time.Second)
	type result struct {
		code int
		body string
		err  error
	}
	done := make(chan result, 1)
	go func() {
		body := `{"image": "` + ref + `", "username": "` + user + `", "password": "` + password + `", "insecure": true}`
		resp, err := http.Post(base+"/scan", "application/json", strings.NewReader(body))
		if err != nil {
			done <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		done <- result{code: resp.StatusCode, body: string(b)}
	}()
	time.Sleep(300 * time.Millisecond)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil || r.code != 200 || !strings.Contains(r.body, `"id":"CVE-2025-26519"`) {
		t.Errorf("scan across SIGTERM = %d %s %v", r.code, r.body, r.err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("exit after SIGTERM: %v\n%s", err, stderr.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("still running 20 s after SIGTERM\n%s", stderr.String())
	}
	if entries, err := os.ReadDir(filepath.Join(cacheDir, "tmp")); err != nil || len(entries) != 0 {
		t.Errorf("cache-dir/tmp after shutdown: %v, %v", entries, err)
	}
}
