package registry_test

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
)

// conformanceModule is the pinned OCI distribution-spec conformance suite.
const conformanceModule = "github.com/opencontainers/distribution-spec/conformance@v0.0.0-20260831232431-97274622c111"

// conformanceBinary finds the conformance binary: $OCI_CONFORMANCE_BIN, PATH,
// or $(go env GOPATH)/bin. In CI (CI set) a missing binary is installed from
// the module proxy; elsewhere the test is skipped.
func conformanceBinary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("OCI_CONFORMANCE_BIN"); p != "" {
		return p
	}
	if p, err := exec.LookPath("conformance"); err == nil {
		return p
	}
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		for _, gp := range filepath.SplitList(strings.TrimSpace(string(out))) {
			p := filepath.Join(gp, "bin", "conformance")
			if _, err := os.Stat(p); err == nil {
				return p
			}
		}
	}
	if os.Getenv("CI") == "" {
		t.Skip("conformance binary not found (go install " + conformanceModule + "); set CI=1 to install it")
	}
	gobin := t.TempDir()
	cmd := exec.Command("go", "install", conformanceModule)
	cmd.Env = append(os.Environ(), "GOBIN="+gobin)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("installing the conformance suite: %v\n%s", err, out)
	}
	return filepath.Join(gobin, "conformance")
}

// TestConformance runs the OCI distribution-spec conformance suite against a
// registry with token auth (user conformance/conformance-pass, full rights on
// conformance/*), once with the stable 1.1 defaults and once with
// OCI_VERSION=dev. It must exit 0 and its junit.xml must show every spec run
// and passed.
func TestConformance(t *testing.T) {
	bin := conformanceBinary(t)
	for _, version := range []string{"1.1", "dev"} {
		t.Run(version, func(t *testing.T) {
			srv := startServer(t, registrytest.Conformance(), nil)
			results := t.TempDir()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin)
			cmd.Dir = t.TempDir() // no stray oci-conformance.yaml
			env := []string{}
			for _, kv := range os.Environ() {
				if !strings.HasPrefix(kv, "OCI_") {
					env = append(env, kv)
				}
			}
			cmd.Env = append(env,
				"OCI_REGISTRY="+srv.host,
				"OCI_TLS=disabled",
				"OCI_REPO1=conformance/repo1",
				"OCI_REPO2=conformance/repo2",
				"OCI_USERNAME=conformance",
				"OCI_PASSWORD=conformance-pass",
				"OCI_RESULTS_DIR="+results,
				"OCI_VERSION="+version,
			)
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			err := cmd.Run()
			summary := out.String()
			if i := strings.Index(summary, "OCI Conformance Result"); i >= 0 {
				summary = summary[i:]
				if j := strings.Index(summary, "\n\n"); j >= 0 {
					summary = summary[:j]
				}
			}
			t.Logf("conformance %s:\n%s", version, summary)

			if err != nil {
				var fails []string
				for _, l := range strings.Split(out.String(), "\n") {
					if strings.Contains(l, ": FAIL") || strings.Contains(l, ": Error") || strings.HasPrefix(strings.TrimSpace(l), "- ") {
						fails = append(fails, l)
					}
				}
				t.Fatalf("conformance %s failed: %v (report: %s/report.html)\n%s", version, err, results, strings.Join(fails, "\n"))
			}
			if err := registrytest.CheckConformanceResults(results, version); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestConformanceCheckSeesEmptyRun: the suite exits 0 when its configuration
// does not load, having run nothing; the junit check must refuse that run.
func TestConformanceCheckSeesEmptyRun(t *testing.T) {
	bin := conformanceBinary(t)
	dir, results := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "oci-conformance.yaml"), []byte("registry: [\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "OCI_RESULTS_DIR="+results)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Logf("the suite now fails on a broken configuration (%v); the junit check stays as a second guard", err)
	}
	err = registrytest.CheckConformanceResults(results, "1.1")
	if err == nil || !strings.Contains(err.Error(), "wrote no junit.xml") {
		t.Fatalf("check of a run that loaded no configuration: %v\n%s", err, out)
	}
}
