package pipeline

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// Asynq's workers poll their queues: an idle worker sleeps its TaskCheckInterval between polls, so a task waits
// for it on average half of that, and polling more often costs CPU on the worker and on Redis all day. Wake-ups
// let an idle worker wait on Redis instead (BLPOP) and start the moment a task is queued, by any Berth process
// sharing the Redis, while polling rarely. They only shorten waits: a missed or lost wake-up leaves the worker
// to its poll.

// wakeKey is the Redis list WakingQueue pushes to when it queues a task on queue. One hash tag for all queues,
// so that one BLPOP may wait on several of them in a Redis Cluster too.
func wakeKey(queue string) string { return "{berth:wake}:" + queue }

// maxWakeups bounds a wake-up list that no worker is waiting on.
const maxWakeups = 64

// WakingQueue is an Enqueuer that, after queueing a task for now, wakes a worker waiting for its queue.
type WakingQueue struct {
	Enqueuer
	Redis redis.UniversalClient
}

// EnqueueContext queues task like the wrapped Enqueuer and then wakes the task's queue. A failed wake-up is
// not an error: the task is queued, and a worker's poll finds it.
func (q *WakingQueue) EnqueueContext(ctx context.Context, task *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error) {
	info, err := q.Enqueuer.EnqueueContext(ctx, task, opts...)
	if err == nil && info != nil && info.State == asynq.TaskStatePending {
		key, wctx := wakeKey(info.Queue), context.WithoutCancel(ctx)
		_, _ = q.Redis.Pipelined(wctx, func(p redis.Pipeliner) error {
			p.LPush(wctx, key, info.ID)
			p.LTrim(wctx, key, 0, maxWakeups-1)
			return nil
		})
	}
	return info, err
}

// WakeOnEnqueue returns opt with a hook in the Redis clients Asynq makes from it: when a worker's poll finds one
// of queues empty, it waits up to wait for a WakingQueue to queue a task on any of them before the poll's
// answer stands, and polls that queue again at once when woken. Give it to asynq.NewServer, and call Stop
// before the server's Shutdown, which would otherwise wait for the wait to end.
func WakeOnEnqueue(opt asynq.RedisConnOpt, queues []string, wait time.Duration) *WakingConnOpt {
	return &WakingConnOpt{RedisConnOpt: opt, queues: queues, wait: wait}
}

// WakingConnOpt is an asynq.RedisConnOpt whose workers wait for wake-ups (WakeOnEnqueue).
type WakingConnOpt struct {
	asynq.RedisConnOpt
	queues []string
	wait   time.Duration
	woken  atomic.Int64 // wake-ups that led to a poll

	mu       sync.Mutex
	stopped  bool
	blockers []redis.UniversalClient
}

func (o *WakingConnOpt) MakeRedisClient() any {
	made := o.RedisConnOpt.MakeRedisClient()
	c, ok := made.(redis.UniversalClient)
	if !ok {
		return made
	}
	// Waits get a client of their own, which Stop closes to end them.
	b, ok := o.RedisConnOpt.MakeRedisClient().(redis.UniversalClient)
	if !ok {
		return c
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.stopped {
		_ = b.Close()
		return c
	}
	o.blockers = append(o.blockers, b)
	h := &dequeueHook{opt: o, client: b, queues: map[string]bool{}}
	for _, q := range o.queues {
		h.queues[q] = true
		h.keys = append(h.keys, wakeKey(q))
	}
	c.AddHook(h)
	return c
}

// Stop ends the waits for wake-ups, now and to come: the workers poll again.
func (o *WakingConnOpt) Stop() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.stopped = true
	for _, b := range o.blockers {
		_ = b.Close()
	}
	o.blockers = nil
}

func (o *WakingConnOpt) isStopped() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.stopped
}

// Wakeups returns how many times a worker made with o was woken and polled again.
func (o *WakingConnOpt) Wakeups() int64 { return o.woken.Load() }

// dequeueHook recognises Asynq's dequeue script by its keys (asynq:{Q}:pending, :paused, :active, :lease). Any
// other command, and a dequeue of another queue, passes untouched.
type dequeueHook struct {
	opt    *WakingConnOpt
	client redis.UniversalClient // for the waits only
	queues map[string]bool
	keys   []string
	// pending is a queue woken while another was polled: until it is polled, empty answers stand at once, so
	// that Asynq, which polls a worker's queues one after another, reaches it.
	pending atomic.Pointer[string]
}

func (h *dequeueHook) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *dequeueHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

func (h *dequeueHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		q, ok := h.dequeueOf(cmd.Args())
		if !ok {
			return err
		}
		if p := h.pending.Load(); p != nil && *p == q {
			h.pending.Store(nil)
		}
		if !errors.Is(err, redis.Nil) || h.pending.Load() != nil || h.opt.isStopped() {
			return err
		}
		woke, berr := h.blpop(ctx)
		if berr != nil || len(woke) == 0 {
			return err // nothing was queued meanwhile (redis.Nil), or Redis failed: the poll's answer stands
		}
		h.opt.woken.Add(1)
		if w := strings.TrimPrefix(woke[0], wakeKey("")); w != q {
			h.pending.Store(&w)
			return err
		}
		return next(ctx, cmd)
	}
}

// blpop waits up to h.wait for a wake-up of h's queues and returns the list woken and its item.
func (h *dequeueHook) blpop(ctx context.Context) ([]string, error) {
	wait := h.opt.wait
	if wait >= time.Second {
		return h.client.BLPop(ctx, wait, h.keys...).Result()
	}
	// BLPop rounds waits up to whole seconds; Redis takes fractions (miniredis too). A wait this short stays
	// well within the client's read timeout.
	args := make([]any, 0, len(h.keys)+2)
	args = append(args, "blpop")
	for _, k := range h.keys {
		args = append(args, k)
	}
	args = append(args, strconv.FormatFloat(wait.Seconds(), 'f', 3, 64))
	return h.client.Do(ctx, args...).StringSlice()
}

// dequeueOf returns the queue when args are EVALSHA/EVAL of Asynq's dequeue script on one of h's queues.
func (h *dequeueHook) dequeueOf(args []any) (string, bool) {
	if len(args) < 7 {
		return "", false
	}
	if name, _ := args[0].(string); !strings.EqualFold(name, "evalsha") && !strings.EqualFold(name, "eval") {
		return "", false
	}
	if n, ok := args[2].(int); !ok || n != 4 {
		return "", false
	}
	var q string
	for i, suffix := range []string{":pending", ":paused", ":active", ":lease"} {
		key, _ := args[3+i].(string)
		name, ok := strings.CutSuffix(key, suffix)
		if !ok || !strings.HasPrefix(name, "asynq:{") || !strings.HasSuffix(name, "}") {
			return "", false
		}
		name = name[len("asynq:{") : len(name)-1]
		if i == 0 {
			q = name
		} else if name != q {
			return "", false
		}
	}
	return q, h.queues[q]
}
