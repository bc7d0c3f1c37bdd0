package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/berth-dev/berth/store"
)

// hookDelivery records a webhook delivery handled (its id: repository, newline, delivery key).
type hookDelivery struct {
	ID         string    `bson:"_id"`
	Repository string    `bson:"repository"`
	At         time.Time `bson:"at"`
}

const maxHookDeliveryKey = 512

// PutSource connects (or reconnects) a repository's code source; created tells whether it is new. A new
// source gets a hook id unless it carries one; an existing one keeps its own.
func (db *DB) PutSource(ctx context.Context, src *store.Source) (created bool, err error) {
	err = db.write(ctx, func(tx *sql.Tx) error {
		if ok, err := exists(ctx, tx, tRepositories, src.Repository); err != nil {
			return err
		} else if !ok {
			return store.ErrNotFound
		}
		if src.CodeAccount != "" {
			if ok, err := exists(ctx, tx, tCodeAccounts, src.CodeAccount); err != nil {
				return err
			} else if !ok {
				return store.ErrNoCodeAccount
			}
		}
		src.ID = src.Repository
		old, err := get[store.Source](ctx, tx, tSources, src.Repository)
		switch {
		case errors.Is(err, store.ErrNotFound):
			created = true
			if src.HookID == "" {
				src.HookID = store.NewHookID()
			}
			src.CreatedAt = now()
		case err != nil:
			return err
		default:
			src.HookID, src.CreatedAt = old.HookID, old.CreatedAt
		}
		src.UpdatedAt = now()
		_, err = put(ctx, tx, tSources, src)
		return alreadyExists(err)
	})
	return created, err
}

// GetSource returns the code source of repo.
func (db *DB) GetSource(ctx context.Context, repo string) (*store.Source, error) {
	return get[store.Source](ctx, db.r, tSources, repo)
}

// SourceByHook returns the code source whose webhook URL carries hookID.
func (db *DB) SourceByHook(ctx context.Context, hookID string) (*store.Source, error) {
	list, err := docs[store.Source](ctx, db.r, "SELECT doc FROM sources WHERE hook_id = ?", hookID)
	if err != nil {
		return nil, err
	}
	if len(list) == 0 {
		return nil, store.ErrNotFound
	}
	return &list[0], nil
}

// DeleteSource disconnects repo's code source and forgets its deliveries.
func (db *DB) DeleteSource(ctx context.Context, repo string) error {
	return db.write(ctx, func(tx *sql.Tx) error {
		if err := removeID(ctx, tx, tSources, repo); err != nil {
			return err
		}
		_, err := remove(ctx, tx, tHookDeliveries, "repository = ?", repo)
		return err
	})
}

// RecordDelivery records delivery key of repo as handled; store.ErrAlreadyExists when it was already.
func (db *DB) RecordDelivery(ctx context.Context, repo, key string) error {
	if len(key) > maxHookDeliveryKey {
		return fmt.Errorf("delivery key is longer than %d bytes", maxHookDeliveryKey)
	}
	return db.write(ctx, func(tx *sql.Tx) error {
		return insert(ctx, tx, tHookDeliveries, &hookDelivery{ID: repo + "\n" + key, Repository: repo, At: now()})
	})
}

// TakeOverDelivery claims delivery key of repo: true when it was never recorded, or was recorded more than
// staleAfter ago and no build carries it (its handler died before its builds existed).
func (db *DB) TakeOverDelivery(ctx context.Context, repo, key string, staleAfter time.Duration) (took bool, err error) {
	if len(key) > maxHookDeliveryKey {
		return false, fmt.Errorf("delivery key is longer than %d bytes", maxHookDeliveryKey)
	}
	id := repo + "\n" + key
	err = db.write(ctx, func(tx *sql.Tx) error {
		rec, err := get[hookDelivery](ctx, tx, tHookDeliveries, id)
		if errors.Is(err, store.ErrNotFound) {
			took = true
			return insert(ctx, tx, tHookDeliveries, &hookDelivery{ID: id, Repository: repo, At: now()})
		}
		if err != nil || now().Sub(rec.At) < staleAfter {
			return err
		}
		var one int
		switch err := tx.QueryRowContext(ctx, "SELECT 1 FROM build_deliveries WHERE repository = ? AND key = ? LIMIT 1",
			repo, key).Scan(&one); {
		case err == nil:
			return nil // its builds exist
		case !errors.Is(err, sql.ErrNoRows):
			return err
		}
		took = true
		rec.At = now()
		_, err = put(ctx, tx, tHookDeliveries, rec)
		return err
	})
	if err != nil {
		return false, err
	}
	return took, nil
}

