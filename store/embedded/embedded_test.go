//go:build !noembed

package embedded

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
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
	anon := redis.NewClient(&redis.Options{Network: r.Network, Addr: r.Addr})
	if err := anon.Ping(ctx).Err(); err == nil || !strings.Contains(err.Error(), "NOAUTH") {
		t.Fatalf("miniredis answers PING without the password: %v", err)
	}
	anon.Close()
	c := redis.NewClient(&redis.Options{Network: r.Network, Addr: r.Addr, Password: r.Password})
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

// TestRedisServerKeepsTheQueue: the redis-server child wants its password, and what it held is there again
// after a stop and a new start on the same directory.
func TestRedisServerKeepsTheQueue(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "data dir \"quoted\"", "queue") // the config file must quote it
	r, err := StartRedisServer(ctx, dir)
	if errors.Is(err, ErrNoRedisServer) {
		t.Skip("redis-server is not installed (the test command installs it)")
	}
	if err != nil {
		t.Fatal(err)
	}
	// Only a Unix socket of mode 0600, no TCP port: a build's RUN step cannot reach it even on the host's network.
	if fi, err := os.Stat(r.Addr); r.Network != "unix" || err != nil || fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
		t.Fatalf("redis-server listens on %s %s: %v %v, want a unix socket of mode 0600", r.Network, r.Addr, fi, err)
	}
	if conf, _ := os.ReadFile(filepath.Join(dir, "redis.conf")); !strings.Contains(string(conf), "\nport 0\n") {
		t.Fatalf("redis.conf opens a TCP port:\n%s", conf)
	}
	anon := redis.NewClient(&redis.Options{Network: r.Network, Addr: r.Addr})
	if err := anon.Ping(ctx).Err(); err == nil || !strings.Contains(err.Error(), "NOAUTH") {
		t.Fatalf("PING without the password: %v", err)
	}
	anon.Close()
	c := redis.NewClient(&redis.Options{Network: r.Network, Addr: r.Addr, Password: r.Password})
	if err := c.RPush(ctx, "asynq:{default}:pending", "task-1", "task-2").Err(); err != nil {
		t.Fatal(err)
	}
	c.Close()
	r.Stop()

	r2, err := StartRedisServer(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Stop()
	if r2.Password == r.Password {
		t.Error("the password did not change across starts")
	}
	c2 := redis.NewClient(&redis.Options{Network: r2.Network, Addr: r2.Addr, Password: r2.Password})
	defer c2.Close()
	got, err := c2.LRange(ctx, "asynq:{default}:pending", 0, -1).Result()
	if err != nil || strings.Join(got, ",") != "task-1,task-2" {
		t.Fatalf("queue after a restart: %v %v", got, err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "redis.conf")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("redis.conf (holds the password): %v %v", fi, err)
	}
}
