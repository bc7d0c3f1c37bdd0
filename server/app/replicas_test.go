package app_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/berth-dev/berth/registry/storage/driver/s3/s3test"
	"github.com/berth-dev/berth/server/app/apptest"
	"github.com/berth-dev/berth/store/embedded"
)

// replica is a `berth serve` process.
type replica struct {
	url string
	log string
}

// startReplica runs `berth serve` from bin with args until the test ends.
func startReplica(t *testing.T, bin string, env []string, args ...string) *replica {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	dir := t.TempDir()
	r := &replica{url: "http://" + addr, log: filepath.Join(dir, "berth.log")}
	logf, err := os.Create(r.log)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, append([]string{"serve", "--data-dir", filepath.Join(dir, "data"), "--addr", addr}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
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
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(r.url + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return r
			}
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(r.log)
			t.Fatalf("replica not ready within 60s: %v\n%s", err, b)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (r *replica) do(t *testing.T, method, path string, body []byte, hdr map[string]string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, r.url+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth("admin", apptest.AdminPassword)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// TestReplicasChunkedPush runs two `berth serve` processes on one store (FerretDB), one redis-server and one
// S3 server (versitygw), and pushes a blob in chunks whose PATCHes alternate between them: the upload lives
// in the bucket, so each replica continues where the other stopped, and the blob gets the right digest.
func TestReplicasChunkedPush(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the berth binary")
	}
	bin := filepath.Join(t.TempDir(), "berth")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	start := time.Now()
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/berth-dev/berth/cmd/berth").CombinedOutput(); err != nil {
		t.Fatalf("build berth: %v\n%s", err, out)
	}
	t.Logf("berth built in %s", time.Since(start).Round(time.Millisecond))
	srv := s3test.Start(t)
	bucket := srv.NewBucket(t)
	redis := apptest.StartRedisServer(t)
	m, err := embedded.StartMongo(context.Background(), t.TempDir(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Stop)
	env := []string{"BERTH_ADMIN_PASSWORD=" + apptest.AdminPassword, "BERTH_S3_ACCESS_KEY=" + s3test.AccessKey,
		"BERTH_S3_SECRET_KEY=" + s3test.SecretKey}
	args := []string{"--mongo-uri", m.URI, "--redis-addr", redis, "--s3-endpoint", srv.Endpoint, "--s3-bucket", bucket,
		"--s3-path-style", "--log-level", "warn"}
	a := startReplica(t, bin, env, args...) // the first creates the administrator and the account
	b := startReplica(t, bin, env, args...)
	replicas := []*replica{a, b}

	resp := a.do(t, "POST", "/api/v1/namespaces", []byte(`{"name":"team"}`), map[string]string{"Content-Type": "application/json"})
	resp.Body.Close()
	if resp.StatusCode != 201 {
		t.Fatalf("namespace: %d", resp.StatusCode)
	}
	chunks := [][]byte{make([]byte, 1<<20), make([]byte, 6<<20), make([]byte, 100<<10), make([]byte, 9<<20), make([]byte, 7)}
	h := sha256.New()
	for _, c := range chunks {
		_, _ = rand.Read(c)
		h.Write(c)
	}
	digest := "sha256:" + hex.EncodeToString(h.Sum(nil))
	resp = b.do(t, "POST", "/v2/team/app/blobs/uploads/", nil, nil)
	resp.Body.Close()
	if resp.StatusCode != 202 {
		t.Fatalf("start upload: %d", resp.StatusCode)
	}
	next := func(resp *http.Response) string {
		u, err := url.Parse(resp.Header.Get("Location"))
		if err != nil || u.Path == "" {
			t.Fatalf("Location %q", resp.Header.Get("Location"))
		}
		return u.RequestURI()
	}
	loc := next(resp)
	off := 0
	for i, c := range chunks {
		r := replicas[i%2]
		resp := r.do(t, "PATCH", loc, c, map[string]string{"Content-Type": "application/octet-stream",
			"Content-Range": fmt.Sprintf("%d-%d", off, off+len(c)-1), "Content-Length": strconv.Itoa(len(c))})
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 202 || resp.Header.Get("Range") != fmt.Sprintf("0-%d", off+len(c)-1) {
			t.Fatalf("PATCH %d on replica %d: %d Range %q %s", i, i%2, resp.StatusCode, resp.Header.Get("Range"), body)
		}
		off += len(c)
		loc = next(resp)
	}
	sep := "?"
	if u, _ := url.Parse(loc); u.RawQuery != "" {
		sep = "&"
	}
	resp = a.do(t, "PUT", loc+sep+"digest="+digest, nil, nil)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 201 || resp.Header.Get("Docker-Content-Digest") != digest {
		t.Fatalf("commit on replica 0: %d %q %s", resp.StatusCode, resp.Header.Get("Docker-Content-Digest"), body)
	}
	for i, r := range replicas {
		resp := r.do(t, "GET", "/v2/team/app/blobs/"+digest, nil, nil)
		got := sha256.New()
		n, _ := io.Copy(got, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || n != int64(off) || "sha256:"+hex.EncodeToString(got.Sum(nil)) != digest {
			t.Fatalf("GET on replica %d: %d, %d bytes", i, resp.StatusCode, n)
		}
	}
	t.Logf("%d chunks (%d bytes) alternating two replicas, committed as %s", len(chunks), off, digest)
}
