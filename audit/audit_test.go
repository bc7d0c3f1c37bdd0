package audit_test

import (
	"context"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/berth-dev/berth/audit"
	"github.com/berth-dev/berth/store"
	"github.com/berth-dev/berth/store/storetest"
)

func TestMain(m *testing.M) { os.Exit(storetest.Main(m)) }

// slowStore holds every write until release is closed.
type slowStore struct {
	audit.Store
	release chan struct{}
	mu      sync.Mutex
	got     int
}

func (s *slowStore) AddAuditEntries(_ context.Context, es []store.AuditEntry) error {
	<-s.release
	s.mu.Lock()
	s.got += len(es)
	s.mu.Unlock()
	return nil
}

// TestRecordNeverBlocks: with the store stuck, Record returns at once and counts what the full buffer drops;
// Close writes what was buffered.
func TestRecordNeverBlocks(t *testing.T) {
	st := &slowStore{release: make(chan struct{})}
	reg := prometheus.NewRegistry()
	l := audit.New(st, audit.Options{Buffer: 10, MaxBatch: 4, Metrics: reg})
	start := time.Now()
	for range 100 {
		l.Record(context.Background(), store.AuditEntry{Action: "cr:PushRepository"})
	}
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Fatalf("100 records took %s with the store stuck", d)
	}
	dropped := l.Dropped()
	if dropped < 100-10-4 || dropped > 100-10 {
		t.Fatalf("dropped %v of 100 with a buffer of 10 and one batch of 4 in the writer", dropped)
	}
	close(st.release)
	l.Close()
	if st.got != 100-int(dropped) {
		t.Fatalf("written %d, want %d", st.got, 100-int(dropped))
	}
}

// TestFlushAndSweep on a real store: what is recorded is in the store after Flush, with its defaults; the
// sweep removes entries older than the retention.
func TestFlushAndSweep(t *testing.T) {
	ctx := context.Background()
	st := storetest.New(t)
	l := audit.New(st, audit.Options{})
	defer l.Close()
	l.Record(ctx, store.AuditEntry{Time: time.Now().Add(-100 * 24 * time.Hour), User: "old", Action: "ram:Login", Status: 200})
	l.Record(ctx, store.AuditEntry{Action: "cr:CreateNamespace", Status: 201, RequestID: "r1"})
	if err := l.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	items, total, err := st.ListAuditEntries(ctx, store.AuditFilter{}, store.Page{Page: 1, PageSize: 10})
	if err != nil || total != 2 {
		t.Fatalf("%d entries, %v", total, err)
	}
	if e := items[0]; e.User != audit.Anonymous || e.Resource != "*" || e.RequestID != "r1" || time.Since(e.Time) > time.Minute {
		t.Fatalf("defaults not applied: %+v", e)
	}
	stop := l.StartSweep(ctx, 90*24*time.Hour)
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, total, err = st.ListAuditEntries(ctx, store.AuditFilter{}, store.Page{Page: 1, PageSize: 10})
		if err == nil && total == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the sweep left %d entries (%v)", total, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	stop()
	items, _, _ = st.ListAuditEntries(ctx, store.AuditFilter{User: "old"}, store.Page{Page: 1, PageSize: 10})
	if len(items) != 0 {
		t.Fatalf("the old entry stayed: %+v", items)
	}
}
