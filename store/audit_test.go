package store_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/berth-dev/berth/store"
	"github.com/berth-dev/berth/store/storetest"
)

// TestAuditLogFiltersPagingAndRetention: entries come back newest first, filtered by user, action, resource and
// time range alone and combined, paged without gaps or repeats; the sweep removes only the old ones.
func TestAuditLogFiltersPagingAndRetention(t *testing.T) {
	ctx := context.Background()
	s := storetest.New(t)
	base := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	users := []string{"alice", "bob", "anonymous"}
	actions := []string{"cr:PushRepository", "cr:PullRepository", "ram:Login"}
	var batch []store.AuditEntry
	for i := range 30 {
		batch = append(batch, store.AuditEntry{Time: base.Add(time.Duration(i) * time.Minute), User: users[i%3],
			Client: "10.0.0.1", Action: actions[(i/3)%3], Resource: fmt.Sprintf("acs:cr:r:1:repository/team/app%d", i%2),
			Status: 200 + i, RequestID: fmt.Sprintf("req%02d", i)})
	}
	// Two batches, the second older than the first: the order comes from the times, not the insertion.
	if err := s.AddAuditEntries(ctx, batch[15:]); err != nil {
		t.Fatal(err)
	}
	if err := s.AddAuditEntries(ctx, batch[:15]); err != nil {
		t.Fatal(err)
	}
	want := func(f func(i int) bool) []string {
		var out []string
		for i := 29; i >= 0; i-- {
			if f(i) {
				out = append(out, fmt.Sprintf("req%02d", i))
			}
		}
		return out
	}
	for _, c := range []struct {
		name string
		f    store.AuditFilter
		want []string
	}{
		{"all", store.AuditFilter{}, want(func(int) bool { return true })},
		{"user", store.AuditFilter{User: "bob"}, want(func(i int) bool { return i%3 == 1 })},
		{"action", store.AuditFilter{Action: "ram:Login"}, want(func(i int) bool { return (i/3)%3 == 2 })},
		{"resource", store.AuditFilter{Resource: "acs:cr:r:1:repository/team/app1"}, want(func(i int) bool { return i%2 == 1 })},
		{"user and action", store.AuditFilter{User: "alice", Action: "cr:PushRepository"},
			want(func(i int) bool { return i%3 == 0 && (i/3)%3 == 0 })},
		{"since and until (inclusive)", store.AuditFilter{Since: base.Add(5 * time.Minute), Until: base.Add(9 * time.Minute)},
			want(func(i int) bool { return i >= 5 && i <= 9 })},
		{"user since", store.AuditFilter{User: "alice", Since: base.Add(20 * time.Minute)},
			want(func(i int) bool { return i%3 == 0 && i >= 20 })},
		{"nothing", store.AuditFilter{User: "carol"}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			var got []string
			for pg := 1; pg <= 10; pg++ {
				items, total, err := s.ListAuditEntries(ctx, c.f, store.Page{Page: pg, PageSize: 4})
				if err != nil {
					t.Fatal(err)
				}
				if total != int64(len(c.want)) {
					t.Fatalf("total %d, want %d", total, len(c.want))
				}
				for _, e := range items {
					got = append(got, e.RequestID)
				}
				if len(items) < 4 {
					break
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(c.want) {
				t.Fatalf("got %v\nwant %v", got, c.want)
			}
		})
	}
	items, _, err := s.ListAuditEntries(ctx, store.AuditFilter{}, store.Page{Page: 1, PageSize: 1})
	if err != nil || len(items) != 1 {
		t.Fatal(err, items)
	}
	e := items[0]
	if e.User != "anonymous" || e.Client != "10.0.0.1" || e.Action != "cr:PushRepository" || e.Status != 229 || !e.Time.Equal(base.Add(29*time.Minute)) || e.ID == "" {
		t.Fatalf("entry not kept as written: %+v", e)
	}

	// Retention: the first ten minutes go.
	n, err := s.DeleteAuditEntriesBefore(ctx, base.Add(10*time.Minute))
	if err != nil || n != 10 {
		t.Fatalf("sweep: %d, %v", n, err)
	}
	_, total, err := s.ListAuditEntries(ctx, store.AuditFilter{}, store.Page{Page: 1, PageSize: 1})
	if err != nil || total != 20 {
		t.Fatalf("after the sweep: total %d, %v", total, err)
	}
}

// TestAuditLogTotalIsCapped: a filter matching more than AuditTotalCap entries answers the cap, and pages past
// it still answer.
func TestAuditLogTotalIsCapped(t *testing.T) {
	if testing.Short() {
		t.Skip("writes AuditTotalCap entries")
	}
	ctx := context.Background()
	s := storetest.New(t)
	base := time.Now().Add(-time.Hour)
	n := store.AuditTotalCap + 50
	batch := make([]store.AuditEntry, 0, 1000)
	for i := range n {
		batch = append(batch, store.AuditEntry{Time: base.Add(time.Duration(i) * time.Millisecond), User: "u", Action: "a",
			Resource: "*", Status: 200, RequestID: fmt.Sprint(i)})
		if len(batch) == cap(batch) || i == n-1 {
			if err := s.AddAuditEntries(ctx, batch); err != nil {
				t.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	items, total, err := s.ListAuditEntries(ctx, store.AuditFilter{User: "u"}, store.Page{Page: n / 10, PageSize: 10})
	if err != nil || total != store.AuditTotalCap || len(items) != 10 || items[9].RequestID != "0" {
		t.Fatalf("total %d, %d items, %v", total, len(items), err)
	}
}
