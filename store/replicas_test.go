package store_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/berth-dev/berth/store"
	"github.com/berth-dev/berth/store/storetest"
)

// The tests here open two store clients on one database (two mongo.Client connections and two Redis
// connections: two processes, as two berth serve or berth worker replicas would be) and race them.

// pick spreads goroutine i over the two clients.
func pick(i int, a, b store.Store) store.Store {
	if i%2 == 1 {
		return b
	}
	return a
}

// createNamespaces creates names for account 100 under limit from both clients at once and counts the answers.
func createNamespaces(t *testing.T, a, b store.Store, names []string, limit int) (created, limited, existed int32) {
	t.Helper()
	ctx := context.Background()
	var ok, lim, dup atomic.Int32
	var wg sync.WaitGroup
	for i, name := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := pick(i, a, b).CreateNamespace(ctx, &store.Namespace{Name: name, AccountID: "100"}, limit)
			switch {
			case err == nil:
				ok.Add(1)
			case errors.Is(err, store.ErrLimitExceeded):
				lim.Add(1)
			case errors.Is(err, store.ErrAlreadyExists):
				dup.Add(1)
			default:
				t.Errorf("create %s: %v", name, err)
			}
		}()
	}
	wg.Wait()
	return ok.Load(), lim.Load(), dup.Load()
}

func namespaceCount(t *testing.T, s store.Store, account string) int64 {
	t.Helper()
	_, total, err := s.ListNamespaces(context.Background(), account, store.Page{Page: 1, PageSize: 100})
	if err != nil {
		t.Fatal(err)
	}
	return total
}

// TestNamespaceLimitTwoProcesses: 50 creations for one account, spread over two processes, leave exactly the
// limit of 3; deleting one frees its slot for the next round.
func TestNamespaceLimitTwoProcesses(t *testing.T) {
	a := storetest.New(t)
	b := storetest.Second(t, a)
	names := make([]string, 50)
	for i := range names {
		names[i] = fmt.Sprintf("ns-%02d", i)
	}
	ok, limited, _ := createNamespaces(t, a, b, names, 3)
	total := namespaceCount(t, a, "100")
	t.Logf("created %d, limited %d, stored %d", ok, limited, total)
	if ok != 3 || limited != 47 || total != 3 {
		t.Fatalf("created %d, limited %d, stored %d; want 3, 47 and 3", ok, limited, total)
	}
	list, _, err := b.ListNamespaces(context.Background(), "100", store.Page{Page: 1, PageSize: 10})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.DeleteNamespace(context.Background(), list[1].Name, false); err != nil {
		t.Fatal(err)
	}
	for i := range names {
		names[i] = fmt.Sprintf("again-%02d", i)
	}
	if ok, limited, _ = createNamespaces(t, a, b, names, 3); ok != 1 || limited != 49 || namespaceCount(t, a, "100") != 3 {
		t.Fatalf("after a delete: created %d, limited %d; want 1 and 49", ok, limited)
	}
}

// TestNamespaceLimitCountsUnslotted: namespaces made while the limit was off count against it once it is on,
// also when the next creations race.
func TestNamespaceLimitCountsUnslotted(t *testing.T) {
	a := storetest.New(t)
	b := storetest.Second(t, a)
	if ok, _, _ := createNamespaces(t, a, b, []string{"old-1", "old-2"}, 0); ok != 2 {
		t.Fatalf("unlimited: created %d", ok)
	}
	names := make([]string, 30)
	for i := range names {
		names[i] = fmt.Sprintf("new-%02d", i)
	}
	ok, limited, _ := createNamespaces(t, a, b, names, 3)
	if total := namespaceCount(t, a, "100"); ok != 1 || limited != 29 || total != 3 {
		t.Fatalf("created %d, limited %d, stored %d; want 1, 29 and 3", ok, limited, total)
	}
}

// TestNamespaceSameNameTwoProcesses: 50 creations of one name over two processes make exactly one namespace,
// with or without a limit.
func TestNamespaceSameNameTwoProcesses(t *testing.T) {
	for _, limit := range []int{0, 3} {
		t.Run(fmt.Sprintf("limit %d", limit), func(t *testing.T) {
			a := storetest.New(t)
			b := storetest.Second(t, a)
			names := slices.Repeat([]string{"team"}, 50)
			ok, limited, existed := createNamespaces(t, a, b, names, limit)
			if ok != 1 || existed != 49 || limited != 0 || namespaceCount(t, a, "100") != 1 {
				t.Fatalf("created %d, already existing %d, limited %d; want 1, 49 and 0", ok, existed, limited)
			}
		})
	}
}

