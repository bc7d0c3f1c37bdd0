// Package s3test runs a real S3 server for tests: versitygw (Apache-2.0) with its posix backend on loopback,
// installed by scripts/install-test-deps.sh (go install github.com/versity/versitygw/cmd/versitygw@v1.8.0).
package s3test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	s3driver "github.com/berth-dev/berth/registry/storage/driver/s3"
)

// Keys of every test server.
const (
	AccessKey = "berth-test-access"
	SecretKey = "berth-test-secret-key-0123456789"
)

// Server is a running versitygw.
type Server struct {
	Endpoint string // http://127.0.0.1:PORT
	Dir      string // the posix backend's root: one directory per bucket
}

// Bin finds versitygw in PATH or in Go's bin directory.
func Bin() (string, error) {
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p, nil
	}
	gopath := os.Getenv("GOPATH")
	if gopath == "" {
		home, _ := os.UserHomeDir()
		gopath = filepath.Join(home, "go")
	}
	p := filepath.Join(gopath, "bin", "versitygw")
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("versitygw not found (run scripts/install-test-deps.sh, or go install github.com/versity/versitygw/cmd/versitygw@v1.8.0): %w", err)
	}
	return p, nil
}

// Start runs a versitygw for the test and stops it when the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	bin, err := Bin()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	if err := os.Mkdir(data, 0o755); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	logf, err := os.Create(filepath.Join(dir, "versitygw.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--quiet", "--access", AccessKey, "--secret", SecretKey, "--port", addr, "posix", data)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start versitygw: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		logf.Close()
	})
	s := &Server{Endpoint: "http://" + addr, Dir: data}
	d, err := s3driver.New(s.Config("probe"))
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := d.Client().ListBuckets(ctx, &s3.ListBucketsInput{})
		cancel()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(dir, "versitygw.log"))
			t.Fatalf("versitygw not ready within 20s: %v\n%s", err, log)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return s
}

// Config is a driver configuration for bucket on this server.
func (s *Server) Config(bucket string) s3driver.Config {
	return s3driver.Config{Endpoint: s.Endpoint, Region: "us-east-1", Bucket: bucket, PathStyle: true,
		AccessKey: AccessKey, SecretKey: SecretKey}
}

var seq atomic.Int64

// NewBucket creates a fresh bucket and returns its name.
func (s *Server) NewBucket(t testing.TB) string {
	t.Helper()
	name := fmt.Sprintf("berth-test-%d-%d", os.Getpid(), seq.Add(1))
	d, err := s3driver.New(s.Config(name))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Client().CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: &name}); err != nil {
		t.Fatalf("create bucket %s: %v", name, err)
	}
	return name
}

// NewDriver returns a driver over a fresh bucket.
func (s *Server) NewDriver(t testing.TB) *s3driver.Driver {
	t.Helper()
	d, err := s3driver.New(s.Config(s.NewBucket(t)))
	if err != nil {
		t.Fatal(err)
	}
	return d
}
