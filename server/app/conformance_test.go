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
	"github.com/berth-dev/berth/server/app/apptest"
)

// TestConformanceWholeBerth runs the OCI conformance suite against a whole Berth — token service backed by
// users and RAM policies, repositories auto-created in a namespace, image versions recorded in the store —
// rather than the registry package alone.
func TestConformanceWholeBerth(t *testing.T) {
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
	in := apptest.Start(t, apptest.Options{})
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
				t.Fatalf("conformance %s against Berth: %v\n%s", version, err, tail(out.String(), 4000))
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

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