// buildOrder ranks statuses in the order a build goes through them; the final ones rank last.
func buildOrder(status string) int {
	order := []string{store.BuildQueued, store.BuildCloning, store.BuildBuilding, store.BuildPushing, store.BuildScanning}
	if i := slices.Index(order, status); i >= 0 {
		return i
	}
	return len(order)
}

// TestBuildForwardOnlyTwoProcesses: workers in two processes move a build through its stages while an API
// cancel from either races them. Every change sees the build as it is (none is lost: the write count kept in
// the build matches the writes made), a reader never sees the status go backward, and nothing moves a build
// after its final status.
func TestBuildForwardOnlyTwoProcesses(t *testing.T) {
	ctx := context.Background()
	a := storetest.New(t)
	b := storetest.Second(t, a)
	repo := buildRepo(t, a, "team", "app")
	next := map[string]string{store.BuildQueued: store.BuildCloning, store.BuildCloning: store.BuildBuilding,
		store.BuildBuilding: store.BuildPushing, store.BuildPushing: store.BuildScanning, store.BuildScanning: store.BuildSuccess}
	for round := range 5 {
		bd := &store.Build{Repository: repo, RefType: store.RuleBranch, Ref: "main", ImageTag: "latest", Region: "default"}
		if err := a.CreateBuild(ctx, bd); err != nil {
			t.Fatal(err)
		}
		var writes atomic.Int32
		var wg sync.WaitGroup
		advance := func(s store.Store) {
			defer wg.Done()
			for {
				_, err := s.UpdateBuild(ctx, bd.ID, func(cur *store.Build) error {
					if store.BuildFinal(cur.Status) {
						return store.ErrNoChange
					}
					if n := next[cur.Status]; n == store.BuildSuccess {
						cur.Finish(store.BuildSuccess, "", time.Now())
					} else {
						cur.EnterStage(n, time.Now())
					}
					cur.Attempt++
					writes.Add(1)
					return nil
				})
				if err != nil {
					t.Error(err)
					return
				}
				if got, _ := s.BuildByID(ctx, bd.ID); got == nil || store.BuildFinal(got.Status) {
					return
				}
			}
		}
		cancel := func(s store.Store) {
			defer wg.Done()
			time.Sleep(time.Duration(round*round) * 3 * time.Millisecond)
			_, err := s.UpdateBuild(ctx, bd.ID, func(cur *store.Build) error {
				if store.BuildFinal(cur.Status) {
					return store.ErrNoChange
				}
				cur.Finish(store.BuildCanceled, "canceled", time.Now())
				cur.Attempt++
				writes.Add(1)
				return nil
			})
			if err != nil {
				t.Error(err)
			}
		}
		stop := make(chan struct{})
		seen := make(chan []string)
		go func() { // a reader in the second process
			var statuses []string
			for {
				select {
				case <-stop:
					seen <- statuses
					return
				default:
				}
				if got, err := b.BuildByID(ctx, bd.ID); err == nil {
					statuses = append(statuses, got.Status)
				}
			}
		}()
		for i := range 6 {
			wg.Add(1)
			go advance(pick(i, a, b))
		}
		wg.Add(2)
		go cancel(a)
		go cancel(b)
		wg.Wait()
		close(stop)
		statuses := <-seen
		final, err := a.BuildByID(ctx, bd.ID)
		if err != nil {
			t.Fatal(err)
		}
		statuses = append(statuses, final.Status)
		for i := 1; i < len(statuses); i++ {
			if buildOrder(statuses[i]) < buildOrder(statuses[i-1]) ||
				(store.BuildFinal(statuses[i-1]) && statuses[i] != statuses[i-1]) {
				t.Fatalf("round %d: status went from %s to %s (seen %v)", round, statuses[i-1], statuses[i], statuses)
			}
		}
		if int32(final.Attempt) != writes.Load() || final.Rev != int64(writes.Load()) {
			t.Fatalf("round %d: %d writes made, the build counts %d (rev %d): changes were lost", round, writes.Load(), final.Attempt, final.Rev)
		}
		if final.Status != store.BuildCanceled && final.Status != store.BuildSuccess {
			t.Fatalf("round %d: final status %s", round, final.Status)
		}
		for _, st := range final.Stages {
			if st.Status == store.StageRunning {
				t.Fatalf("round %d: a %s build has stage %s still running", round, final.Status, st.Name)
			}
		}
		t.Logf("round %d: %s after %d writes, %d reads", round, final.Status, writes.Load(), len(statuses))
	}
}

