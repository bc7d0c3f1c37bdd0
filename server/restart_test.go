package server_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berth-dev/berth/server/app"
	"github.com/berth-dev/berth/server/app/apptest"
)

// TestTriggerRetrySurvivesRestart: a delivery that failed and is waiting for its retry when serve stops is
// retried by the next serve on the same data dir — the retry is in the queue (the redis-server child keeps it
// in DATA/queue), nowhere else — at the time it was scheduled for, and the record ends TRIGGERED.
func TestTriggerRetrySurvivesRestart(t *testing.T) {
	const retryBase = 6 * time.Second
	var mu sync.Mutex
	var hits []time.Time
	down := true
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		hits = append(hits, time.Now())
		if down {
			http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprint(w, `{"ok":true}`)
	}))
	defer rcv.Close()
	o := apptest.Options{DataDir: t.TempDir(), Configure: func(c *app.Config) {
		c.TriggerAllow = []string{"127.0.0.0/8"}
		c.TriggerRetryBase = retryBase
	}}

	in := apptest.Start(t, o)
	if r := in.Admin(t, "POST", "/api/v1/namespaces", map[string]any{"name": "team"}); r.Status != 201 {
		t.Fatalf("namespace: %s", r.Body)
	}
	createRepo(t, in, "team", "app", "PRIVATE")
	id, _ := createTrigger(t, in, "team/app", map[string]any{"name": "deploy", "url": rcv.URL + "/hook"})
	digest := pushImage(t, in, "team/app:v1")
	recs := waitRecords(t, in, "team/app", id, func(recs []map[string]any) bool { return len(recs) == 1 })
	if reason, _ := recs[0]["reason"].(string); recs[0]["status"] != "FAILED" || recs[0]["attempts"] != float64(1) ||
		!strings.HasPrefix(reason, "attempt 1 of 5 failed, will retry") {
		t.Fatalf("first attempt: %v", recs[0])
	}
	if err := in.Stop(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	down = false
	if len(hits) != 1 {
		t.Fatalf("receiver got %d requests before the restart, want 1", len(hits))
	}
	first := hits[0]
	mu.Unlock()

	in = apptest.Start(t, o)
	recs = waitRecords(t, in, "team/app", id, settled(1))
	if len(recs) != 1 || recs[0]["status"] != "TRIGGERED" || recs[0]["attempts"] != float64(2) ||
		recs[0]["status_code"] != float64(200) || recs[0]["digest"] != digest || recs[0]["reason"] != "" {
		t.Fatalf("after the restart: %v", recs)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(hits) != 2 {
		t.Fatalf("receiver got %d requests, want 2", len(hits))
	}
	// Asynq keeps a retry's due time in whole Unix seconds, so it may come up to 1 s before retryBase has passed.
	if gap := hits[1].Sub(first); gap < retryBase-time.Second {
		t.Errorf("the retry came %s after the first attempt, before its %s delay", gap, retryBase)
	}
}
