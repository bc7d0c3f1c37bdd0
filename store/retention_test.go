package store_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/berth-dev/berth/store"
	"github.com/berth-dev/berth/store/storetest"
)

func TestRetentionRulesAndRuns(t *testing.T) {
	ctx := context.Background()
	s := storetest.New(t)
	if _, err := s.UpdateRetentionRules(ctx, "nope", func(r []store.RetentionRule) ([]store.RetentionRule, error) { return r, nil }); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("rules of a missing namespace: %v", err)
	}
	for _, ns := range []string{"team", "other"} {
		if err := s.CreateNamespace(ctx, &store.Namespace{Name: ns, AccountID: "1"}, 0); err != nil {
			t.Fatal(err)
		}
	}
	if rules, err := s.GetRetentionRules(ctx, "team"); err != nil || len(rules) != 0 {
		t.Fatalf("no rules yet: %v %v", rules, err)
	}
	add := func(r []store.RetentionRule) ([]store.RetentionRule, error) {
		if len(r) >= store.MaxRetentionRules {
			return nil, store.ErrLimitExceeded
		}
		return append(r, store.RetentionRule{ID: store.NewRetentionRuleID(), TagPattern: "v.*", KeepLast: len(r) + 1, Enabled: true}), nil
	}
	for range store.MaxRetentionRules {
		if _, err := s.UpdateRetentionRules(ctx, "team", add); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.UpdateRetentionRules(ctx, "team", add); !errors.Is(err, store.ErrLimitExceeded) {
		t.Fatalf("16th rule: %v", err)
	}
	rules, err := s.GetRetentionRules(ctx, "team")
	if err != nil || len(rules) != store.MaxRetentionRules || rules[3].KeepLast != 4 || rules[3].TagPattern != "v.*" {
		t.Fatalf("rules: %v %+v", err, rules)
	}
	if nss, err := s.NamespacesWithRetentionRules(ctx); err != nil || fmt.Sprint(nss) != "[team]" {
		t.Fatalf("namespaces with rules: %v %v", nss, err)
	}

	// Runs: created, finished, listed newest first, per namespace; an unfinished one ended.
	base := time.Now().Add(-time.Hour)
	var ids []string
	for i := range 3 {
		r := &store.RetentionRun{Namespace: "team", StartedAt: base.Add(time.Duration(i) * time.Minute), Trigger: "api", DryRun: i == 0}
		r.ID = store.NewRetentionRunID(r.StartedAt)
		if err := s.CreateRetentionRun(ctx, r); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, r.ID)
		if i < 2 {
			r.Deleted = []store.RetentionDeletion{{Repository: "web", Tag: "v1", Digest: "sha256:aa"}}
			r.DeletedCount, r.KeptCount = 1, 7
			if err := s.FinishRetentionRun(ctx, r); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := s.CreateRetentionRun(ctx, &store.RetentionRun{ID: store.NewRetentionRunID(base), Namespace: "other", StartedAt: base, Trigger: "schedule"}); err != nil {
		t.Fatal(err)
	}
	runs, total, err := s.ListRetentionRuns(ctx, "team", store.Page{Page: 1, PageSize: 2})
	if err != nil || total != 3 || len(runs) != 2 || runs[0].ID != ids[2] || runs[1].ID != ids[1] {
		t.Fatalf("list: %v total=%d %+v", err, total, runs)
	}
	got, err := s.GetRetentionRun(ctx, "team", ids[1])
	if err != nil || got.FinishedAt == nil || got.KeptCount != 7 || len(got.Deleted) != 1 || got.Deleted[0].Tag != "v1" {
		t.Fatalf("get: %v %+v", err, got)
	}
	if _, err := s.GetRetentionRun(ctx, "other", ids[1]); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a run of another namespace: %v", err)
	}
	if n, err := s.EndUnfinishedRetentionRuns(ctx, ids[2], "interrupted"); err != nil || n != 1 {
		t.Fatalf("end unfinished: %d %v", n, err)
	}
	if got, _ := s.GetRetentionRun(ctx, "team", ids[2]); got.FinishedAt != nil {
		t.Fatalf("the run kept going was ended: %+v", got)
	}

	// Deleting the namespace takes its rules and runs.
	if _, err := s.DeleteNamespace(ctx, "team", true); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateNamespace(ctx, &store.Namespace{Name: "team", AccountID: "1"}, 0); err != nil {
		t.Fatal(err)
	}
	if rules, err := s.GetRetentionRules(ctx, "team"); err != nil || len(rules) != 0 {
		t.Fatalf("rules after the namespace was made again: %v %v", rules, err)
	}
	if runs, total, err := s.ListRetentionRuns(ctx, "team", store.Page{Page: 1, PageSize: 20}); err != nil || total != 0 || len(runs) != 0 {
		t.Fatalf("runs after the namespace was made again: %v %d %v", runs, total, err)
	}
}

func TestImmutableTagsField(t *testing.T) {
	ctx := context.Background()
	s := storetest.New(t)
	if err := s.CreateNamespace(ctx, &store.Namespace{Name: "team", AccountID: "1"}, 0); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateRepository(ctx, &store.Repository{Namespace: "team", Name: "web", AccountID: "1", Visibility: store.VisibilityPrivate}); err != nil {
		t.Fatal(err)
	}
	p := `v\d+\.\d+`
	r, err := s.UpdateRepository(ctx, "team", "web", store.RepositoryUpdate{ImmutableTags: &p})
	if err != nil || r.ImmutableTags != p {
		t.Fatalf("update: %v %+v", err, r)
	}
	r, err = s.GetRepository(ctx, "team", "web")
	if err != nil || r.ImmutableTags != p {
		t.Fatalf("get: %v %+v", err, r)
	}
	for tag, want := range map[string]bool{"v1.2": true, "v1.2-rc": false, "xv1.2": false, "latest": false} {
		if got := r.TagImmutable(tag); got != want {
			t.Errorf("TagImmutable(%q) = %v, want %v", tag, got, want)
		}
	}
}

func TestCompilePattern(t *testing.T) {
	for _, c := range []struct {
		pattern, name string
		want          bool
	}{
		{"", "anything", true}, {"", "", true}, {"v.*", "v1", true}, {"v.*", "xv1", false}, {"app", "app2", false},
		{"a|b", "a", true}, {"a|b", "ab", false},
	} {
		re, err := store.CompilePattern(c.pattern)
		if err != nil || re.MatchString(c.name) != c.want {
			t.Errorf("CompilePattern(%q) on %q: %v, want %v", c.pattern, c.name, err, c.want)
		}
	}
	if _, err := store.CompilePattern("v("); err == nil {
		t.Error("v( compiled")
	}
}
