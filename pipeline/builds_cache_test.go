package pipeline

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/berth-dev/berth/store"
	"github.com/berth-dev/berth/webhooks/inbound"
)

// TestHookCache: the webhook path remembers a hook's source and a repository's rules; a changed secret, a
// disconnected source and a changed rule take effect at once after Forget (what every change through this
// process calls), and an unforgotten change (another replica's) within RulesTTL.
func TestHookCache(t *testing.T) {
	ctx := context.Background()
	st := teamApp(t)
	s := &Builds{Store: st, Queue: &fakeQueue{ids: map[string]string{}}}
	src := &store.Source{Repository: "team/app", Provider: "github", URL: "https://example.com/a.git", WebhookSecret: "one", AutoBuild: true}
	if _, err := st.PutSource(ctx, src); err != nil {
		t.Fatal(err)
	}
	hook := src.HookID
	if got, err := s.SourceByHook(ctx, hook); err != nil || got.WebhookSecret != "one" {
		t.Fatalf("first lookup: %+v %v", got, err)
	}
	expire := func() {
		s.cache.mu.Lock()
		for id, e := range s.cache.sources {
			e.until = time.Now().Add(-time.Millisecond)
			s.cache.sources[id] = e
		}
		for repo, e := range s.cache.rules {
			e.until = time.Now().Add(-time.Millisecond)
			s.cache.rules[repo] = e
		}
		s.cache.mu.Unlock()
	}
	// A new secret set by another replica is used once RulesTTL has passed; one set here at once (Forget).
	src.WebhookSecret = "two"
	if _, err := st.PutSource(ctx, src); err != nil {
		t.Fatal(err)
	}
	if got, err := s.SourceByHook(ctx, hook); err != nil || got.WebhookSecret != "one" {
		t.Fatalf("the source is remembered for RulesTTL: %+v %v", got, err)
	}
	expire()
	if got, err := s.SourceByHook(ctx, hook); err != nil || got.WebhookSecret != "two" || got.HookID != hook {
		t.Fatalf("after RulesTTL, a new secret: %+v %v", got, err)
	}
	src.WebhookSecret = "two-b"
	if _, err := st.PutSource(ctx, src); err != nil {
		t.Fatal(err)
	}
	s.Forget("team/app")
	if got, err := s.SourceByHook(ctx, hook); err != nil || got.WebhookSecret != "two-b" {
		t.Fatalf("a new secret, forgotten: %+v %v", got, err)
	}
	// A disconnected source's hook is gone, and a new source of the repository has another hook id.
	if err := st.DeleteSource(ctx, "team/app"); err != nil {
		t.Fatal(err)
	}
	s.Forget("team/app")
	if _, err := s.SourceByHook(ctx, hook); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("disconnected source: %v", err)
	}
	src2 := &store.Source{Repository: "team/app", Provider: "github", URL: "https://example.com/a.git", WebhookSecret: "three", AutoBuild: true}
	if _, err := st.PutSource(ctx, src2); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SourceByHook(ctx, hook); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("old hook id of a reconnected repository: %v", err)
	}
	if got, err := s.SourceByHook(ctx, src2.HookID); err != nil || got.WebhookSecret != "three" {
		t.Fatalf("new hook id: %+v %v", got, err)
	}

	push := func(branch string) int {
		t.Helper()
		builds, _, err := s.Push(ctx, src2, &inbound.PushEvent{Name: branch, Commit: "0123456789abcdef0123456789abcdef01234567"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		return len(builds)
	}
	if n := push("main"); n != 0 {
		t.Fatalf("no rules yet: %d builds", n)
	}
	rule := &store.BuildRule{Repository: "team/app", SourceType: store.RuleBranch, SourceRef: "main", ImageTag: "latest",
		BuildArgs: map[string]string{"A": "1"}}
	if err := st.CreateBuildRule(ctx, rule); err != nil {
		t.Fatal(err)
	}
	s.Forget("team/app")
	if n := push("main"); n != 1 {
		t.Fatalf("a new rule, forgotten: %d builds", n)
	}
	// A change this process did not see (another replica's) applies within RulesTTL.
	if _, err := st.UpdateBuildRule(ctx, "team/app", rule.ID, func(r *store.BuildRule) error { r.SourceRef = "dev"; return nil }); err != nil {
		t.Fatal(err)
	}
	if n := push("dev"); n != 0 {
		t.Fatalf("rules are remembered for RulesTTL: %d builds", n)
	}
	expire()
	if n := push("dev"); n != 1 {
		t.Fatalf("after RulesTTL: %d builds", n)
	}
	if err := st.DeleteBuildRule(ctx, "team/app", rule.ID); err != nil {
		t.Fatal(err)
	}
	s.Forget("team/app")
	if n := push("dev"); n != 0 {
		t.Fatalf("a deleted rule, forgotten: %d builds", n)
	}
}
