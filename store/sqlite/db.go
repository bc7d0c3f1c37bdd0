// Package sqlite is the embedded default's store: Berth's state in one SQLite file (modernc.org/sqlite, pure
// Go) under the data dir, with a table per collection and an index for every query, so that a page costs the
// same with years of history as on day one (SPEC §10). It implements store.Store and passes the same test
// suite as the MongoDB backend (storetest).
//
// Each table keeps the document itself (BSON, with the same field names as on MongoDB, so that a migration
// copies documents as they are) beside the columns its queries filter and sort on. All writes go through one
// connection in IMMEDIATE transactions, so a write that reads first (a build's status, a namespace limit, a
// scan's waiting pushes) is exclusive without a lease, also against another process opening the same file.
// The long lists (a repository's versions and builds, a trigger's records) keep their totals in counters
// updated in the same transactions, and a page past the middle is read from the far end of its index: the
// last page costs what the first does.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	_ "modernc.org/sqlite" // the database/sql driver "sqlite"

	"github.com/berth-dev/berth/store"
)

// FileName is the database's file in its directory.
const FileName = "berth.db"

// DB is the Store on SQLite. It is safe for concurrent use.
type DB struct {
	path string
	w    *sql.DB // the one writing connection
	r    *sql.DB // readers (WAL: they never wait for the writer)
}

var _ store.Store = (*DB)(nil)

// Open opens (creating when missing) the database at path and makes sure every table and index exists.
func Open(ctx context.Context, path string) (*DB, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create the store's directory: %w", err)
	}
	dsn := func(extra string) string {
		q := url.Values{}
		for _, p := range []string{"busy_timeout(30000)", "journal_mode(WAL)", "synchronous(NORMAL)", "foreign_keys(0)"} {
			q.Add("_pragma", p)
		}
		return "file:" + path + "?" + q.Encode() + extra
	}
	w, err := sql.Open("sqlite", dsn("&_txlock=immediate"))
	if err != nil {
		return nil, fmt.Errorf("open the store %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetConnMaxIdleTime(0)
	db := &DB{path: path, w: w}
	if _, err := w.ExecContext(ctx, schema); err != nil {
		_ = w.Close()
		return nil, fmt.Errorf("the store %s: %w (is it a Berth store? move it away to start afresh)", path, err)
	}
	if err := upgrade(ctx, w); err != nil {
		_ = w.Close()
		return nil, fmt.Errorf("upgrade the store %s: %w", path, err)
	}
	_ = os.Chmod(path, 0o600)
	r, err := sql.Open("sqlite", dsn("&_pragma=query_only(1)"))
	if err != nil {
		_ = w.Close()
		return nil, err
	}
	r.SetMaxOpenConns(8)
	r.SetMaxIdleConns(8)
	db.r = r
	return db, nil
}

// upgrade adds the columns of upgrades that a table lacks, then runs what needs them.
func upgrade(ctx context.Context, w *sql.DB) error {
	for _, u := range upgrades {
		var n int
		if err := w.QueryRowContext(ctx, "SELECT count(*) FROM pragma_table_info(?) WHERE name = ?", u.table, u.column).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			if _, err := w.ExecContext(ctx, "ALTER TABLE "+u.table+" ADD COLUMN "+u.column+" "+u.definition); err != nil {
				return err
			}
		}
		if _, err := w.ExecContext(ctx, u.then); err != nil {
			return err
		}
	}
	return nil
}

// Path is the database's file.
func (db *DB) Path() string { return db.path }

// Close closes the database.
func (db *DB) Close(context.Context) error {
	return errors.Join(db.r.Close(), db.w.Close())
}

// Ping checks that the database answers.
func (db *DB) Ping(ctx context.Context) error {
	return db.r.QueryRowContext(ctx, "SELECT 1").Scan(new(int))
}

// querier is what reads need: the readers' pool or a write transaction.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// strs runs query, which selects one string column, and answers the column's values (nil for no row).
func strs(ctx context.Context, q querier, query string, args ...any) ([]string, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// write runs fn in one IMMEDIATE transaction: no other writer, in this process or another, runs meanwhile.
func (db *DB) write(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: begin: %w", err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: commit: %w", err)
	}
	return nil
}

