package sqlite

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/berth-dev/berth/store"
)

// BenchmarkAddAuditEntries: the cost of one entry in the writer's batches of 512 (ns/op is per entry).
func BenchmarkAddAuditEntries(b *testing.B) {
	ctx := context.Background()
	db, err := Open(ctx, filepath.Join(b.TempDir(), FileName))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close(ctx)
	batch := make([]store.AuditEntry, 512)
	b.ResetTimer()
	for i := 0; i < b.N; i += len(batch) {
		for j := range batch {
			batch[j] = store.AuditEntry{Time: time.Now(), User: fmt.Sprint("user", j%10), Client: "127.0.0.1",
				Action: "cr:PullRepository", Resource: fmt.Sprint("acs:cr:cn-hangzhou:1234567890123456:repository/team/app", j%50),
				Status: 200, RequestID: "0123456789abcdef"}
		}
		if err := db.AddAuditEntries(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkListAuditEntries: a page (and its capped total) of each filter over 100,000 entries (50 users, 20
// actions, 500 resources, a day of time): what the API and the console ask.
func BenchmarkListAuditEntries(b *testing.B) {
	ctx := context.Background()
	db, err := Open(ctx, filepath.Join(b.TempDir(), FileName))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close(ctx)
	start := time.Now().Add(-24 * time.Hour)
	batch := make([]store.AuditEntry, 0, 1000)
	for i := range 100_000 {
		batch = append(batch, store.AuditEntry{Time: start.Add(time.Duration(i) * 864 * time.Millisecond),
			User: fmt.Sprint("user", i%50), Action: fmt.Sprint("cr:Action", i%20),
			Resource: fmt.Sprint("acs:cr:cn-hangzhou:1234567890123456:repository/team/app", i%500), Status: 200})
		if len(batch) == cap(batch) {
			if err := db.AddAuditEntries(ctx, batch); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	mid := start.Add(12 * time.Hour)
	for _, c := range []struct {
		name string
		f    store.AuditFilter
		page int
	}{
		{"all", store.AuditFilter{}, 1},
		{"all-page-400", store.AuditFilter{}, 400},
		{"user", store.AuditFilter{User: "user7"}, 1},
		{"action", store.AuditFilter{Action: "cr:Action3"}, 1},
		{"resource", store.AuditFilter{Resource: "acs:cr:cn-hangzhou:1234567890123456:repository/team/app42"}, 1},
		{"user+action", store.AuditFilter{User: "user7", Action: "cr:Action7"}, 1},
		{"user+until-noon", store.AuditFilter{User: "user7", Until: mid}, 1},
		{"since-until-1h", store.AuditFilter{Since: mid, Until: mid.Add(time.Hour)}, 1},
	} {
		b.Run(c.name, func(b *testing.B) {
			for range b.N {
				items, _, err := db.ListAuditEntries(ctx, c.f, store.Page{Page: c.page, PageSize: 20})
				if err != nil || len(items) == 0 {
					b.Fatal(err, len(items))
				}
			}
		})
	}
}
