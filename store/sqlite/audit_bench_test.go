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