// TestScanWaitersTwoProcesses: pushes in two processes add their waiters while the scan starts and finishes:
// none is lost.
func TestScanWaitersTwoProcesses(t *testing.T) {
	ctx := context.Background()
	a := storetest.New(t)
	b := storetest.Second(t, a)
	const d = "sha256:bbbb"
	const n = 30
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := store.ScanWaiter{Repository: "ns/app", Tag: fmt.Sprint(i), PushedAt: time.Now()}
			if _, err := pick(i, a, b).AddScanWaiter(ctx, d, w); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := b.StartScan(ctx, d, "ns/app", time.Now()); err != nil {
			t.Error(err)
		}
		if _, err := a.FinishScan(ctx, d, store.ScanResult{Status: store.ScanDone, StartedAt: time.Now(), FinishedAt: time.Now()}); err != nil {
			t.Error(err)
		}
	}()
	wg.Wait()
	sc, err := a.GetScan(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	if len(sc.Waiting) != n || sc.Status != store.ScanDone {
		t.Fatalf("%d waiters kept of %d, status %s", len(sc.Waiting), n, sc.Status)
	}
}

// TestUserChangesTwoProcesses: policies attached from two processes while the user is disabled all stay, and
// so does the disable.
func TestUserChangesTwoProcesses(t *testing.T) {
	ctx := context.Background()
	a := storetest.New(t)
	b := storetest.Second(t, a)
	if err := a.CreateUser(ctx, &store.User{Name: "alice", AccountID: "100", Enabled: true}); err != nil {
		t.Fatal(err)
	}
	const n = 20
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := pick(i, a, b).AttachPolicy(ctx, "alice", fmt.Sprintf("p%02d", i)); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		off := false
		if _, err := b.ChangeUser(ctx, "alice", store.UserUpdate{Enabled: &off, RevokeTokens: true}); err != nil {
			t.Error(err)
		}
	}()
	wg.Wait()
	u, err := a.GetUser(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if len(u.Policies) != n || u.Enabled || u.TokensNotBefore.IsZero() {
		t.Fatalf("%d policies of %d, enabled %v, tokens not before %v", len(u.Policies), n, u.Enabled, u.TokensNotBefore)
	}
}

