package app_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/berth-dev/berth/server/app"
	"github.com/berth-dev/berth/server/app/apptest"
)

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// redisProc runs redis-server with a config file until the test ends, and waits until cmd answers.
func redisProc(t *testing.T, dir, conf string, extra ...string) {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Fatal("redis-server is not installed: scripts/install-test-deps.sh installs it")
	}
	path := filepath.Join(dir, fmt.Sprintf("redis-%d.conf", time.Now().UnixNano()))
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	log, _ := os.Create(path + ".log")
	cmd := exec.Command("redis-server", append([]string{path}, extra...)...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		log.Close()
		if t.Failed() {
			b, _ := os.ReadFile(log.Name())
			t.Logf("%s:\n%s", log.Name(), b)
		}
	})
}

func waitRedis(t *testing.T, addr string, ready func(*redis.Client) bool) {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: addr})
	defer c.Close()
	deadline := time.Now().Add(15 * time.Second)
	for !ready(c) {
		if time.Now().After(deadline) {
			t.Fatalf("redis at %s not ready within 15s", addr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// deliversTrigger proves an instance's queue works end to end: a push queues a scan task and then a trigger
// delivery, which reaches a receiver.
func deliversTrigger(t *testing.T, in *apptest.Instance) {
	t.Helper()
	got := make(chan string, 4)
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- string(b)
	}))
	defer rcv.Close()
	if r := in.Admin(t, "POST", "/api/v1/namespaces", map[string]any{"name": "team"}); r.Status != 201 {
		t.Fatalf("namespace: %s", r.Body)
	}
	if r := in.Admin(t, "POST", "/api/v1/namespaces/team/repositories", map[string]any{"name": "app"}); r.Status != 201 {
		t.Fatalf("repository: %s", r.Body)
	}
	if r := in.Admin(t, "POST", "/api/v1/repositories/team/app/triggers", map[string]any{"name": "t", "url": rcv.URL + "/hook"}); r.Status != 201 {
		t.Fatalf("trigger: %d %s", r.Status, r.Body)
	}
	digest := pushRandom(t, in.Host+"/team/app:v1", "admin", apptest.AdminPassword)
	select {
	case body := <-got:
		if !strings.Contains(body, digest) || !strings.Contains(body, `"tag":"v1"`) {
			t.Fatalf("trigger payload: %s", body)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no trigger delivery within 30s")
	}
}

// TestRedisSentinel: --redis-addr redis-sentinel://… finds the master through a real Sentinel, and the queue
// (Berth's tasks) lives on that master.
func TestRedisSentinel(t *testing.T) {
	dir := t.TempDir()
	master, sentinel := freePort(t), freePort(t)
	masterAddr := fmt.Sprintf("127.0.0.1:%d", master)
	redisProc(t, dir, fmt.Sprintf("bind 127.0.0.1\nport %d\nsave \"\"\nappendonly no\n", master))
	waitRedis(t, masterAddr, func(c *redis.Client) bool { return c.Ping(context.Background()).Err() == nil })
	redisProc(t, dir, fmt.Sprintf("bind 127.0.0.1\nport %d\nsentinel monitor berth 127.0.0.1 %d 1\n", sentinel, master), "--sentinel")
	waitRedis(t, fmt.Sprintf("127.0.0.1:%d", sentinel), func(c *redis.Client) bool {
		addr, err := c.Do(context.Background(), "SENTINEL", "get-master-addr-by-name", "berth").StringSlice()
		return err == nil && len(addr) == 2 && addr[1] == fmt.Sprint(master)
	})

	in := apptest.Start(t, apptest.Options{Configure: func(c *app.Config) {
		c.RedisAddr = fmt.Sprintf("redis-sentinel://127.0.0.1:%d/0?master=berth", sentinel)
		c.TriggerAllow = []string{"127.0.0.0/8"}
	}})
	deliversTrigger(t, in)
	c := redis.NewClient(&redis.Options{Addr: masterAddr})
	defer c.Close()
	if keys, err := c.Keys(context.Background(), "asynq:*").Result(); err != nil || len(keys) == 0 {
		t.Fatalf("no asynq keys on the master behind the sentinel: %v %v", keys, err)
	}
}

// TestRedisCluster: --redis-cluster a,b,c runs the queue on a real three-node Redis Cluster.
func TestRedisCluster(t *testing.T) {
	dir := t.TempDir()
	var addrs []string
	for range 3 {
		p := freePort(t)
		addr := fmt.Sprintf("127.0.0.1:%d", p)
		addrs = append(addrs, addr)
		redisProc(t, dir, fmt.Sprintf("bind 127.0.0.1\nport %d\nsave \"\"\nappendonly no\ncluster-enabled yes\ncluster-config-file nodes-%d.conf\n", p, p))
		waitRedis(t, addr, func(c *redis.Client) bool { return c.Ping(context.Background()).Err() == nil })
	}
	if out, err := exec.Command("redis-cli", append(append([]string{"--cluster", "create"}, addrs...), "--cluster-replicas", "0", "--cluster-yes")...).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	for _, a := range addrs {
		waitRedis(t, a, func(c *redis.Client) bool {
			info, err := c.ClusterInfo(context.Background()).Result()
			return err == nil && strings.Contains(info, "cluster_state:ok")
		})
	}

	in := apptest.Start(t, apptest.Options{Configure: func(c *app.Config) {
		c.RedisCluster = strings.Join(addrs, ",")
		c.TriggerAllow = []string{"127.0.0.0/8"}
	}})
	deliversTrigger(t, in)
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs})
	defer cc.Close()
	n := 0
	err := cc.ForEachMaster(context.Background(), func(ctx context.Context, c *redis.Client) error {
		keys, err := c.Keys(ctx, "asynq:*").Result()
		n += len(keys)
		return err
	})
	if err != nil || n == 0 {
		t.Fatalf("no asynq keys in the cluster: %d %v", n, err)
	}
}
