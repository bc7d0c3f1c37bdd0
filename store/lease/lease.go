// Package lease takes leases in Redis, so that one holder at a time, in any process sharing the Redis, does
// something: SET key token NX PX ttl takes a lease, a PEXPIRE checked against the token renews it, and a DEL
// checked against the token gives it back, so a holder never ends a lease that expired and went to another.
// The store's guarded writes (store.Locker) and the garbage collector's run hold such leases.
//
// A lease is a time bound, not a fence: a holder paused for longer than the TTL (a stopped process, a long GC
// pause) may still act after another took the lease. Holders keep their work well inside the TTL for that.
package lease

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrHeld is returned by Take when another holder has the lease.
var ErrHeld = errors.New("the lease is held by another holder")

// Redis takes leases in one Redis (or Redis cluster: every lease is one key).
type Redis struct {
	Client redis.UniversalClient
}

var (
	renewScript   = redis.NewScript(`if redis.call("get", KEYS[1]) == ARGV[1] then return redis.call("pexpire", KEYS[1], ARGV[2]) else return 0 end`)
	releaseScript = redis.NewScript(`if redis.call("get", KEYS[1]) == ARGV[1] then return redis.call("del", KEYS[1]) else return 0 end`)
)

// Take takes the lease key for token, for ttl, without waiting: ErrHeld when another holds it.
func (r Redis) Take(ctx context.Context, key, token string, ttl time.Duration) error {
	ok, err := r.Client.SetNX(ctx, key, token, ttl).Result()
	if err != nil {
		return fmt.Errorf("take the lease %s in Redis: %w", key, err)
	}
	if !ok {
		return ErrHeld
	}
	return nil
}

// Renew extends token's lease on key to ttl from now; false when token no longer holds it.
func (r Redis) Renew(ctx context.Context, key, token string, ttl time.Duration) (bool, error) {
	n, err := renewScript.Run(ctx, r.Client, []string{key}, token, ttl.Milliseconds()).Int()
	return n == 1, err
}

// Release gives token's lease on key back; a lease token no longer holds is left alone.
func (r Redis) Release(ctx context.Context, key, token string) error {
	return releaseScript.Run(ctx, r.Client, []string{key}, token).Err()
}

// Hold takes the lease key for token and renews it every third of ttl until release is called. If a renewal
// finds the lease lost (Redis flushed, or a pause longer than ttl let another holder take it), the returned
// context is cancelled with lost as its cause, so the work it guards stops. Take's errors, ErrHeld included,
// are returned as they are.
func (r Redis) Hold(ctx context.Context, key, token string, ttl time.Duration, lost error) (held context.Context, release func(), err error) {
	if err := r.Take(ctx, key, token, ttl); err != nil {
		return nil, nil, err
	}
	held, cancel := context.WithCancelCause(ctx)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(ttl / 3)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				ok, err := r.Renew(context.WithoutCancel(ctx), key, token, ttl)
				if err == nil && !ok {
					cancel(lost)
					return
				}
			}
		}
	}()
	return held, func() {
		close(done)
		wg.Wait()
		cancel(nil)
		rctx, c := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer c()
		_ = r.Release(rctx, key, token)
	}, nil
}

// Lock waits for the lease key, for ttl, polling with a growing random backoff until it is free or ctx ends,
// and returns what gives it back. It is for short critical sections: nothing renews the lease, so the holder
// must be done well within ttl.
func (r Redis) Lock(ctx context.Context, key string, ttl time.Duration) (unlock func(), err error) {
	token := newToken()
	wait := time.Millisecond
	for {
		err := r.Take(ctx, key, token, ttl)
		if err == nil {
			break
		}
		if !errors.Is(err, ErrHeld) {
			return nil, err
		}
		t := time.NewTimer(wait/2 + mrand.N(wait))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("wait for the lease %s: %w", key, context.Cause(ctx))
		case <-t.C:
		}
		wait = min(2*wait, 50*time.Millisecond)
	}
	return func() {
		rctx, c := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer c()
		_ = r.Release(rctx, key, token)
	}, nil
}

func newToken() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
