package pipeline

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/berth-dev/berth/store/embedded"
)

// TestGCLease: one holder at a time; a renewal keeps the lease past its TTL; only the holder releases it; and a
// holder that finds its lease taken over stops its run.
func TestGCLease(t *testing.T) {
	r, err := embedded.StartRedisServer(context.Background(), t.TempDir())
	if errors.Is(err, embedded.ErrNoRedisServer) {
		t.Skip("redis-server is not installed (scripts/install-test-deps.sh installs it)")
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Stop)
	rc := redis.NewClient(&redis.Options{Addr: r.Addr, Password: r.Password})
	t.Cleanup(func() { rc.Close() })
	ctx := context.Background()
	g := &GarbageCollector{Redis: rc, LeaseTTL: 300 * time.Millisecond}

	runA, releaseA, err := g.lease(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := g.lease(ctx, "b"); !errors.Is(err, ErrGCRunning) {
		t.Fatalf("second lease: %v, want ErrGCRunning", err)
	}
	time.Sleep(time.Second) // three TTLs: only renewals keep it
	if v, _ := rc.Get(ctx, GCLeaseKey).Result(); v != "a" || runA.Err() != nil {
		t.Fatalf("after 3 TTLs the lease is %q (run err %v), want still a's", v, runA.Err())
	}
	releaseA()
	if n, _ := rc.Exists(ctx, GCLeaseKey).Result(); n != 0 {
		t.Fatal("release left the lease")
	}

	runB, releaseB, err := g.lease(ctx, "b")
	if err != nil {
		t.Fatalf("lease after release: %v", err)
	}
	// another replica took the lease (b's renewals were lost, it expired): b's run stops
	if err := rc.Set(ctx, GCLeaseKey, "c", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-runB.Done():
		if cause := context.Cause(runB); cause == nil || cause.Error() != "the garbage collection lease was lost" {
			t.Fatalf("cause: %v", cause)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("a run whose lease was taken over goes on")
	}
	releaseB()
	if v, _ := rc.Get(ctx, GCLeaseKey).Result(); v != "c" {
		t.Fatalf("b's release removed c's lease: %q", v)
	}
}
