package scanner

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// The tests that once needed a running Berth or a DB built elsewhere (BERTH_SCANNER_REGISTRY,
// BERTH_SCANNER_DB_DIR) make them here by default: the main module's berth, built from this checkout.

const berthAdminPassword = "scanner-test-admin"

var (
	berthOnce sync.Once
	berthBin  string
	berthErr  error
)

// berthBinary builds cmd/berth of the enclosing main module, once per test binary.
func berthBinary(t testing.TB) string {
	t.Helper()
	berthOnce.Do(func() {
		root, err := filepath.Abs(filepath.Join("..", ".."))
		if err != nil {
			berthErr = err
			return
		}
		dir, err := os.MkdirTemp("", "berth-scanner-test-")
		if err != nil {
			berthErr = err
			return
		}
		berthBin = filepath.Join(dir, "berth")
		cmd := exec.Command("go", "build", "-o", berthBin, "./cmd/berth")
		cmd.Dir = root
		// The main module builds without the scanner's GOEXPERIMENT, as `task build` does (and its cache).
		for _, e := range os.Environ() {
			if !strings.HasPrefix(e, "GOEXPERIMENT=") {
				cmd.Env = append(cmd.Env, e)
			}
		}
		if out, err := cmd.CombinedOutput(); err != nil {
			berthErr = fmt.Errorf("go build ./cmd/berth in %s: %v\n%s", root, err, out)
		}
	})
	if berthErr != nil {
		t.Fatal(berthErr)
	}
	return berthBin
}

// builtDB writes a DB with `berth admin scan-db build` from the main module's advisories
// (workers/scandb/testdata/advisories.json), as an operator would.
func builtDB(t testing.TB) string {
	t.Helper()
	out := t.TempDir()
	cmd := exec.Command(berthBinary(t), "admin", "scan-db", "build",
		"--advisories", filepath.Join("..", "scandb", "testdata", "advisories.json"), "--out", out)
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("berth admin scan-db build: %v\n%s", err, msg)
	}
	return out
}

// startBerth runs `berth serve` on embedded defaults until the test ends, with namespace ns, and returns its
// registry host.
func startBerth(t testing.TB, ns string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	dir := t.TempDir()
	cmd := exec.Command(berthBinary(t), "serve", "--data-dir", filepath.Join(dir, "data"), "--addr", addr, "--log-level", "warn")
	cmd.Env = append(os.Environ(), "BERTH_ADMIN_PASSWORD="+berthAdminPassword)
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("berth serve log:\n%s", logs.String())
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("berth serve not ready within 30s: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	req, _ := http.NewRequest("POST", "http://"+addr+"/api/v1/namespaces", strings.NewReader(fmt.Sprintf(`{"name":%q}`, ns)))
	req.SetBasicAuth("admin", berthAdminPassword)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 201 {
		t.Fatalf("create namespace %s: %s", ns, resp.Status)
	}
	return addr
}
