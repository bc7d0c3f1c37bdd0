package pipeline

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/berth-dev/berth/store"
	"github.com/berth-dev/berth/store/embedded"
	"github.com/berth-dev/berth/store/storetest"
)

// TestRetentionDecisions: which tags a run deletes, by the rules of SPEC §14, on the store alone.
func TestRetentionDecisions(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	type version struct {
		tag string
		age time.Duration
	}
	// Ages: the lower, the newer.
	web := []version{{"v1", 10 * day}, {"v2", 9 * day}, {"v3", 8 * day}, {"v4", 2 * time.Hour}, {"v5", time.Hour},
		{"rc-1", 5 * day}, {"rc-2", 3 * time.Hour}, {"latest", 30 * day}, {"frozen-1", 40 * day}}
	cases := []struct {
		name  string
		rules []store.RetentionRule
		want  []string // deleted, as repo:tag, sorted
	}{
		{"no rules keep all", nil, nil},
		{"keep last 2 of v", []store.RetentionRule{{TagPattern: "v.*", KeepLast: 2, Enabled: true}},
			[]string{"web:v1", "web:v2", "web:v3"}},
		{"keep days 1 of v", []store.RetentionRule{{TagPattern: "v.*", KeepDays: 1, Enabled: true}},
			[]string{"web:v1", "web:v2", "web:v3"}},
		{"either keep wins", []store.RetentionRule{{TagPattern: "v.*", KeepLast: 1, Enabled: true},
			{TagPattern: "v[0-9]", KeepDays: 9, Enabled: true}}, []string{"web:v1", "web:v2"}},
		{"disabled rule ignored", []store.RetentionRule{{KeepLast: 1}}, nil},
		{"empty patterns match all; immutable kept", []store.RetentionRule{{KeepLast: 1, Enabled: true}},
			[]string{"api:old", "web:latest", "web:rc-1", "web:rc-2", "web:v1", "web:v2", "web:v3", "web:v4"}},
		{"repository pattern is anchored", []store.RetentionRule{{RepositoryPattern: "we", KeepLast: 1, Enabled: true}}, nil},
		{"repository pattern", []store.RetentionRule{{RepositoryPattern: "api|db", KeepLast: 1, Enabled: true}}, []string{"api:old"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx := context.Background()
			st := storetest.New(t)
			must := func(err error) {
				t.Helper()
				if err != nil {
					t.Fatal(err)
				}
			}
			must(st.CreateNamespace(ctx, &store.Namespace{Name: "team", AccountID: "1"}, 0))
			for _, name := range []string{"web", "api"} {
				must(st.CreateRepository(ctx, &store.Repository{Namespace: "team", Name: name, AccountID: "1", Visibility: store.VisibilityPrivate}))
			}
			imm := "frozen-.*"
			_, err := st.UpdateRepository(ctx, "team", "web", store.RepositoryUpdate{ImmutableTags: &imm})
			must(err)
			for i, v := range web {
				must(st.PutImageVersion(ctx, &store.ImageVersion{Repository: "team/web", Tag: v.tag, Digest: fmt.Sprintf("sha256:%064d", i), PushedAt: now.Add(-v.age)}))
			}
			for i, v := range []version{{"new", time.Hour}, {"old", 2 * day}} {
				must(st.PutImageVersion(ctx, &store.ImageVersion{Repository: "team/api", Tag: v.tag, Digest: fmt.Sprintf("sha256:%064d", 100+i), PushedAt: now.Add(-v.age)}))
			}
			_, err = st.UpdateRetentionRules(ctx, "team", func([]store.RetentionRule) ([]store.RetentionRule, error) { return c.rules, nil })
			must(err)
			r := &Retention{Store: st, Now: func() time.Time { return now }}
			run := &store.RetentionRun{Namespace: "team"}
			must(r.apply(ctx, run))
			var got []string
			for _, d := range run.Deleted {
				got = append(got, d.Repository+":"+d.Tag)
			}
			slices.Sort(got)
			if !slices.Equal(got, c.want) || run.DeletedCount != len(c.want) || run.KeptCount != len(web)+2-len(c.want) {
				t.Fatalf("deleted %v (count %d, kept %d), want %v", got, run.DeletedCount, run.KeptCount, c.want)
			}
			_, total, err := st.ListImageVersions(ctx, "team/web", store.Page{Page: 1, PageSize: 1})
			must(err)
			if want := len(web) - len(slices.DeleteFunc(slices.Clone(c.want), func(s string) bool { return s[:4] != "web:" })); total != int64(want) {
				t.Fatalf("team/web has %d versions after the run, want %d", total, want)
			}
		})
	}
}

// TestRetentionOneAtATime: a run while another holds the lease (on any replica) is refused.
func TestRetentionOneAtATime(t *testing.T) {
	rs, err := embedded.StartRedisServer(context.Background(), t.TempDir())
	if errors.Is(err, embedded.ErrNoRedisServer) {
		t.Skip("redis-server is not installed (scripts/install-test-deps.sh installs it)")
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rs.Stop)
	rc := redis.NewClient(&redis.Options{Addr: rs.Addr, Password: rs.Password})
	t.Cleanup(func() { rc.Close() })
	ctx := context.Background()
	st := storetest.New(t)
	if err := st.CreateNamespace(ctx, &store.Namespace{Name: "team", AccountID: "1"}, 0); err != nil {
		t.Fatal(err)
	}
	r := &Retention{Store: st, Redis: rc}
	defer r.Close()
	if err := rc.Set(ctx, RetentionLeaseKey, "another-replica", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Start(ctx, "team", true, "api"); !errors.Is(err, ErrRetentionRunning) {
		t.Fatalf("start while another runs: %v", err)
	}
	rc.Del(ctx, RetentionLeaseKey)
	run, err := r.Run(ctx, "team", true, "api")
	if err != nil || run.FinishedAt == nil || run.Error != "" {
		t.Fatalf("run: %+v %v", run, err)
	}
	if n, _ := rc.Exists(ctx, RetentionLeaseKey).Result(); n != 0 {
		t.Fatal("the run left its lease")
	}
}

// TestRetentionLastRealRun: the schedule times the next run from the last run that deleted, not from a dry run
// (a preview must not push the deletion back).
func TestRetentionLastRealRun(t *testing.T) {
	ctx := context.Background()
	st := storetest.New(t)
	r := &Retention{Store: st}
	if last, err := r.lastRealRun(ctx, "team"); err != nil || !last.IsZero() {
		t.Fatalf("no runs: %v %v", last, err)
	}
	real := time.Now().Add(-3 * time.Hour).UTC().Truncate(time.Millisecond)
	if err := st.CreateRetentionRun(ctx, &store.RetentionRun{ID: "r0", Namespace: "team", StartedAt: real}); err != nil {
		t.Fatal(err)
	}
	for i := range 25 { // more than one page of previews since
		run := &store.RetentionRun{ID: fmt.Sprintf("d%02d", i), Namespace: "team", DryRun: true,
			StartedAt: real.Add(time.Duration(i+1) * time.Minute)}
		if err := st.CreateRetentionRun(ctx, run); err != nil {
			t.Fatal(err)
		}
	}
	if last, err := r.lastRealRun(ctx, "team"); err != nil || !last.Equal(real) {
		t.Fatalf("last real run %v (%v), want %v", last, err, real)
	}
}
