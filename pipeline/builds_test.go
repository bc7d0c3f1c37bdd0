package pipeline

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/berth-dev/berth/store"
	"github.com/berth-dev/berth/store/storetest"
)

// fakeQueue records enqueued task ids and refuses duplicates, as Asynq does with TaskID.
type fakeQueue struct {
	mu  sync.Mutex
	ids map[string]string // task id → queue
}

func (q *fakeQueue) EnqueueContext(_ context.Context, task *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	var id, queue string
	for _, o := range opts {
		switch o.Type() {
		case asynq.TaskIDOpt:
			id = o.Value().(string)
		case asynq.QueueOpt:
			queue = o.Value().(string)
		}
	}
	if _, dup := q.ids[id]; dup {
		return nil, asynq.ErrTaskIDConflict
	}
	q.ids[id] = queue
	return &asynq.TaskInfo{ID: id, Queue: queue}, nil
}

// teamApp is a fresh store holding the repository team/app of account 1.
func teamApp(t *testing.T) store.Store {
	t.Helper()
	ctx := context.Background()
	st := storetest.New(t)
	if err := st.CreateNamespace(ctx, &store.Namespace{Name: "team", AccountID: "1"}, 0); err != nil {
		t.Fatal(err)
	}
	if err := st.CreateRepository(ctx, &store.Repository{Namespace: "team", Name: "app", AccountID: "1"}); err != nil {
		t.Fatal(err)
	}
	return st
}

func TestRecoverAndSweep(t *testing.T) {
	ctx := context.Background()
	st := teamApp(t)
	q := &fakeQueue{ids: map[string]string{}}
	s := &Builds{Store: st, Queue: q}
	mk := func(status string, heartbeat time.Time) *store.Build {
		b := &store.Build{Repository: "team/app", Region: QueueOverseas, Status: status, Heartbeat: heartbeat, Worker: "host/1", Attempt: 1}
		if err := st.CreateBuild(ctx, b); err != nil {
			t.Fatal(err)
		}
		return b
	}
	queued := mk(store.BuildQueued, time.Time{})
	alive := mk(store.BuildBuilding, time.Now())
	dead := mk(store.BuildCloning, time.Now().Add(-time.Hour))
	done := mk(store.BuildSuccess, time.Time{})

	n, err := s.Recover(ctx)
	if err != nil || n != 3 || q.ids[queued.ID] != QueueOverseas || q.ids[done.ID] != "" {
		t.Fatalf("recover: %d %v %v", n, err, q.ids)
	}
	if n, err := s.Recover(ctx); err != nil || n != 3 || len(q.ids) != 3 {
		t.Fatalf("recover again (idempotent): %d %v %v", n, err, q.ids)
	}

	// A build whose enqueue failed when it was made is queued by the sweeper.
	lost := mk(store.BuildQueued, time.Time{})
	if _, err := st.UpdateBuild(ctx, lost.ID, func(b *store.Build) error { b.QueueError = "redis down"; return nil }); err != nil {
		t.Fatal(err)
	}

	failed, err := s.Sweep(ctx, 10*time.Minute)
	if err != nil || failed != 1 {
		t.Fatalf("sweep: %d %v", failed, err)
	}
	got, _ := st.BuildByID(ctx, dead.ID)
	if got.Status != store.BuildFailed || !strings.Contains(got.Error, "stopped during CLONING") || got.FinishedAt.IsZero() {
		t.Fatalf("dead build: %s %q", got.Status, got.Error)
	}
	if got, _ := st.BuildByID(ctx, lost.ID); q.ids[lost.ID] != QueueOverseas || got.QueueError != "" || got.Status != store.BuildQueued {
		t.Fatalf("unqueued build: %v %+v", q.ids, got)
	}
	for _, b := range []*store.Build{queued, alive, done} {
		if got, _ := st.BuildByID(ctx, b.ID); got.Status != b.Status {
			t.Fatalf("sweep changed %s: %s → %s", b.ID, b.Status, got.Status)
		}
	}
}

// TestDeliveryFailedIsRetried: a delivery whose handling failed (Failed) is new again to its retry, in this
// process and in another.
func TestDeliveryFailedIsRetried(t *testing.T) {
	ctx := context.Background()
	st := teamApp(t)
	one, other := &Builds{Store: st}, &Builds{Store: storetest.Second(t, st)}
	if one.Seen(ctx, "team/app", "failed") || !one.Seen(ctx, "team/app", "failed") || !other.Seen(ctx, "team/app", "failed") {
		t.Fatal("a new delivery, then its copies")
	}
	one.Failed(ctx, "team/app", "failed")
	if one.Seen(ctx, "team/app", "failed") {
		t.Fatal("the retry of a failed delivery counted as a redelivery")
	}
	one.Failed(ctx, "team/app", "failed")
	if other.Seen(ctx, "team/app", "failed") || !one.Seen(ctx, "team/app", "failed") {
		t.Fatal("the retry of a failed delivery on another replica")
	}
}
