package lease_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/berth-dev/berth/store/embedded"
	"github.com/berth-dev/berth/store/lease"
)

// clients starts a redis-server (miniredis without one) and returns n clients of it, as n processes would have.
func clients(t testing.TB, n int) []*redis.Client {
	t.Helper()
	r, err := embedded.StartRedisServer(context.Background(), t.TempDir())
	if errors.Is(err, embedded.ErrNoRedisServer) {
		r, err = embedded.StartRedis()
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Stop)
	out := make([]*redis.Client, n)
	for i := range out {
		out[i] = redis.NewClient(&redis.Options{Network: r.Network, Addr: r.Addr, Password: r.Password})
		t.Cleanup(func() { _ = out[i].Close() })
	}
	return out
}

// TestLockExcludesAcrossClients: a read-modify-write of a counter (GET, then SET) by 40 holders over two clients
// loses no increment.
func TestLockExcludesAcrossClients(t *testing.T) {
	cs := clients(t, 2)
	ctx := context.Background()
	const n = 40
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l := lease.Redis{Client: cs[i%2]}
			unlock, err := l.Lock(ctx, "k", 10*time.Second)
			if err != nil {
				t.Error(err)
				return
			}
			defer unlock()
			v, err := cs[i%2].Get(ctx, "counter").Int()
			if err != nil && !errors.Is(err, redis.Nil) {
				t.Error(err)
				return
			}
			time.Sleep(time.Millisecond)
			if err := cs[i%2].Set(ctx, "counter", v+1, 0).Err(); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if v, err := cs[0].Get(ctx, "counter").Int(); err != nil || v != n {
		t.Fatalf("counter %d (%v), want %d", v, err, n)
	}
}

// TestLockOutlivesNoHolder: a lease its holder never gives back goes after its TTL, and the late holder's
// unlock then leaves the new holder's lease alone.
func TestLockOutlivesNoHolder(t *testing.T) {
	cs := clients(t, 2)
	ctx := context.Background()
	a, b := lease.Redis{Client: cs[0]}, lease.Redis{Client: cs[1]}
	unlockA, err := a.Lock(ctx, "k", 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if _, err := b.Lock(short, "k", time.Second); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("lock while held: %v, want a deadline", err)
	}
	unlockB, err := b.Lock(ctx, "k", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	unlockA() // expired: must not end b's lease
	if err := a.Take(ctx, "k", "x", time.Second); !errors.Is(err, lease.ErrHeld) {
		t.Fatalf("after the expired holder's unlock: %v, want ErrHeld", err)
	}
	unlockB()
	if err := a.Take(ctx, "k", "x", time.Second); err != nil {
		t.Fatalf("after b's unlock: %v", err)
	}
}

// BenchmarkLock: what a guarded store write pays for its lease, uncontended (SET NX PX, then the release script).
func BenchmarkLock(b *testing.B) {
	cs := clients(b, 1)
	l := lease.Redis{Client: cs[0]}
	ctx := context.Background()
	for b.Loop() {
		unlock, err := l.Lock(ctx, "k", 10*time.Second)
		if err != nil {
			b.Fatal(err)
		}
		unlock()
	}
}
