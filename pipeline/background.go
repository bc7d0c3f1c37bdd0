package pipeline

import (
	"context"
	"sync"
	"time"
)

// background runs work that outlives the request that started it (a garbage collection, a retention run),
// and stops and waits for all of it at close.
type background struct {
	mu     sync.Mutex
	wg     sync.WaitGroup
	cancel context.CancelFunc // set on first use
	ctx    context.Context
}

// base is the context of work in the background: it ends at close.
func (b *background) base() context.Context {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ctx == nil {
		b.ctx, b.cancel = context.WithCancel(context.Background())
	}
	return b.ctx
}

// run runs f in the background.
func (b *background) run(f func()) {
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		f()
	}()
}

// close stops the work in the background and waits for it.
func (b *background) close() {
	b.base()
	b.cancel()
	b.wg.Wait()
}

// every calls f every period (interval/10, between a second and a minute) until ctx ends; stop ends it
// and waits. An interval of 0 or less calls nothing.
func every(ctx context.Context, interval time.Duration, f func(ctx context.Context)) (stop func()) {
	if interval <= 0 {
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	check := min(max(interval/10, time.Second), time.Minute)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(check)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				f(ctx)
			}
		}
	}()
	return func() { cancel(); wg.Wait() }
}
