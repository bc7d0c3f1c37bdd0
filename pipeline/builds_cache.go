package pipeline

import (
	"context"
	"sync"
	"time"

	"github.com/berth-dev/berth/store"
)

// RulesTTL bounds how long a webhook may use a repository's code source and build rules as this process read
// them. Every change of a source or rule, and every deletion of a repository, made through this process takes
// effect at once (Forget); one made through another replica takes effect here within RulesTTL.
const RulesTTL = 2 * time.Second

// maxCachedRules bounds the repositories whose rules (and the hook ids whose sources) are remembered; past it
// the cache starts again empty.
const maxCachedRules = 10000

// hookCache remembers, for the webhook endpoint, the code sources of recently used hook ids and the build rules
// of recently pushed repositories, so a burst of deliveries costs no store reads.
type hookCache struct {
	mu      sync.Mutex
	gen     uint64                  // bumped by every Forget: a read that started before it is not remembered
	sources map[string]cachedSource // by hook id; a hook id is never given to another source
	rules   map[string]cachedRules  // by repository
}

type cachedSource struct {
	src   *store.Source
	until time.Time
}

type cachedRules struct {
	rules []store.BuildRule
	until time.Time
}

// SourceByHook returns the source whose webhook id is hookID, like store.SourceByHook, from the cache when read
// less than RulesTTL ago and not forgotten since. The source is shared: callers must not change it.
func (s *Builds) SourceByHook(ctx context.Context, hookID string) (*store.Source, error) {
	c := &s.cache
	now := time.Now()
	c.mu.Lock()
	e, ok := c.sources[hookID]
	gen := c.gen
	c.mu.Unlock()
	if ok && now.Before(e.until) {
		return e.src, nil
	}
	src, err := s.Store.SourceByHook(ctx, hookID)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.gen == gen {
		if c.sources == nil || len(c.sources) >= maxCachedRules {
			c.sources = map[string]cachedSource{}
		}
		c.sources[hookID] = cachedSource{src: src, until: now.Add(RulesTTL)}
	}
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

// Forget drops what this process remembers of repo's code source and build rules. Call it after every change of
// a rule or of the source of repo, and after deleting repo, so the next webhook reads them again.
func (s *Builds) Forget(repo string) {
	c := &s.cache
	c.mu.Lock()
	c.gen++
	delete(c.rules, repo)
	for id, e := range c.sources {
		if e.src.Repository == repo {
			delete(c.sources, id)
		}
	}
	c.mu.Unlock()
}
