package pipeline

import (
	"context"
	"testing"
	"time"

	"github.com/berth-dev/berth/store"
)

// TestPushAfterScanEnded replays the lost event of issue 14 step by step: a push arrives when its digest's
// scan has ended FAILED and the scan's per-digest task id is still taken (its task winding up). The push is
// released at once when the failure is its own, gets a retry of its own when the failure is older, and
// Recover settles what is still waiting on a finished scan.
func TestPushAfterScanEnded(t *testing.T) {
	ctx := context.Background()
	st := teamApp(t)
	tr := &store.Trigger{Repository: "team/app", Name: "all", URL: "http://example.com/hook", FilterType: "ALL", Enabled: true}
	if err := st.CreateTrigger(ctx, tr); err != nil {
		t.Fatal(err)
	}
	const d = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	q := &fakeQueue{ids: map[string]string{ScanTaskID(d): QueueScan}} // the ended scan's task still holds its id
	s := &Scans{Store: st, Queue: q, Gate: NewGate(st)}
	delivered := func(tag string) bool { _, ok := q.ids[TriggerTaskID(tr.ID, d, tag)]; return ok }
	waiting := func() []string {
		sc, err := st.GetScan(ctx, d)
		if err != nil {
			t.Fatal(err)
		}
		var tags []string
		for _, w := range sc.Waiting {
			tags = append(tags, w.Tag)
		}
		return tags
	}

	pushedBefore := time.Now().Add(-time.Second)
	if err := st.StartScan(ctx, d, "team/app", pushedBefore); err != nil {
		t.Fatal(err)
	}
	sc, err := st.FinishScan(ctx, d, store.ScanResult{Status: store.ScanFailed, StartedAt: pushedBefore, FinishedAt: time.Now(), Error: "no DB"})
	if err != nil {
		t.Fatal(err)
	}
	// The tag pushed with the branch, before the scan ended: the failure is its own, released now.
	if err := s.Pushed(ctx, PushEvent{Namespace: "team", Repo: "app", Tag: "v1", Digest: d, PushedAt: pushedBefore}); err != nil {
		t.Fatal(err)
	}
	if !delivered("v1") || len(waiting()) != 0 {
		t.Fatalf("a push whose scan had ended FAILED was not released: queue %v, waiting %v", q.ids, waiting())
	}
	// A push after the failure asks for a new scan under the failed result's own id, not the taken one.
	late := time.Now().Add(time.Second)
	if err := s.Pushed(ctx, PushEvent{Namespace: "team", Repo: "app", Tag: "late", Digest: d, PushedAt: late}); err != nil {
		t.Fatal(err)
	}
	if _, ok := q.ids[RetryScanTaskID(sc)]; !ok || delivered("late") {
		t.Fatalf("no retry queued for a push after an older failure: %v", q.ids)
	}
	// Recover leaves it waiting for that retry; once the retry ended (without releasing it: its worker
	// died), Recover releases it.
	if _, err := s.Recover(ctx); err != nil || delivered("late") || len(waiting()) != 1 {
		t.Fatalf("Recover before the retry ran: %v, queue %v, waiting %v", err, q.ids, waiting())
	}
	if _, err := st.FinishScan(ctx, d, store.ScanResult{Status: store.ScanFailed, StartedAt: late, FinishedAt: late.Add(time.Second), Error: "no DB"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Recover(ctx); err != nil || !delivered("late") || len(waiting()) != 0 {
		t.Fatalf("Recover after the retry ended: %v, queue %v, waiting %v", err, q.ids, waiting())
	}
}
