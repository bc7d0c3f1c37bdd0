//go:build !noembed

package app

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"

	_ "modernc.org/sqlite"
)

// TestEmbeddedStoreIndexesIDs: on the embedded store, every collection of Berth's database gets the index that
// lets FerretDB's SQLite handler answer a lookup by _id without reading the whole collection.
func TestEmbeddedStoreIndexesIDs(t *testing.T) {
	cfg, err := ParseConfig("serve", nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg.DataDir, cfg.Addr = t.TempDir(), "127.0.0.1:0"
	t.Setenv("BERTH_ADMIN_PASSWORD", "embedded-index-test")
	a, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(cfg.DataDir, "db", cfg.MongoDatabase+".sqlite")+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var tables, indexed int
	if err := db.QueryRow(`SELECT count(*) FROM "_ferretdb_collections"`).Scan(&tables); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRow(`SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name LIKE '%\_berth\_id' ESCAPE '\'`).Scan(&indexed); err != nil {
		t.Fatal(err)
	}
	if tables < 18 || indexed != tables {
		t.Fatalf("%d collections, %d with the _id index", tables, indexed)
	}
}
