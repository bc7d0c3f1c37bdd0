package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/berth-dev/berth/store"
)

// CreateTrigger adds t to its repository, giving it an id when it has none.
func (db *DB) CreateTrigger(ctx context.Context, t *store.Trigger) error {
	if t.ID == "" {
		t.ID = store.NewTriggerID()
	}
	if t.Tags == nil {
		t.Tags = []string{}
	}
	t.CreatedAt, t.UpdatedAt = now(), now()
	return db.write(ctx, func(tx *sql.Tx) error {
		if ok, err := exists(ctx, tx, tRepositories, t.Repository); err != nil {
			return err
		} else if !ok {
			return store.ErrNotFound
		}
		return insert(ctx, tx, tTriggers, t)
	})
}

func getTrigger(ctx context.Context, q querier, repo, id string) (*store.Trigger, error) {
	t, err := get[store.Trigger](ctx, q, tTriggers, id)
	if err != nil {
		return nil, err
	}
	if t.Repository != repo {
		return nil, store.ErrNotFound
	}
	return t, nil
}

// GetTrigger returns trigger id of repo.
func (db *DB) GetTrigger(ctx context.Context, repo, id string) (*store.Trigger, error) {
	return getTrigger(ctx, db.r, repo, id)
}

// ListTriggers pages through repo's triggers in creation order.
func (db *DB) ListTriggers(ctx context.Context, repo string, p store.Page) ([]store.Trigger, int64, error) {
	var total int64
	if err := db.r.QueryRowContext(ctx, "SELECT count(*) FROM triggers WHERE repository = ?", repo).Scan(&total); err != nil {
		return nil, 0, err
	}
	items, err := page[store.Trigger](ctx, db.r, tTriggers, "repository = ?", []any{repo},
		byCreated, p, total)
	return items, total, err
}

// EnabledTriggers returns repo's enabled triggers in creation order.
func (db *DB) EnabledTriggers(ctx context.Context, repo string) ([]store.Trigger, error) {
	return docs[store.Trigger](ctx, db.r,
		"SELECT doc FROM triggers WHERE repository = ? AND enabled = 1 ORDER BY created_at, id", repo)
}

// UpdateTrigger applies change to trigger id of repo and stores it.
func (db *DB) UpdateTrigger(ctx context.Context, repo, id string, change func(*store.Trigger) error) (t *store.Trigger, err error) {
	err = db.write(ctx, func(tx *sql.Tx) error {
		if t, err = getTrigger(ctx, tx, repo, id); err != nil {
			return err
		}
		if err := change(t); err != nil {
			return err
		}
		t.ID, t.Repository = id, repo
		if t.Tags == nil {
			t.Tags = []string{}
		}
		t.UpdatedAt = now()
		_, err = put(ctx, tx, tTriggers, t)
		return err
	})
	if err != nil {
		return nil, err
	}
	return t, nil
}

// DeleteTrigger removes trigger id of repo with its records.
func (db *DB) DeleteTrigger(ctx context.Context, repo, id string) error {
	return db.write(ctx, func(tx *sql.Tx) error {
		n, err := remove(ctx, tx, tTriggers, "id = ? AND repository = ?", id, repo)
		if err != nil {
			return err
		}
		if n == 0 {
			return store.ErrNotFound
		}
		_, err = remove(ctx, tx, tTriggerRecords, "trigger_id = ?", id)
		return err
	})
}

// PutTriggerRecord writes r (replacing the record of its id).
func (db *DB) PutTriggerRecord(ctx context.Context, r *store.TriggerRecord) error {
	if r.ID == "" || r.TriggerID == "" {
		return errors.New("trigger record needs an id and a trigger id")
	}
	if r.Time.IsZero() {
		r.Time = now()
	}
	return db.write(ctx, func(tx *sql.Tx) error {
		_, err := put(ctx, tx, tTriggerRecords, r)
		return err
	})
}