// TestBuildRuleLimitTwoProcesses: 60 rule creations from two processes leave exactly MaxBuildRules.
func TestBuildRuleLimitTwoProcesses(t *testing.T) {
	ctx := context.Background()
	a := storetest.New(t)
	b := storetest.Second(t, a)
	repo := buildRepo(t, a, "team", "app")
	var ok, limited atomic.Int32
	var wg sync.WaitGroup
	for i := range store.MaxBuildRules + 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := pick(i, a, b).CreateBuildRule(ctx, &store.BuildRule{Repository: repo, SourceType: store.RuleBranch, SourceRef: "main"})
			switch {
			case err == nil:
				ok.Add(1)
			case errors.Is(err, store.ErrLimitExceeded):
				limited.Add(1)
			default:
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	rules, err := a.AllBuildRules(ctx, repo)
	if err != nil || ok.Load() != store.MaxBuildRules || limited.Load() != 10 || len(rules) != store.MaxBuildRules {
		t.Fatalf("created %d, limited %d, stored %d (%v); want %d, 10 and %d", ok.Load(), limited.Load(), len(rules), err,
			store.MaxBuildRules, store.MaxBuildRules)
	}
}

// TestDeliveriesTwoProcesses: the same webhook delivery reaching both processes at once starts one build.
func TestDeliveriesTwoProcesses(t *testing.T) {
	ctx := context.Background()
	a := storetest.New(t)
	b := storetest.Second(t, a)
	repo := buildRepo(t, a, "team", "app")
	const n = 40
	var recorded atomic.Int32
	var wg sync.WaitGroup
	for i := range 2 * n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := pick(i, a, b).RecordDelivery(ctx, repo, fmt.Sprintf("d%d", i/2))
			switch {
			case err == nil:
				recorded.Add(1)
			case !errors.Is(err, store.ErrAlreadyExists):
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if recorded.Load() != n {
		t.Fatalf("%d deliveries each sent to both processes: %d recorded", n, recorded.Load())
	}
}

// TestRepositoryVersusNamespaceDeleteTwoProcesses: a repository created in one process while the other deletes
// its namespace (without force) either lands, and the delete is refused, or is refused, and the namespace is
// gone: never a repository left in a deleted namespace.
func TestRepositoryVersusNamespaceDeleteTwoProcesses(t *testing.T) {
	ctx := context.Background()
	a := storetest.New(t)
	b := storetest.Second(t, a)
	for i := range 20 {
		ns := fmt.Sprintf("team-%02d", i)
		if err := a.CreateNamespace(ctx, &store.Namespace{Name: ns, AccountID: "100"}, 0); err != nil {
			t.Fatal(err)
		}
		var createErr, deleteErr error
		var wg sync.WaitGroup
		wg.Add(2)
		go func() {
			defer wg.Done()
			createErr = a.CreateRepository(ctx, &store.Repository{Namespace: ns, Name: "app", AccountID: "100"})
		}()
		go func() {
			defer wg.Done()
			_, deleteErr = b.DeleteNamespace(ctx, ns, false)
		}()
		wg.Wait()
		_, nsErr := a.GetNamespace(ctx, ns)
		_, repoErr := a.GetRepository(ctx, ns, "app")
		switch {
		case createErr == nil && errors.Is(deleteErr, store.ErrNotEmpty) && nsErr == nil && repoErr == nil:
		case errors.Is(createErr, store.ErrNotFound) && deleteErr == nil && errors.Is(nsErr, store.ErrNotFound) &&
			errors.Is(repoErr, store.ErrNotFound):
		default:
			t.Fatalf("round %d: create %v, delete %v; then namespace %v, repository %v", i, createErr, deleteErr, nsErr, repoErr)
		}
	}
}

// TestDeliveryTakeoverTwoProcesses: a delivery no build carries is taken over by exactly one of many racing
// redeliveries once it is stale, never while it is recent nor when a build carries it; a forgotten (failed) one
// is claimed again by exactly one.
func TestDeliveryTakeoverTwoProcesses(t *testing.T) {
	ctx := context.Background()
	a := storetest.New(t)
	b := storetest.Second(t, a)
	repo := buildRepo(t, a, "team", "app")
	const stale = 300 * time.Millisecond
	race := func(key string) int32 {
		var took atomic.Int32
		var wg sync.WaitGroup
		for i := range 20 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ok, err := pick(i, a, b).TakeOverDelivery(ctx, repo, key, stale)
				if err != nil {
					t.Error(err)
				}
				if ok {
					took.Add(1)
				}
			}()
		}
		wg.Wait()
		return took.Load()
	}
	for _, k := range []string{"died", "finished", "failed"} {
		if err := a.RecordDelivery(ctx, repo, k); err != nil {
			t.Fatal(err)
		}
	}
	if n := race("died"); n != 0 {
		t.Fatalf("a recent unfinished delivery taken over %d times", n)
	}
	if err := b.CreateBuild(ctx, &store.Build{Repository: repo, Deliveries: []string{"body", "finished"}}); err != nil {
		t.Fatal(err)
	}
	if err := b.ForgetDelivery(ctx, repo, "failed"); err != nil {
		t.Fatal(err)
	}
	if n := race("failed"); n != 1 {
		t.Fatalf("a failed (forgotten) delivery claimed %d times by 20 redeliveries, want 1", n)
	}
	time.Sleep(stale + 100*time.Millisecond)
	if n := race("died"); n != 1 {
		t.Fatalf("a stale unfinished delivery taken over %d times by 20 redeliveries, want 1", n)
	}
	if n := race("died"); n != 0 {
		t.Fatalf("a delivery just taken over taken over again %d times", n)
	}
	if n := race("finished"); n != 0 {
		t.Fatalf("a finished delivery taken over %d times", n)
	}
	// The taker dies too: after another stale period, one redelivery takes it over again.
	time.Sleep(stale + 100*time.Millisecond)
	if n := race("died"); n != 1 {
		t.Fatalf("a stale delivery whose taker died taken over %d times, want 1", n)
	}
}