// ForgetDelivery forgets delivery key of repo (its handling failed: the Git host's retry handles it again).
func (db *DB) ForgetDelivery(ctx context.Context, repo, key string) error {
	return db.write(ctx, func(tx *sql.Tx) error {
		_, err := remove(ctx, tx, tHookDeliveries, "id = ?", repo+"\n"+key)
		return err
	})
}

// DeleteDeliveriesBefore forgets deliveries recorded before t.
func (db *DB) DeleteDeliveriesBefore(ctx context.Context, t time.Time) (n int64, err error) {
	err = db.write(ctx, func(tx *sql.Tx) error {
		n, err = remove(ctx, tx, tHookDeliveries, "at < ?", ms(t))
		return err
	})
	return n, err
}

// CreateBuildRule adds r to its repository (at most store.MaxBuildRules).
func (db *DB) CreateBuildRule(ctx context.Context, r *store.BuildRule) error {
	return db.write(ctx, func(tx *sql.Tx) error {
		if ok, err := exists(ctx, tx, tRepositories, r.Repository); err != nil {
			return err
		} else if !ok {
			return store.ErrNotFound
		}
		var n int
		if err := tx.QueryRowContext(ctx, "SELECT count(*) FROM build_rules WHERE repository = ?", r.Repository).Scan(&n); err != nil {
			return err
		}
		if n >= store.MaxBuildRules {
			return store.ErrLimitExceeded
		}
		r.ID = store.NewRuleID()
		normalizeRule(r)
		r.CreatedAt, r.UpdatedAt = now(), now()
		return insert(ctx, tx, tBuildRules, r)
	})
}

func normalizeRule(r *store.BuildRule) {
	if r.BuildArgs == nil {
		r.BuildArgs = map[string]string{}
	}
	if r.Platforms == nil {
		r.Platforms = []string{}
	}
}

func getRule(ctx context.Context, q querier, repo, id string) (*store.BuildRule, error) {
	r, err := get[store.BuildRule](ctx, q, tBuildRules, id)
	if err != nil {
		return nil, err
	}
	if r.Repository != repo {
		return nil, store.ErrNotFound
	}
	normalizeRule(r)
	return r, nil
}

// GetBuildRule returns rule id of repo.
func (db *DB) GetBuildRule(ctx context.Context, repo, id string) (*store.BuildRule, error) {
	return getRule(ctx, db.r, repo, id)
}

const rulesOrder = "ORDER BY created_at, id"

// ListBuildRules pages through repo's rules in creation order.
func (db *DB) ListBuildRules(ctx context.Context, repo string, p store.Page) ([]store.BuildRule, int64, error) {
	var total int64
	if err := db.r.QueryRowContext(ctx, "SELECT count(*) FROM build_rules WHERE repository = ?", repo).Scan(&total); err != nil {
		return nil, 0, err
	}
	items, err := page[store.BuildRule](ctx, db.r, tBuildRules, "repository = ?", []any{repo},
		byCreated, p, total)
	for i := range items {
		normalizeRule(&items[i])
	}
	return items, total, err
}

// AllBuildRules returns every rule of repo in creation order.
func (db *DB) AllBuildRules(ctx context.Context, repo string) ([]store.BuildRule, error) {
	items, err := docs[store.BuildRule](ctx, db.r, "SELECT doc FROM build_rules WHERE repository = ? "+rulesOrder+" LIMIT ?",
		repo, store.MaxBuildRules)
	for i := range items {
		normalizeRule(&items[i])
	}
	return items, err
}

// UpdateBuildRule applies change to rule id of repo and stores it.
func (db *DB) UpdateBuildRule(ctx context.Context, repo, id string, change func(*store.BuildRule) error) (r *store.BuildRule, err error) {
	err = db.write(ctx, func(tx *sql.Tx) error {
		if r, err = getRule(ctx, tx, repo, id); err != nil {
			return err
		}
		if err := change(r); err != nil {
			return err
		}
		r.ID, r.Repository = id, repo
		normalizeRule(r)
		r.UpdatedAt = now()
		_, err = put(ctx, tx, tBuildRules, r)
		return err
	})
	if err != nil {
		return nil, err
	}
	return r, nil
}

// DeleteBuildRule removes rule id of repo.
func (db *DB) DeleteBuildRule(ctx context.Context, repo, id string) error {
	return db.write(ctx, func(tx *sql.Tx) error {
		n, err := remove(ctx, tx, tBuildRules, "id = ? AND repository = ?", id, repo)
		if err == nil && n == 0 {
			err = store.ErrNotFound
		}
		return err
	})
}

// putBuild stores b with the deliveries it was made for.
func putBuild(ctx context.Context, tx querier, b *store.Build, fresh bool) error {
	if fresh {
		if err := insert(ctx, tx, tBuilds, b); err != nil {
			return err
		}
	} else {
		if _, err := put(ctx, tx, tBuilds, b); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, "DELETE FROM build_deliveries WHERE build = ?", b.ID); err != nil {
			return err
		}
	}
	for _, k := range b.Deliveries {
		if _, err := tx.ExecContext(ctx, "INSERT OR IGNORE INTO build_deliveries(repository, key, build) VALUES(?, ?, ?)",
			b.Repository, k, b.ID); err != nil {
			return err
		}
	}
	return nil
}

