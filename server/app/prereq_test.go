package app_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berth-dev/berth/server/app"
	"github.com/berth-dev/berth/server/app/apptest"
	"github.com/berth-dev/berth/workers"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestMissingPrerequisitesReported: with no BuildKit to reach and no berth-scanner, Berth still starts and
// serves, and says what is missing and how to fix it — in its log at start, in /readyz (200: the API is ready;
// builds and scans report apart), and as the reason of a scan that cannot run.
func TestMissingPrerequisitesReported(t *testing.T) {
	t.Chdir(t.TempDir()) // outside the source tree: no bin/berth-scanner to find
	var logs syncBuffer
	in := apptest.Start(t, apptest.Options{Configure: func(c *app.Config) {
		c.BuildkitAddr = "unix:///nonexistent/berth-test/buildkitd.sock"
		c.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}})
	resp, err := http.Get(in.URL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	var ready struct {
		Status string
		Checks map[string]json.RawMessage
	}
	err = json.NewDecoder(resp.Body).Decode(&ready)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || ready.Status != "ok" || string(ready.Checks["store"]) != `"ok"` || string(ready.Checks["queue"]) != `"ok"` {
		t.Fatalf("/readyz: %d %+v %v", resp.StatusCode, ready, err)
	}
	var builds, scans struct {
		OK     bool
		Reason string
	}
	if err := json.Unmarshal(ready.Checks["builds"], &builds); err != nil || builds.OK ||
		!strings.HasPrefix(builds.Reason, "no builder: install buildkitd and runc (task install-buildkit) or set --buildkit-addr: --buildkit-addr unix:///nonexistent/berth-test/buildkitd.sock does not answer: ") {
		t.Errorf("/readyz builds: %s", ready.Checks["builds"])
	}
	if err := json.Unmarshal(ready.Checks["scans"], &scans); err != nil || scans.OK || scans.Reason != workers.NoScannerMessage {
		t.Errorf("/readyz scans: %s", ready.Checks["scans"])
	}
	log := logs.String()
	for _, want := range []string{
		`level=WARN msg="builds cannot run: every build will fail until this is fixed" reason="no builder: install buildkitd and runc (task install-buildkit) or set --buildkit-addr: --buildkit-addr unix:///nonexistent/berth-test/buildkitd.sock does not answer`,
		`level=WARN msg="scans cannot run yet: they end FAILED with this reason until it is fixed" state=no_scanner reason="` + workers.NoScannerMessage + `"`,
	} {
		if !strings.Contains(log, want) {
			t.Errorf("the log at start does not say %s:\n%s", want, log)
		}
	}
	st := in.Admin(t, "GET", "/api/v1/system/scanner", nil)
	if st.Status != 200 || st.JSON["state"] != "no_scanner" || st.JSON["reason"] != workers.NoScannerMessage || st.JSON["scanner"] != "" {
		t.Errorf("system/scanner: %d %s", st.Status, st.Body)
	}

	// A pushed image's scan fails with the same reason, at once.
	in.Admin(t, "POST", "/api/v1/namespaces", map[string]any{"name": "team", "auto_create_repo": true})
	pushRandom(t, in.Host+"/team/app:v1", "admin", apptest.AdminPassword)
	deadline := time.Now().Add(30 * time.Second)
	for {
		r := in.Admin(t, "GET", "/api/v1/repositories/team/app/tags/v1/scan", nil)
		if r.JSON["status"] == "FAILED" {
			if r.JSON["error"] != workers.NoScannerMessage {
				t.Errorf("scan: %s", r.Body)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("scan never failed: %s", r.Body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