// table describes one collection: its SQL table keeps id, the columns of values (in cols' order) and the
// document.
type table struct {
	name string
	cols []string
	// values returns the document's id and the values of cols.
	values func(doc any) (string, []any)
	// newDoc returns a pointer to a zero document (for migrations).
	newDoc func() any
	// countBy names the column whose values key the table's counter ("" = not counted).
	countBy string
}

// columns lists the table's columns for an INSERT: id, cols, doc.
func (t *table) columns() string {
	return strings.Join(append(append([]string{"id"}, t.cols...), "doc"), ", ")
}

func (t *table) countIndex() int {
	for i, c := range t.cols {
		if c == t.countBy {
			return i
		}
	}
	return -1
}

func counterKey(t *table, v any) string { return t.name + "/" + fmt.Sprint(v) }

// bump adds delta to a counter.
func bump(ctx context.Context, tx querier, key string, delta int64) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO counters(key, n) VALUES(?, ?)
		ON CONFLICT(key) DO UPDATE SET n = n + excluded.n`, key, delta)
	return err
}

// count reads the counter of t's rows whose countBy column is v.
func count(ctx context.Context, q querier, t *table, v any) (int64, error) {
	return counter(ctx, q, counterKey(t, v))
}

// counter reads the counter key (0 when it was never bumped).
func counter(ctx context.Context, q querier, key string) (int64, error) {
	var n int64
	err := q.QueryRowContext(ctx, "SELECT n FROM counters WHERE key = ?", key).Scan(&n)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	return n, err
}

// put inserts doc or replaces the document of its id; inserted tells which.
func put(ctx context.Context, tx querier, t *table, doc any) (inserted bool, err error) {
	id, vals := t.values(doc)
	raw, err := bson.Marshal(doc)
	if err != nil {
		return false, err
	}
	return putRow(ctx, tx, t, id, vals, raw)
}

// putRow is put of a document already encoded.
func putRow(ctx context.Context, tx querier, t *table, id string, vals []any, raw []byte) (inserted bool, err error) {
	ci := t.countIndex()
	if ci >= 0 {
		var old any
		switch err := tx.QueryRowContext(ctx, "SELECT "+t.countBy+" FROM "+t.name+" WHERE id = ?", id).Scan(&old); {
		case errors.Is(err, sql.ErrNoRows):
			inserted = true
		case err != nil:
			return false, err
		case fmt.Sprint(old) != fmt.Sprint(vals[ci]): // moved to another counter (never, for today's tables)
			if err := bump(ctx, tx, counterKey(t, old), -1); err != nil {
				return false, err
			}
			if err := bump(ctx, tx, counterKey(t, vals[ci]), 1); err != nil {
				return false, err
			}
		}
	}
	set := make([]string, 0, len(t.cols)+1)
	for _, c := range t.cols {
		set = append(set, c+" = excluded."+c)
	}
	set = append(set, "doc = excluded.doc")
	_, err = tx.ExecContext(ctx, "INSERT INTO "+t.name+"("+t.columns()+") VALUES("+
		placeholders(len(t.cols)+2)+") ON CONFLICT(id) DO UPDATE SET "+strings.Join(set, ", "),
		append(append([]any{id}, vals...), raw)...)
	if err != nil {
		return false, alreadyExists(err)
	}
	if ci >= 0 && inserted {
		if err := bump(ctx, tx, counterKey(t, vals[ci]), 1); err != nil {
			return false, err
		}
	}
	return inserted, nil
}

// insert adds doc; store.ErrAlreadyExists when its id (or another unique column) is taken.
func insert(ctx context.Context, tx querier, t *table, doc any) error {
	id, vals := t.values(doc)
	raw, err := bson.Marshal(doc)
	if err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, "INSERT INTO "+t.name+"("+t.columns()+") VALUES("+placeholders(len(t.cols)+2)+")", append(append([]any{id}, vals...), []byte(raw))...)
	if err != nil {
		return alreadyExists(err)
	}
	if ci := t.countIndex(); ci >= 0 {
		return bump(ctx, tx, counterKey(t, vals[ci]), 1)
	}
	return nil
}

// remove deletes the rows of t that match where, keeping its counters, and returns how many went.
func remove(ctx context.Context, tx querier, t *table, where string, args ...any) (int64, error) {
	if t.countBy != "" {
		// The counters of the rows going, added up here: a GROUP BY would lead SQLite to walk the counted
		// column's index instead of the one that finds the rows.
		rows, err := tx.QueryContext(ctx, "SELECT "+t.countBy+" FROM "+t.name+" WHERE "+where, args...)
		if err != nil {
			return 0, err
		}
		gone := map[string]int64{}
		for rows.Next() {
			var v any
			if err := rows.Scan(&v); err != nil {
				rows.Close()
				return 0, err
			}
			gone[counterKey(t, v)]++
		}
		if err := errors.Join(rows.Err(), rows.Close()); err != nil {
			return 0, err
		}
		for key, n := range gone {
			if err := bump(ctx, tx, key, -n); err != nil {
				return 0, err
			}
		}
	}
	res, err := tx.ExecContext(ctx, "DELETE FROM "+t.name+" WHERE "+where, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// removeID deletes one document; store.ErrNotFound when there was none.
func removeID(ctx context.Context, tx querier, t *table, id string) error {
	n, err := remove(ctx, tx, t, "id = ?", id)
	if err == nil && n == 0 {
		err = store.ErrNotFound
	}
	return err
}

// get reads the document id of t.
func get[T any](ctx context.Context, q querier, t *table, id string) (*T, error) {
	var raw []byte
	err := q.QueryRowContext(ctx, "SELECT doc FROM "+t.name+" WHERE id = ?", id).Scan(&raw)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	v := new(T)
	if err := bson.Unmarshal(raw, v); err != nil {
		return nil, fmt.Errorf("store: decode %s %s: %w", t.name, id, err)
	}
	return v, nil
}

// docs reads the documents a query selects (its one column is doc).
func docs[T any](ctx context.Context, q querier, query string, args ...any) ([]T, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []T{}
	for rows.Next() {
		var raw []byte
		if err := rows.Scan(&raw); err != nil {
			return nil, err
		}
		var v T
		if err := bson.Unmarshal(raw, &v); err != nil {
			return nil, fmt.Errorf("store: decode: %w", err)
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// order is a list's sort on an index, and the same sort reversed.
type order struct{ fwd, rev string }

// The lists' sorts.
var (
	byID      = order{"id", "id DESC"}
	byIDDesc  = order{"id DESC", "id"} // builds and trigger records: ids sort by creation
	byCreated = order{"created_at, id", "created_at DESC, id DESC"}
	byPush    = order{"pushed_at DESC, id", "pushed_at, id DESC"} // versions, newest push first
)

// page reads page p of the rows of t matching where, of which there are total. A page past the middle is read
// from the other end of the index (the sort reversed), so the last page skips as few rows as the first.
func page[T any](ctx context.Context, q querier, t *table, where string, args []any, o order, p store.Page, total int64) ([]T, error) {
	skip, size := int64(p.Page-1)*int64(p.PageSize), int64(p.PageSize)
	if skip >= total || size <= 0 {
		return []T{}, nil
	}
	if skip+size/2 <= total/2 {
		return docs[T](ctx, q, pageSQL(t, where, o.fwd), append(args, size, skip)...)
	}
	// From the end: the rows [skip, skip+size) are [total-skip-size, total-skip) counted backwards.
	end := total - skip // rows from the page's first row to the last
	n := min(size, end)
	items, err := docs[T](ctx, q, pageSQL(t, where, o.rev), append(args, n, end-n)...)
	for i, j := 0, len(items)-1; i < j; i, j = i+1, j-1 {
		items[i], items[j] = items[j], items[i]
	}
	return items, err
}

// pageSQL selects a page of t's documents matching where in sort order by.
func pageSQL(t *table, where, by string) string {
	if where != "" {
		where = " WHERE " + where
	}
	return "SELECT doc FROM " + t.name + where + " ORDER BY " + by + " LIMIT ? OFFSET ?"
}

func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
}

func alreadyExists(err error) error {
	if err != nil && strings.Contains(err.Error(), "UNIQUE constraint failed") {
		return store.ErrAlreadyExists
	}
	return err
}

func now() time.Time { return time.Now().UTC().Truncate(time.Millisecond) }

// ms is a time as a column value: milliseconds since the epoch, as BSON keeps times.
func ms(t time.Time) int64 { return t.UnixMilli() }

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
