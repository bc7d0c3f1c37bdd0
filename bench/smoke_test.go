// Package bench_test runs every benchmark command in its short -smoke mode, so that none stops working
// unnoticed between the times someone runs them in full (task bench).
package bench_test

import (
	"os/exec"
	"strings"
	"testing"
	"time"
)

func smoke(t *testing.T, dir string, args []string, want ...string) {
	t.Helper()
	start := time.Now()
	cmd := exec.Command("go", append([]string{"run"}, args...)...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go run %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	for _, w := range want {
		if !strings.Contains(string(out), w) {
			t.Errorf("go run %s printed no %q:\n%s", strings.Join(args, " "), w, out)
		}
	}
	t.Logf("go run %s (%v, build included):\n%s", strings.Join(args, " "), time.Since(start).Round(time.Second), out)
}

func TestSmokeTriggers(t *testing.T) {
	smoke(t, "..", []string{"./bench/triggers", "-smoke"}, "from push completion", "plain HTTP POST from Go (floor)", "idle CPU")
}

func TestSmokeBuilds(t *testing.T) {
	smoke(t, "..", []string{"./bench/builds", "-smoke"}, "webhook → QUEUED", "no cache:", "registry cache, new commit:", "signed/unsigned:")
}

func TestSmokeHistory(t *testing.T) {
	smoke(t, "..", []string{"./bench/history", "-smoke"}, "push through the registry", "builds through signed push webhooks",
		"| API tags page, last |", "| console versions page |", "400 versions, 400 builds")
}

// bench/registry is its own module (it links distribution v3).
func TestSmokeRegistry(t *testing.T) {
	smoke(t, "registry", []string{".", "-smoke"}, "limit: Go sha256 of one stream", "manifest GET by tag", "The product: berth serve vs distribution",
		"skopeo pull, 8 layers", "crane push, 8 layers", "| Berth S3 ×2 |")
}
