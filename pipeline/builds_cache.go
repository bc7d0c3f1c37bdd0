package pipeline

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/berth-dev/berth/store"
)

// RulesTTL bounds how long a webhook may match a push against the build rules of a repository as this process
// read them. Every rule or source change made through this process takes effect at once (Forget); one made
// through another replica takes effect here within RulesTTL.
const RulesTTL = 2 * time.Second

// maxCachedRules bounds the repositories whose rules are remembered; past it the cache starts again empty.
const maxCachedRules = 10000

// hookCache remembers, for the webhook endpoint, which repository a hook id leads to and the build rules of
// recently pushed repositories, so a delivery costs one store read (its source) instead of three.
type hookCache struct {
	mu    sync.Mutex
	gen   uint64            // bumped by every Forget: a read that started before it is not remembered
	hooks map[string]string // hook id → repository; a hook id is never given to another source
	rules map[string]cachedRules
}

type cachedRules struct {
	rules []store.BuildRule
	until time.Time
}

// SourceByHook returns the source whose webhook id is hookID, like store.SourceByHook, but reads only the
// source itself once the hook id is known: the source is always read fresh, so a changed secret, a
// disconnected source or a deleted repository takes effect at once.
func (s *Builds) SourceByHook(ctx context.Context, hookID string) (*store.Source, error) {
	c := &s.cache
	c.mu.Lock()
	repo, ok := c.hooks[hookID]
	c.mu.Unlock()
	if ok {
		src, err := s.Store.GetSource(ctx, repo)
		if err == nil && src.HookID == hookID {
			return src, nil
		}
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return nil, err
		}
		// The source was disconnected (or replaced by a new one with another hook id).
		c.mu.Lock()
		delete(c.hooks, hookID)
		c.mu.Unlock()
		return nil, store.ErrNotFound
	}
	src, err := s.Store.SourceByHook(ctx, hookID)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.hooks == nil || len(c.hooks) >= maxCachedRules {
		c.hooks = map[string]string{}
	}
	c.hooks[hookID] = src.Repository
	c.mu.Unlock()
	return src, nil
}

// rulesOf returns every build rule of repo, from the cache when read less than RulesTTL ago and not forgotten
// since. The slice is shared: callers must not change it.
func (s *Builds) rulesOf(ctx context.Context, repo string) ([]store.BuildRule, error) {
	c := &s.cache
	now := time.Now()
	c.mu.Lock()
	e, ok := c.rules[repo]
	gen := c.gen
	c.mu.Unlock()
	if ok && now.Before(e.until) {
		return e.rules, nil
	}
	rules, err := s.Store.AllBuildRules(ctx, repo)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.gen == gen {
		if c.rules == nil || len(c.rules) >= maxCachedRules {
			c.rules = map[string]cachedRules{}
		}
		c.rules[repo] = cachedRules{rules: rules, until: now.Add(RulesTTL)}
	}
	c.mu.Unlock()
	return rules, nil
}

// Forget drops what this process remembers of repo's build rules. Call it after every change of a rule or of
// the source of repo, so the next webhook reads them again.
func (s *Builds) Forget(repo string) {
	c := &s.cache
	c.mu.Lock()
	c.gen++
	delete(c.rules, repo)
	c.mu.Unlock()
}
