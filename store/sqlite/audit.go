package sqlite

import (
	"context"
	"database/sql"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/berth-dev/berth/store"
)

// AddAuditEntries inserts a batch of entries in one transaction.
func (db *DB) AddAuditEntries(ctx context.Context, entries []store.AuditEntry) error {
	if len(entries) == 0 {
		return nil
	}
	for i := range entries {
		e := &entries[i]
		e.Time = e.Time.UTC().Truncate(time.Millisecond)
		if e.ID == "" {
			e.ID = store.NewAuditID(e.Time)
		}
	}
	// One prepared statement for the batch: parsing an INSERT costs more than running it.
	return db.write(ctx, func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx, "INSERT INTO audit_log("+tAuditLog.columns()+") VALUES("+
			placeholders(len(tAuditLog.cols)+2)+")")
		if err != nil {
			return err
		}
		defer stmt.Close()
		for i := range entries {
			e := &entries[i]
			raw, err := bson.Marshal(e)
			if err != nil {
				return err
			}
			if _, err := stmt.ExecContext(ctx, e.ID, e.User, e.Action, e.Resource, raw); err != nil {
				return alreadyExists(err)
			}
		}
		return nil
	})
}

// auditWhere is the condition of f: each of user, action and resource has an index ending in id, and the
// times are an id range, so SQLite walks one index backwards from the newest entry, never sorting.
func auditWhere(f store.AuditFilter) (string, []any) {
	var conds []string
	var args []any
	for _, kv := range []struct{ col, v string }{{"user", f.User}, {"action", f.Action}, {"resource", f.Resource}} {
		if kv.v != "" {
			conds = append(conds, kv.col+" = ?")
			args = append(args, kv.v)
		}
	}
	lo, hi := f.IDRange()
	conds = append(conds, "id >= ?", "id < ?")
	return strings.Join(conds, " AND "), append(args, lo, hi)
}

// ListAuditEntries pages through the entries f selects, newest first; the total counts at most
// store.AuditTotalCap entries.
func (db *DB) ListAuditEntries(ctx context.Context, f store.AuditFilter, p store.Page) ([]store.AuditEntry, int64, error) {
	where, args := auditWhere(f)
	tx, err := db.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, 0, err
	}
	defer func() { _ = tx.Rollback() }()
	var total int64
	if err := tx.QueryRowContext(ctx, auditCountSQL(where), append(args, store.AuditTotalCap)...).Scan(&total); err != nil {
		return nil, 0, err
	}
	items, err := docs[store.AuditEntry](ctx, tx, pageSQL(tAuditLog, where, "id DESC"),
		append(args, p.PageSize, int64(p.Page-1)*int64(p.PageSize))...)
	return items, total, err
}

func auditCountSQL(where string) string {
	return "SELECT count(*) FROM (SELECT 1 FROM audit_log WHERE " + where + " LIMIT ?)"
}

// auditSweepBatch bounds the rows one sweep transaction deletes, so that a sweep of a busy day's entries never
// holds the writer for long (pushes wait for it).
const auditSweepBatch = 5000

// DeleteAuditEntriesBefore removes the entries older than cutoff (ids below its bound: the oldest rows of the
// table's own order), a batch per transaction.
func (db *DB) DeleteAuditEntriesBefore(ctx context.Context, cutoff time.Time) (int64, error) {
	var total int64
	for {
		var n int64
		err := db.write(ctx, func(tx *sql.Tx) (err error) {
			n, err = remove(ctx, tx, tAuditLog, auditSweepWhere, store.AuditIDBound(cutoff), auditSweepBatch)
			return err
		})
		total += n
		if err != nil || n < auditSweepBatch {
			return total, err
		}
	}
}

const auditSweepWhere = "id IN (SELECT id FROM audit_log WHERE id < ? ORDER BY id LIMIT ?)"
