package store_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/berth-dev/berth/store"
	"github.com/berth-dev/berth/store/storetest"
)

func buildRepo(t testing.TB, s store.Store, ns, name string) string {
	t.Helper()
	ctx := context.Background()
	if err := s.CreateNamespace(ctx, &store.Namespace{Name: ns, AccountID: "100"}, 0); err != nil && !errors.Is(err, store.ErrAlreadyExists) {
		t.Fatal(err)
	}
	if err := s.CreateRepository(ctx, &store.Repository{Namespace: ns, Name: name, AccountID: "100"}); err != nil {
		t.Fatal(err)
	}
	return ns + "/" + name
}

func TestSourcesHooksAndDeliveries(t *testing.T) {
	ctx := context.Background()
	s := storetest.New(t)
	repo := buildRepo(t, s, "team", "app")
	src := &store.Source{Repository: repo, Provider: "github", URL: "https://example.com/a.git", AutoBuild: true}
	created, err := s.PutSource(ctx, src)
	if err != nil || !created || len(src.HookID) != 32 {
		t.Fatalf("put: %v created=%v hook=%q", err, created, src.HookID)
	}
	hook := src.HookID
	again := &store.Source{Repository: repo, Provider: "gitlab", URL: "https://example.com/b.git"}
	if created, err := s.PutSource(ctx, again); err != nil || created || again.HookID != hook {
		t.Fatalf("replace: %v created=%v hook %q → %q", err, created, hook, again.HookID)
	}
	got, err := s.SourceByHook(ctx, hook)
	if err != nil || got.Provider != "gitlab" || got.Repository != repo {
		t.Fatalf("by hook: %+v %v", got, err)
	}
	if _, err := s.SourceByHook(ctx, store.NewHookID()); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown hook: %v", err)
	}
	if _, err := s.PutSource(ctx, &store.Source{Repository: "team/none"}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("missing repository: %v", err)
	}

	if err := s.RecordDelivery(ctx, repo, "d1"); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordDelivery(ctx, repo, "d1"); !errors.Is(err, store.ErrAlreadyExists) {
		t.Fatalf("redelivery: %v", err)
	}
	if n, err := s.DeleteDeliveriesBefore(ctx, time.Now().Add(time.Minute)); err != nil || n != 1 {
		t.Fatalf("expire: %d %v", n, err)
	}
	if err := s.RecordDelivery(ctx, repo, "d1"); err != nil {
		t.Fatalf("after expiry: %v", err)
	}

	if err := s.DeleteSource(ctx, repo); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SourceByHook(ctx, hook); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("hook after delete: %v", err)
	}
}

