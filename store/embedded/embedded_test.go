//go:build !noembed

package embedded

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// TestRedisTTLsFollowTheClock: keys with a TTL expire with the wall clock (Asynq's leases and heartbeats rely
// on it), and TTL counts down.
func TestRedisTTLsFollowTheClock(t *testing.T) {
	r, err := StartRedis()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Stop()
	ctx := context.Background()
	c := redis.NewClient(&redis.Options{Addr: r.Addr})
	defer c.Close()
	if err := c.Set(ctx, "short", "1", 300*time.Millisecond).Err(); err != nil {
		t.Fatal(err)
	}
	if err := c.Set(ctx, "long", "1", time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
	if err := c.Set(ctx, "forever", "1", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if n, err := c.Exists(ctx, "short").Result(); err != nil || n != 1 {
		t.Fatalf("a fresh key with a TTL: exists=%d %v", n, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		n, err := c.Exists(ctx, "short").Result()
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a key with a 300ms TTL still exists after 5s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if ttl, err := c.PTTL(ctx, "long").Result(); err != nil || ttl >= time.Hour || ttl < 50*time.Minute {
		t.Fatalf("TTL of a one-hour key after a moment: %v %v", ttl, err)
	}
	if n, err := c.Exists(ctx, "long", "forever").Result(); err != nil || n != 2 {
		t.Fatalf("keys not yet expired: %d %v", n, err)
	}
}
