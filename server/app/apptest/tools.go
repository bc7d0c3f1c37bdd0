package apptest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// GoTool finds a client installed with go install (scripts/install-test-deps.sh: crane, oras, cosign): on PATH
// or in $(go env GOPATH)/bin. Outside CI a missing one skips the test; in CI it fails.
func GoTool(t testing.TB, bin string) string {
	t.Helper()
	if p, err := exec.LookPath(bin); err == nil {
		return p
	}
	out, _ := exec.Command("go", "env", "GOPATH").Output()
	p := filepath.Join(strings.TrimSpace(string(out)), "bin", bin)
	if _, err := os.Stat(p); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is not installed; the test command installs it (scripts/install-test-deps.sh)", bin)
		}
		t.Skipf("%s is not installed (run scripts/install-test-deps.sh)", bin)
	}
	return p
}