// GetTriggerRecord returns the record id.
func (db *DB) GetTriggerRecord(ctx context.Context, id string) (*store.TriggerRecord, error) {
	return get[store.TriggerRecord](ctx, db.r, tTriggerRecords, id)
}

// ListTriggerRecords pages through a trigger's records, newest first.
func (db *DB) ListTriggerRecords(ctx context.Context, triggerID string, p store.Page) ([]store.TriggerRecord, int64, error) {
	return countedPage[store.TriggerRecord](ctx, db.r, tTriggerRecords, "trigger_id = ?", triggerID,
		byIDDesc, p)
}

// DeleteTriggerRecordsBefore removes the records last written before cutoff.
func (db *DB) DeleteTriggerRecordsBefore(ctx context.Context, cutoff time.Time) (n int64, err error) {
	err = db.write(ctx, func(tx *sql.Tx) error {
		n, err = remove(ctx, tx, tTriggerRecords, "time < ?", ms(cutoff))
		return err
	})
	return n, err
}

// CreateGCRun records a garbage collection run that starts.
func (db *DB) CreateGCRun(ctx context.Context, r *store.GCRun) error {
	r.StartedAt = r.StartedAt.UTC().Truncate(time.Millisecond)
	return db.write(ctx, func(tx *sql.Tx) error { return insert(ctx, tx, tGCRuns, r) })
}

// FinishGCRun records the end of run r with its counts and error.
func (db *DB) FinishGCRun(ctx context.Context, r *store.GCRun) error {
	fin := now()
	r.FinishedAt = &fin
	return db.write(ctx, func(tx *sql.Tx) error {
		old, err := get[store.GCRun](ctx, tx, tGCRuns, r.ID)
		if err != nil {
			return err
		}
		old.FinishedAt, old.ManifestsDeleted, old.BlobsDeleted, old.BytesFreed, old.Error =
			&fin, r.ManifestsDeleted, r.BlobsDeleted, r.BytesFreed, r.Error
		_, err = put(ctx, tx, tGCRuns, old)
		return err
	})
}

// GetGCRun returns the run id.
func (db *DB) GetGCRun(ctx context.Context, id string) (*store.GCRun, error) {
	return get[store.GCRun](ctx, db.r, tGCRuns, id)
}

// ListGCRuns pages through the runs, newest first.
func (db *DB) ListGCRuns(ctx context.Context, p store.Page) ([]store.GCRun, int64, error) {
	var total int64
	if err := db.r.QueryRowContext(ctx, "SELECT count(*) FROM gc_runs").Scan(&total); err != nil {
		return nil, 0, err
	}
	items, err := page[store.GCRun](ctx, db.r, tGCRuns, "", nil, byIDDesc, p, total)
	return items, total, err
}

// LastGCRun returns the newest run.
func (db *DB) LastGCRun(ctx context.Context) (*store.GCRun, error) {
	runs, err := docs[store.GCRun](ctx, db.r, "SELECT doc FROM gc_runs ORDER BY id DESC LIMIT 1")
	if err != nil {
		return nil, err
	}
	if len(runs) == 0 {
		return nil, store.ErrNotFound
	}
	return &runs[0], nil
}

// EndUnfinishedGCRuns marks every unfinished run but id as finished with message (their process died).
func (db *DB) EndUnfinishedGCRuns(ctx context.Context, id, message string) (n int64, err error) {
	err = db.write(ctx, func(tx *sql.Tx) error {
		runs, err := docs[store.GCRun](ctx, tx, "SELECT doc FROM gc_runs WHERE finished = 0 AND id != ?", id)
		if err != nil {
			return err
		}
		for i := range runs {
			fin := now()
			runs[i].FinishedAt, runs[i].Error = &fin, message
			if _, err := put(ctx, tx, tGCRuns, &runs[i]); err != nil {
				return err
			}
		}
		n = int64(len(runs))
		return nil
	})
	return n, err
}
