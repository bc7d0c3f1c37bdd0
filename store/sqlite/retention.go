package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/berth-dev/berth/store"
)

// GetRetentionRules returns a namespace's retention rules in their order (none: an empty list).
func (db *DB) GetRetentionRules(ctx context.Context, namespace string) ([]store.RetentionRule, error) {
	return getRetentionRules(ctx, db.r, namespace)
}

func getRetentionRules(ctx context.Context, q querier, namespace string) ([]store.RetentionRule, error) {
	d, err := get[store.RetentionRuleSet](ctx, q, tRetentionRules, namespace)
	if errors.Is(err, store.ErrNotFound) {
		return []store.RetentionRule{}, nil
	}
	if err != nil {
		return nil, err
	}
	if d.Rules == nil {
		d.Rules = []store.RetentionRule{}
	}
	return d.Rules, nil
}

// UpdateRetentionRules replaces a namespace's rules with what change makes of them, in one transaction.
func (db *DB) UpdateRetentionRules(ctx context.Context, namespace string, change func([]store.RetentionRule) ([]store.RetentionRule, error)) (rules []store.RetentionRule, err error) {
	err = db.write(ctx, func(tx *sql.Tx) error {
		if _, err := get[store.Namespace](ctx, tx, tNamespaces, namespace); err != nil {
			return err
		}
		old, err := getRetentionRules(ctx, tx, namespace)
		if err != nil {
			return err
		}
		if rules, err = change(old); err != nil {
			return err
		}
		if rules == nil {
			rules = []store.RetentionRule{}
		}
		_, err = put(ctx, tx, tRetentionRules, &store.RetentionRuleSet{Namespace: namespace, Rules: rules, UpdatedAt: now()})
		return err
	})
	if err != nil {
		return nil, err
	}
	return rules, nil
}

// NamespacesWithRetentionRules lists the namespaces that have any retention rule.
func (db *DB) NamespacesWithRetentionRules(ctx context.Context) ([]string, error) {
	out, err := strs(ctx, db.r, "SELECT id FROM retention_rules WHERE rules > 0 ORDER BY id")
	if out == nil && err == nil {
		out = []string{}
	}
	return out, err
}

// CreateRetentionRun records a run that has started.
func (db *DB) CreateRetentionRun(ctx context.Context, r *store.RetentionRun) error {
	r.StartedAt = r.StartedAt.UTC().Truncate(time.Millisecond)
	if r.Deleted == nil {
		r.Deleted = []store.RetentionDeletion{}
	}
	return db.write(ctx, func(tx *sql.Tx) error { return insert(ctx, tx, tRetentionRuns, r) })
}

// FinishRetentionRun stores a run's outcome and marks it finished.
func (db *DB) FinishRetentionRun(ctx context.Context, r *store.RetentionRun) error {
	fin := now()
	r.FinishedAt = &fin
	if r.Deleted == nil {
		r.Deleted = []store.RetentionDeletion{}
	}
	return db.write(ctx, func(tx *sql.Tx) error {
		if _, err := get[store.RetentionRun](ctx, tx, tRetentionRuns, r.ID); err != nil {
			return err
		}
		_, err := put(ctx, tx, tRetentionRuns, r)
		return err
	})
}

// GetRetentionRun returns one run of a namespace.
func (db *DB) GetRetentionRun(ctx context.Context, namespace, id string) (*store.RetentionRun, error) {
	r, err := get[store.RetentionRun](ctx, db.r, tRetentionRuns, id)
	if err != nil {
		return nil, err
	}
	if r.Namespace != namespace {
		return nil, store.ErrNotFound
	}
	return r, nil
}

// ListRetentionRuns pages through a namespace's runs, newest first.
func (db *DB) ListRetentionRuns(ctx context.Context, namespace string, p store.Page) ([]store.RetentionRun, int64, error) {
	return countedPage[store.RetentionRun](ctx, db.r, tRetentionRuns, "namespace = ?", namespace, byIDDesc, p)
}

// EndUnfinishedRetentionRuns marks every unfinished run but id as finished with message (their process died).
func (db *DB) EndUnfinishedRetentionRuns(ctx context.Context, id, message string) (n int64, err error) {
	err = db.write(ctx, func(tx *sql.Tx) error {
		runs, err := docs[store.RetentionRun](ctx, tx, "SELECT doc FROM retention_runs WHERE finished = 0 AND id != ?", id)
		if err != nil {
			return err
		}
		for i := range runs {
			fin := now()
			runs[i].FinishedAt, runs[i].Error = &fin, message
			if _, err := put(ctx, tx, tRetentionRuns, &runs[i]); err != nil {
				return err
			}
		}
		n = int64(len(runs))
		return nil
	})
	return n, err
}