func TestBuildRecordsAndLogsDieWithRepository(t *testing.T) {
	ctx := context.Background()
	s := storetest.New(t)
	repo := buildRepo(t, s, "team", "app")
	if _, err := s.PutSource(ctx, &store.Source{Repository: repo, Provider: "github", URL: "https://x/y.git"}); err != nil {
		t.Fatal(err)
	}
	rule := &store.BuildRule{Repository: repo, SourceType: store.RuleBranch, SourceRef: "main", ImageTag: "latest"}
	if err := s.CreateBuildRule(ctx, rule); err != nil {
		t.Fatal(err)
	}
	b := &store.Build{Repository: repo, RuleID: rule.ID, Ref: "main", ImageTag: "latest", Region: "default"}
	if err := s.CreateBuild(ctx, b); err != nil {
		t.Fatal(err)
	}
	if b.Status != store.BuildQueued {
		t.Fatalf("status %s", b.Status)
	}
	if err := s.PutLogChunk(ctx, &store.LogChunk{Build: b.ID, Repository: repo, Seq: 0, Data: "hello"}); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordDelivery(ctx, repo, "d"); err != nil {
		t.Fatal(err)
	}

	// Stages: entering one ends the previous; finishing ends the running one with the final status.
	t0 := time.Now().UTC()
	if _, err := s.UpdateBuild(ctx, b.ID, func(b *store.Build) error { b.EnterStage(store.BuildCloning, t0); return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateBuild(ctx, b.ID, func(b *store.Build) error { b.EnterStage(store.BuildBuilding, t0.Add(time.Second)); return nil }); err != nil {
		t.Fatal(err)
	}
	nb, err := s.UpdateBuild(ctx, b.ID, func(b *store.Build) error {
		b.Finish(store.BuildCanceled, "canceled by admin", t0.Add(2*time.Second))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if nb.Status != store.BuildCanceled || len(nb.Stages) != 2 || nb.Stages[0].Status != store.StageSuccess ||
		nb.Stages[1].Status != store.StageCanceled || nb.Stages[1].FinishedAt.IsZero() || nb.Rev != 3 {
		t.Fatalf("build %+v", nb)
	}
	// A change that refuses writes nothing.
	stop := errors.New("stop")
	if _, err := s.UpdateBuild(ctx, b.ID, func(b *store.Build) error { return stop }); !errors.Is(err, stop) {
		t.Fatal(err)
	}
	// ErrNoChange answers the build as it is, not written again.
	if same, err := s.UpdateBuild(ctx, b.ID, func(b *store.Build) error { return store.ErrNoChange }); err != nil ||
		same.Rev != 3 || same.Status != nb.Status || !same.UpdatedAt.Equal(nb.UpdatedAt) {
		t.Fatalf("no change: %+v %v", same, err)
	}
	// Concurrent writers both land (revision check and retry).
	done := make(chan error, 2)
	for _, w := range []string{"w1", "w2"} {
		go func() {
			_, err := s.UpdateBuild(ctx, b.ID, func(b *store.Build) error { b.Pusher += w; return nil })
			done <- err
		}()
	}
	for range 2 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if got, _ := s.GetBuild(ctx, repo, b.ID); len(got.Pusher) != 4 {
		t.Fatalf("lost a write: %q", got.Pusher)
	}
	if _, err := s.GetBuild(ctx, "team/other", b.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("other repository: %v", err)
	}

	if err := s.DeleteRepository(ctx, "team", "app"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.BuildByID(ctx, b.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("build after repository delete: %v", err)
	}
	if _, err := s.GetLogChunk(ctx, b.ID, 0); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("log after repository delete: %v", err)
	}
	if _, err := s.GetBuildRule(ctx, repo, rule.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("rule after repository delete: %v", err)
	}
	if _, err := s.GetSource(ctx, repo); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("source after repository delete: %v", err)
	}
	// The delivery record went too: the same delivery is new for a re-created repository.
	buildRepo(t, s, "team", "app")
	if err := s.RecordDelivery(ctx, repo, "d"); err != nil {
		t.Fatalf("delivery after repository delete: %v", err)
	}
}

func TestBuildRuleLimit(t *testing.T) {
	ctx := context.Background()
	s := storetest.New(t)
	repo := buildRepo(t, s, "team", "app")
	for i := range store.MaxBuildRules {
		if err := s.CreateBuildRule(ctx, &store.BuildRule{Repository: repo, SourceType: store.RuleBranch, SourceRef: "b", ImageTag: "t"}); err != nil {
			t.Fatalf("rule %d: %v", i, err)
		}
	}
	if err := s.CreateBuildRule(ctx, &store.BuildRule{Repository: repo, SourceType: store.RuleBranch, SourceRef: "b"}); !errors.Is(err, store.ErrLimitExceeded) {
		t.Fatalf("over the limit: %v", err)
	}
	rules, err := s.AllBuildRules(ctx, repo)
	if err != nil || len(rules) != store.MaxBuildRules {
		t.Fatalf("all: %d %v", len(rules), err)
	}
}

// TestConcurrentInserts: concurrent deliveries and builds (grouped into one insert on FerretDB) each get their
// own answer: every distinct delivery is recorded once and each redelivery is refused, whichever batch it
// lands in; every build is stored.
func TestConcurrentInserts(t *testing.T) {
	ctx := context.Background()
	s := storetest.New(t)
	repo := buildRepo(t, s, "team", "app")
	const n = 64
	var wg sync.WaitGroup
	var recorded, refused atomic.Int32
	errs := make(chan error, 3*n)
	for i := range 2 * n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := s.RecordDelivery(ctx, repo, fmt.Sprintf("d%d", i%n))
			switch {
			case err == nil:
				recorded.Add(1)
			case errors.Is(err, store.ErrAlreadyExists):
				refused.Add(1)
			default:
				errs <- err
			}
		}()
	}
	ids := make(chan string, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b := &store.Build{Repository: repo, RefType: store.RuleBranch, Ref: "main", ImageTag: "latest", Region: "default"}
			if err := s.CreateBuild(ctx, b); err != nil {
				errs <- err
				return
			}
			ids <- b.ID
		}()
	}
	wg.Wait()
	close(errs)
	close(ids)
	for err := range errs {
		t.Error(err)
	}
	if recorded.Load() != n || refused.Load() != n {
		t.Fatalf("%d deliveries sent twice each: %d recorded, %d refused as redeliveries", n, recorded.Load(), refused.Load())
	}
	for id := range ids {
		if _, err := s.GetBuild(ctx, repo, id); err != nil {
			t.Fatalf("build %s: %v", id, err)
		}
	}
	if _, total, err := s.ListBuilds(ctx, repo, store.Page{Page: 1, PageSize: 10}); err != nil || total != n {
		t.Fatalf("builds listed: %d (%v), want %d", total, err, n)
	}
}

// BenchmarkUpdateBuild: one stage change of a build among 2,000 (a worker does about ten per build), the lookup
// by _id included. BERTH_TEST_NO_ID_INDEX=1 measures the embedded store without its _id index (IndexIDs).
func BenchmarkUpdateBuild(b *testing.B) {
	ctx := context.Background()
	s := storetest.New(b)
	repo := buildRepo(b, s, "team", "app")
	ids := make([]string, 2000)
	for i := range ids {
		bd := &store.Build{Repository: repo, RefType: store.RuleBranch, Ref: "main", ImageTag: "latest", Region: "default"}
		if err := s.CreateBuild(ctx, bd); err != nil {
			b.Fatal(err)
		}
		ids[i] = bd.ID
	}
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, err := s.UpdateBuild(ctx, ids[i%len(ids)], func(bd *store.Build) error { bd.Heartbeat = time.Now(); return nil }); err != nil {
			b.Fatal(err)
		}
	}
}
