package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/berth-dev/berth/store"
)

// migratedID is the meta document that records a finished migration.
const migratedID = "migrated-from-mongo"

type migrated struct {
	ID        string           `bson:"_id"`
	From      string           `bson:"from"`
	Documents map[string]int64 `bson:"documents"`
}

var tMigrated = &table{name: "meta", values: func(d any) (string, []any) { return d.(*migrated).ID, nil }}

// Migrated reports whether a migration into db finished, and from where.
func (db *DB) Migrated(ctx context.Context) (from string, ok bool, err error) {
	m, err := get[migrated](ctx, db.r, tMigrated, migratedID)
	if errors.Is(err, store.ErrNotFound) {
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	return m.From, true, nil
}

// sources of a migration: each MongoDB collection and the table its documents go to (nil: derived, skipped).
var migrations = []struct {
	collection string
	table      *table
}{
	{"meta", tMeta}, {"users", tUsers}, {"access_keys", tAccessKeys}, {"policies", tPolicies}, {"keys", tKeys},
	{"console_sessions", tSessions}, {"namespaces", tNamespaces}, {"repositories", tRepositories},
	{"tags", tTags}, {"scans", nil}, {"security_policies", tSecurityPolicies}, {"sources", tSources},
	{"source_hooks", nil}, {"hook_deliveries", tHookDeliveries}, {"build_rules", tBuildRules},
	{"builds", tBuilds}, {"build_logs", tBuildLogs}, {"triggers", tTriggers},
	{"trigger_records", tTriggerRecords}, {"gc_runs", tGCRuns},
	{"retention_rules", tRetentionRules}, {"retention_runs", tRetentionRuns}, {"audit_log", tAuditLog},
	{"code_accounts", tCodeAccounts},
}

// MigrateFrom copies every document of src (a Berth database on MongoDB or FerretDB, e.g. the embedded
// FerretDB of earlier versions) into db, in one transaction, and records that it did: a migration that stops
// half way leaves db as it was, and one that finished is never run again. from names the source in that
// record. It returns the documents copied per collection.
func (db *DB) MigrateFrom(ctx context.Context, src *mongo.Database, from string) (map[string]int64, error) {
	counts := map[string]int64{}
	err := db.write(ctx, func(tx *sql.Tx) error {
		if _, err := get[migrated](ctx, tx, tMigrated, migratedID); err == nil {
			return errors.New("the store was migrated already")
		}
		for _, m := range migrations {
			n, err := migrateCollection(ctx, tx, src.Collection(m.collection), m.table)
			if err != nil {
				return fmt.Errorf("migrate %s: %w", m.collection, err)
			}
			counts[m.collection] = n
		}
		_, err := put(ctx, tx, tMigrated, &migrated{ID: migratedID, From: from, Documents: counts})
		return err
	})
	if err != nil {
		return nil, err
	}
	return counts, nil
}

func migrateCollection(ctx context.Context, tx *sql.Tx, col *mongo.Collection, t *table) (int64, error) {
	if t == nil && col.Name() == "source_hooks" {
		return 0, nil // sources carry their hook id
	}
	cur, err := col.Find(ctx, bson.D{})
	if err != nil {
		return 0, err
	}
	defer cur.Close(ctx)
	var n int64
	for cur.Next(ctx) {
		raw := bson.Raw(append([]byte(nil), cur.Current...))
		if err := migrateDocument(ctx, tx, t, raw); err != nil {
			return n, fmt.Errorf("document %s: %w", raw.Lookup("_id"), err)
		}
		n++
	}
	return n, cur.Err()
}

func migrateDocument(ctx context.Context, tx *sql.Tx, t *table, raw bson.Raw) error {
	if t == nil { // scans: the vulnerabilities go apart
		var sc store.Scan
		if err := bson.Unmarshal(raw, &sc); err != nil {
			return err
		}
		return putScan(ctx, tx, &sc)
	}
	d := t.newDoc()
	if err := bson.Unmarshal(raw, d); err != nil {
		return err
	}
	if b, ok := d.(*store.Build); ok {
		return putBuild(ctx, tx, b, false)
	}
	id, vals := t.values(d)
	inserted, err := putRow(ctx, tx, t, id, vals, raw)
	if r, ok := d.(*store.Repository); ok && inserted && err == nil {
		err = bumpRepoCounters(ctx, tx, r, 1)
	}
	return err
}
