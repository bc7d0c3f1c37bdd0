package pipeline

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/berth-dev/berth/store/embedded"
)

// startTestRedis runs the Redis the test command asks for: a real redis-server under BERTH_TEST_REDIS=real
// (as Berth's own child runs it), else miniredis. Under real, it checks that it got redis-server.
func startTestRedis(t *testing.T) *embedded.Redis {
	t.Helper()
	real := os.Getenv("BERTH_TEST_REDIS") == "real"
	var r *embedded.Redis
	var err error
	if real {
		r, err = embedded.StartRedisServer(context.Background(), t.TempDir())
	} else {
		r, err = embedded.StartRedis()
	}
	if err != nil {
		t.Fatalf("start redis (BERTH_TEST_REDIS=%q): %v", os.Getenv("BERTH_TEST_REDIS"), err)
	}
	if real {
		c := redis.NewClient(&redis.Options{Addr: r.Addr, Password: r.Password})
		defer c.Close()
		info, err := c.Info(context.Background(), "server").Result()
		if err != nil || !strings.Contains(info, "redis_mode:standalone") || !strings.Contains(info, "process_id:") {
			t.Fatalf("BERTH_TEST_REDIS=real but %s is not a redis-server: %v %q", r.Addr, err, info)
		}
	}
	return r
}

// wakeWorld is a Redis (redis-server under BERTH_TEST_REDIS=real), an Asynq server for queues woken through WakeOnEnqueue, and the tasks it ran.
type wakeWorld struct {
	opt  *WakingConnOpt
	ran  chan string
	q    *WakingQueue
	raw  *asynq.Client
	stop func()
}

func startWakeWorld(t *testing.T, queues []string, wait time.Duration) *wakeWorld {
	t.Helper()
	r := startTestRedis(t)
	base := asynq.RedisClientOpt{Addr: r.Addr, Password: r.Password}
	w := &wakeWorld{opt: WakeOnEnqueue(base, queues, wait), ran: make(chan string, 100)}
	qs := map[string]int{}
	for _, q := range queues {
		qs[q] = 1
	}
	// Polls come back at once, so an idle worker spends its time waiting for a wake-up: a task queued without
	// one is found only when that wait ends.
	srv := asynq.NewServer(w.opt, asynq.Config{Concurrency: 1, Queues: qs, TaskCheckInterval: time.Millisecond,
		LogLevel: asynq.FatalLevel})
	mux := asynq.NewServeMux()
	mux.HandleFunc("test", func(_ context.Context, t *asynq.Task) error {
		w.ran <- string(t.Payload())
		return nil
	})
	if err := srv.Start(mux); err != nil {
		t.Fatal(err)
	}
	w.raw = asynq.NewClient(base)
	rc := redis.NewClient(&redis.Options{Addr: r.Addr, Password: r.Password})
	w.q = &WakingQueue{Enqueuer: w.raw, Redis: rc}
	var once sync.Once
	w.stop = func() {
		once.Do(func() {
			w.opt.Stop() // else Shutdown waits for the worker's wait to end
			srv.Shutdown()
			w.raw.Close()
			rc.Close()
			r.Stop()
		})
	}
	t.Cleanup(w.stop)
	time.Sleep(200 * time.Millisecond) // the worker's first poll found nothing: it waits
	return w
}

func (w *wakeWorld) expect(t *testing.T, payload string, within time.Duration) {
	t.Helper()
	select {
	case got := <-w.ran:
		if got != payload {
			t.Fatalf("ran %q, want %q", got, payload)
		}
	case <-time.After(within):
		t.Fatalf("task %q did not run within %s", payload, within)
	}
}

// TestWakeOnEnqueue: an idle worker waiting on its queue (for 30 s here) runs each task queued through a
// WakingQueue at once, woken, and on whichever of its queues the task is.
func TestWakeOnEnqueue(t *testing.T) {
	w := startWakeWorld(t, []string{"one", "two"}, 30*time.Second)
	ctx := context.Background()
	for i, q := range []string{"one", "two", "two", "one", "two"} {
		p := fmt.Sprintf("task %d on %s", i, q)
		if _, err := w.q.EnqueueContext(ctx, asynq.NewTask("test", []byte(p)), asynq.Queue(q)); err != nil {
			t.Fatal(err)
		}
		// Far below the 30 s wait: only a wake-up makes the worker poll again this soon.
		w.expect(t, p, 10*time.Second)
		time.Sleep(50 * time.Millisecond) // idle again
	}
	if n := w.opt.Wakeups(); n < 5 {
		t.Fatalf("%d wake-ups for 5 tasks", n)
	}
}

// TestWakeupMissed: a task queued without a wake-up (by Asynq itself, e.g. a retry) is found by the worker's
// poll once its wait ends; a task scheduled for later wakes nobody.
func TestWakeupMissed(t *testing.T) {
	w := startWakeWorld(t, []string{"default"}, time.Second)
	ctx := context.Background()
	if _, err := w.raw.EnqueueContext(ctx, asynq.NewTask("test", []byte("unannounced"))); err != nil {
		t.Fatal(err)
	}
	w.expect(t, "unannounced", 10*time.Second)
	if _, err := w.q.EnqueueContext(ctx, asynq.NewTask("test", []byte("later")), asynq.ProcessIn(time.Hour)); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-w.ran:
		t.Fatalf("ran %q, scheduled an hour from now", got)
	case <-time.After(500 * time.Millisecond):
	}
}

// TestWakeupStop: Stop ends a worker's wait at once, so that its server shuts down without waiting for it.
func TestWakeupStop(t *testing.T) {
	w := startWakeWorld(t, []string{"default"}, time.Minute)
	done := make(chan struct{})
	go func() {
		w.stop()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("shutdown waited for the worker's one-minute wait")
	}
}
