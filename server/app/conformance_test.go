package app_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/registry/registrytest"
	"github.com/berth-dev/berth/registry/storage/driver/s3/s3test"
	"github.com/berth-dev/berth/server/app"
	"github.com/berth-dev/berth/server/app/apptest"
)

// TestConformanceWholeBerth runs the OCI conformance suite against a whole Berth — token service backed by
// users and RAM policies, repositories auto-created in a namespace, image versions recorded in the store —
// rather than the registry package alone.
func TestConformanceWholeBerth(t *testing.T) {
	bin := conformanceBin(t)
	runConformance(t, bin, apptest.Start(t, apptest.Options{}))
}

// TestConformanceWholeBerthS3 runs the suite against a whole Berth keeping its blobs in a real S3 server
// (versitygw), serving blobs itself: with --s3-redirect the suite's dev version fails its blob-get checks,
// which require a Docker-Content-Digest header on the blob's answer, and S3's answer after the redirect has
// none (TestS3Redirect pulls through redirects with a real client).
func TestConformanceWholeBerthS3(t *testing.T) {
	bin := conformanceBin(t)
	srv := s3test.Start(t)
	bucket := srv.NewBucket(t)
	in := apptest.Start(t, apptest.Options{Configure: func(c *app.Config) {
		c.S3 = app.S3Config{Endpoint: srv.Endpoint, Bucket: bucket, Region: "us-east-1", PathStyle: true,
			AccessKey: s3test.AccessKey, SecretKey: s3test.SecretKey}
	}})
	runConformance(t, bin, in)
	// The blobs are in the bucket, none under the data dir.
	blobs, err := filepath.Glob(filepath.Join(srv.Dir, bucket, "blobs", "sha256", "*", "*", "data"))
	if err != nil || len(blobs) == 0 {
		t.Fatalf("no blob in the bucket: %v %v", blobs, err)
	}
	if local, _ := filepath.Glob(filepath.Join(in.DataDir, "registry", "blobs", "*", "*", "*", "data")); len(local) != 0 {
		t.Fatalf("blobs written to the data dir: %v", local)
	}
	t.Logf("%d blobs in the bucket", len(blobs))
}

func conformanceBin(t *testing.T) string {
	bin, err := exec.LookPath("conformance")
	if err != nil {
		out, _ := exec.Command("go", "env", "GOPATH").Output()
		bin = filepath.Join(strings.TrimSpace(string(out)), "bin", "conformance")
		if _, err := os.Stat(bin); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatal("conformance suite not installed: scripts/install-test-deps.sh installs it")
			}
			t.Skip("conformance suite not installed (scripts/install-test-deps.sh)")
		}
	}
	return bin
}

func runConformance(t *testing.T, bin string, in *apptest.Instance) {
	t.Helper()
	if r := in.Admin(t, "POST", "/api/v1/namespaces", map[string]any{"name": "conformance"}); r.Status != 201 {
		t.Fatalf("namespace: %s", r.Body)
	}
	user, pass := "admin", apptest.AdminPassword
	for _, version := range []string{"1.1", "dev"} {
		t.Run(version, func(t *testing.T) {
			results := t.TempDir()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin)
			cmd.Dir = t.TempDir()
			env := []string{}
			for _, kv := range os.Environ() {
				if !strings.HasPrefix(kv, "OCI_") {
					env = append(env, kv)
				}
			}
			cmd.Env = append(env, "OCI_REGISTRY="+in.Host, "OCI_TLS=disabled", "OCI_REPO1=conformance/repo1",
				"OCI_REPO2=conformance/repo2", "OCI_USERNAME="+user, "OCI_PASSWORD="+pass,
				"OCI_RESULTS_DIR="+results, "OCI_VERSION="+version)
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Run(); err != nil {
				t.Fatalf("conformance %s against Berth: %v\n%s\nnot passed:\n%s", version, err, tail(out.String(), 4000), notPassed(out.String()))
			}
			if err := registrytest.CheckConformanceResults(results, version); err != nil {
				t.Fatalf("%v\n%s", err, tail(out.String(), 4000))
			}
		})
	}
	// The pushes the suite made by tag are image versions in the store.
	r := in.Admin(t, "GET", "/api/v1/repositories/conformance/repo1", nil)
	if r.Status != 200 || r.JSON["origin"] != "PUSH" {
		t.Fatalf("conformance/repo1 was not auto-created: %s", r.Body)
	}
}

// notPassed keeps the result lines of the suite's output that are not ": Pass".
func notPassed(out string) string {
	var b strings.Builder
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "OCI Conformance Test/") && !strings.HasSuffix(strings.TrimSpace(l), ": Pass") {
			b.WriteString(l + "\n")
		}
	}
	return tail(b.String(), 8000)
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