// CreateBuild inserts b (QUEUED unless its status is set), giving it an id when it has none.
func (db *DB) CreateBuild(ctx context.Context, b *store.Build) error {
	if b.ID == "" {
		b.ID = store.NewBuildID()
	}
	if b.Status == "" {
		b.Status = store.BuildQueued
	}
	if b.Stages == nil {
		b.Stages = []store.BuildStage{}
	}
	b.CreatedAt, b.UpdatedAt = now(), now()
	return db.write(ctx, func(tx *sql.Tx) error { return putBuild(ctx, tx, b, true) })
}

// GetBuild returns build id of repo.
func (db *DB) GetBuild(ctx context.Context, repo, id string) (*store.Build, error) {
	b, err := db.BuildByID(ctx, id)
	if err != nil {
		return nil, err
	}
	if b.Repository != repo {
		return nil, store.ErrNotFound
	}
	return b, nil
}

// BuildByID returns build id, whatever its repository.
func (db *DB) BuildByID(ctx context.Context, id string) (*store.Build, error) {
	return get[store.Build](ctx, db.r, tBuilds, id)
}

// ListBuilds pages through the builds of repo, newest first.
func (db *DB) ListBuilds(ctx context.Context, repo string, p store.Page) ([]store.Build, int64, error) {
	return countedPage[store.Build](ctx, db.r, tBuilds, "repository = ?", repo, byIDDesc, p)
}

// BuildsInStatus returns up to limit builds in any of statuses with an id after `after`, oldest first.
func (db *DB) BuildsInStatus(ctx context.Context, statuses []string, after string, limit int) ([]store.Build, error) {
	var out []store.Build
	// One indexed range per status, merged: each reads at most limit rows.
	for _, st := range statuses {
		bs, err := docs[store.Build](ctx, db.r, "SELECT doc FROM builds WHERE status = ? AND id > ? ORDER BY id LIMIT ?",
			st, after, limit)
		if err != nil {
			return nil, err
		}
		out = append(out, bs...)
	}
	sortBuilds(out)
	if len(out) > limit {
		out = out[:limit]
	}
	if out == nil {
		out = []store.Build{}
	}
	return out, nil
}

func sortBuilds(bs []store.Build) {
	slices.SortFunc(bs, func(a, b store.Build) int { return strings.Compare(a.ID, b.ID) })
}

// UnqueuedBuilds returns up to limit QUEUED builds whose task could not be put on the queue.
func (db *DB) UnqueuedBuilds(ctx context.Context, limit int) ([]store.Build, error) {
	return docs[store.Build](ctx, db.r,
		"SELECT doc FROM builds WHERE status = ? AND queue_error = 1 ORDER BY id LIMIT ?", store.BuildQueued, limit)
}

// UpdateBuild applies change to build id and stores the result, in one transaction: change sees the build as
// it is. store.ErrNoChange from change leaves it as read.
func (db *DB) UpdateBuild(ctx context.Context, id string, change func(*store.Build) error) (b *store.Build, err error) {
	err = db.write(ctx, func(tx *sql.Tx) error {
		if b, err = get[store.Build](ctx, tx, tBuilds, id); err != nil {
			return err
		}
		rev := b.Rev
		if err := change(b); errors.Is(err, store.ErrNoChange) {
			return err
		} else if err != nil {
			return err
		}
		b.ID, b.Rev, b.UpdatedAt = id, rev+1, now()
		return putBuild(ctx, tx, b, false)
	})
	if errors.Is(err, store.ErrNoChange) {
		return b, nil
	}
	if err != nil {
		return nil, err
	}
	return b, nil
}

// PutLogChunk writes c (replacing the same chunk).
func (db *DB) PutLogChunk(ctx context.Context, c *store.LogChunk) error {
	if len(c.Data) > store.MaxLogChunk {
		return fmt.Errorf("log chunk of %d bytes is larger than %d", len(c.Data), store.MaxLogChunk)
	}
	c.ID, c.At = store.LogChunkID(c.Build, c.Seq), now()
	return db.write(ctx, func(tx *sql.Tx) error {
		_, err := put(ctx, tx, tBuildLogs, c)
		return err
	})
}

// GetLogChunk returns chunk seq of build.
func (db *DB) GetLogChunk(ctx context.Context, build string, seq int) (*store.LogChunk, error) {
	return get[store.LogChunk](ctx, db.r, tBuildLogs, store.LogChunkID(build, seq))
}
