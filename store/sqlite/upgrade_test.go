package sqlite

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"

	"github.com/berth-dev/berth/store"
)

// TestUpgradeAddsColumns: a store made before sources had code_account opens, keeps its sources, and finds
// them by code account.
func TestUpgradeAddsColumns(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), FileName)
	old, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := old.Exec(`CREATE TABLE sources (id TEXT PRIMARY KEY, hook_id TEXT NOT NULL, doc BLOB NOT NULL);
		CREATE UNIQUE INDEX sources_hook ON sources(hook_id);
		INSERT INTO sources VALUES ('team/app', 'h1', x'05000000' || x'00');`); err != nil {
		t.Fatal(err)
	}
	old.Close()
	db, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(ctx)
	var n int
	if err := db.r.QueryRowContext(ctx, "SELECT count(*) FROM sources WHERE code_account = ''").Scan(&n); err != nil || n != 1 {
		t.Fatalf("old sources with an empty code_account: %d, %v", n, err)
	}
	if err := db.DeleteCodeAccount(ctx, "missing"); err != store.ErrNotFound {
		t.Fatalf("DeleteCodeAccount on the upgraded store: %v", err)
	}
	// Opening it again changes nothing.
	db2, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	db2.Close(ctx)
}
