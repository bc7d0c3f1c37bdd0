package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"strings"

	"github.com/berth-dev/berth/store"
)

// CreateNamespace adds ns; store.ErrLimitExceeded when its account holds limit namespaces already (limit <= 0:
// no limit). The count and the insert are one transaction, so the limit holds under any concurrency.
func (db *DB) CreateNamespace(ctx context.Context, ns *store.Namespace, limit int) error {
	ns.CreatedAt, ns.UpdatedAt = now(), now()
	ns.Slot, ns.Deleting = "", false
	return db.write(ctx, func(tx *sql.Tx) error {
		if _, err := get[store.Namespace](ctx, tx, tNamespaces, ns.Name); err == nil {
			return store.ErrAlreadyExists
		}
		if limit > 0 {
			var n int
			if err := tx.QueryRowContext(ctx, "SELECT count(*) FROM namespaces WHERE account_id = ?", ns.AccountID).Scan(&n); err != nil {
				return err
			}
			if n >= limit {
				return store.ErrLimitExceeded
			}
		}
		return insert(ctx, tx, tNamespaces, ns)
	})
}

// GetNamespace returns the namespace called name.
func (db *DB) GetNamespace(ctx context.Context, name string) (*store.Namespace, error) {
	return get[store.Namespace](ctx, db.r, tNamespaces, name)
}

// ListNamespaces pages through an account's namespaces (every account's when accountID is empty) by name.
func (db *DB) ListNamespaces(ctx context.Context, accountID string, p store.Page) ([]store.Namespace, int64, error) {
	if accountID == "" {
		return pageAll[store.Namespace](ctx, db.r, tNamespaces, p)
	}
	var total int64
	if err := db.r.QueryRowContext(ctx, "SELECT count(*) FROM namespaces WHERE account_id = ?", accountID).Scan(&total); err != nil {
		return nil, 0, err
	}
	items, err := page[store.Namespace](ctx, db.r, tNamespaces, "account_id = ?", []any{accountID},
		byID, p, total)
	return items, total, err
}

// UpdateNamespace sets the settings of u that are not nil.
func (db *DB) UpdateNamespace(ctx context.Context, name string, u store.NamespaceUpdate) (ns *store.Namespace, err error) {
	err = db.write(ctx, func(tx *sql.Tx) error {
		if ns, err = get[store.Namespace](ctx, tx, tNamespaces, name); err != nil {
			return err
		}
		if u.AutoCreateRepo != nil {
			ns.AutoCreateRepo = *u.AutoCreateRepo
		}
		if u.DefaultVisibility != nil {
			ns.DefaultVisibility = *u.DefaultVisibility
		}
		ns.UpdatedAt = now()
		_, err = put(ctx, tx, tNamespaces, ns)
		return err
	})
	if err != nil {
		return nil, err
	}
	return ns, nil
}

// DeleteNamespace removes a namespace. One that holds repositories is kept (store.ErrNotEmpty, with their
// names) unless force, which deletes them and everything they own first. It returns the repositories' names.
func (db *DB) DeleteNamespace(ctx context.Context, name string, force bool) (repos []string, err error) {
	err = db.write(ctx, func(tx *sql.Tx) error {
		if _, err := get[store.Namespace](ctx, tx, tNamespaces, name); err != nil {
			return err
		}
		var err error
		if repos, err = strs(ctx, tx, "SELECT id FROM repositories WHERE namespace = ? ORDER BY id", name); err != nil {
			return err
		}
		if len(repos) > 0 && !force {
			return store.ErrNotEmpty
		}
		for _, full := range repos {
			if err := deleteRepository(ctx, tx, full); err != nil {
				return err
			}
		}
		if err := removeID(ctx, tx, tNamespaces, name); err != nil {
			return err
		}
		if _, err := remove(ctx, tx, tRetentionRules, "id = ?", name); err != nil {
			return err
		}
		if _, err := remove(ctx, tx, tRetentionRuns, "namespace = ?", name); err != nil {
			return err
		}
		_, err = remove(ctx, tx, tSecurityPolicies, "id = ?", name)
		return err
	})
	if errors.Is(err, store.ErrNotEmpty) {
		return repos, err
	}
	if err != nil {
		return nil, err
	}
	return repos, nil
}

// CreateRepository adds r to its namespace; store.ErrNotFound when the namespace does not exist.
func (db *DB) CreateRepository(ctx context.Context, r *store.Repository) error {
	r.FullName = r.Namespace + "/" + r.Name
	r.CreatedAt, r.UpdatedAt = now(), now()
	return db.write(ctx, func(tx *sql.Tx) error {
		if _, err := get[store.Namespace](ctx, tx, tNamespaces, r.Namespace); err != nil {
			return err
		}
		if err := insert(ctx, tx, tRepositories, r); err != nil {
			return err
		}
		return bumpRepoCounters(ctx, tx, r, 1)
	})
}

// bumpRepoCounters adds delta to the repository counters r counts in: every repository, its account's and its
// namespace's (the totals of the repository lists).
func bumpRepoCounters(ctx context.Context, tx querier, r *store.Repository, delta int64) error {
	for _, key := range []string{"repositories/", "repositories/account/" + r.AccountID, "repositories/namespace/" + r.Namespace} {
		if err := bump(ctx, tx, key, delta); err != nil {
			return err
		}
	}
	return nil
}

// repoTotal reads a repository counter.
func repoTotal(ctx context.Context, q querier, key string) (int64, error) {
	return counter(ctx, q, "repositories/"+key)
}

// GetRepository returns namespace/name.
func (db *DB) GetRepository(ctx context.Context, namespace, name string) (*store.Repository, error) {
	return get[store.Repository](ctx, db.r, tRepositories, namespace+"/"+name)
}

// ListRepositories pages through the repositories of an account and namespace (either may be empty: all) by
// full name.
func (db *DB) ListRepositories(ctx context.Context, accountID, namespace string, p store.Page) ([]store.Repository, int64, error) {
	return db.SearchRepositories(ctx, accountID, namespace, "", p)
}

// SearchRepositories is ListRepositories of the repositories whose name contains query.
func (db *DB) SearchRepositories(ctx context.Context, accountID, namespace, query string, p store.Page) ([]store.Repository, int64, error) {
	var where []string
	var args []any
	if namespace != "" {
		where, args = append(where, "namespace = ?"), append(args, namespace)
	}
	if accountID != "" {
		where, args = append(where, "account_id = ?"), append(args, accountID)
	}
	if query != "" {
		where, args = append(where, `name LIKE ? ESCAPE '\'`), append(args, "%"+likeEscape(query)+"%")
	}
	w := strings.Join(where, " AND ")
	tx, err := db.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true}) // the total and the page agree
	if err != nil {
		return nil, 0, err
	}
	defer func() { _ = tx.Rollback() }()
	var total int64
	switch {
	case query != "": // a search counts what it finds (at most SPEC's 10,000 repositories)
		err = tx.QueryRowContext(ctx, "SELECT count(*) FROM repositories WHERE "+w, args...).Scan(&total)
	case namespace != "" && accountID != "":
		total, err = repoTotal(ctx, tx, "namespace/"+namespace)
		if ns, gerr := get[store.Namespace](ctx, tx, tNamespaces, namespace); gerr != nil || ns.AccountID != accountID {
			total = 0 // another account's namespace, or none
		}
	case namespace != "":
		total, err = repoTotal(ctx, tx, "namespace/"+namespace)
	case accountID != "":
		total, err = repoTotal(ctx, tx, "account/"+accountID)
	default:
		total, err = repoTotal(ctx, tx, "")
	}
	if err != nil {
		return nil, 0, err
	}
	items, err := page[store.Repository](ctx, tx, tRepositories, w, args, byID, p, total)
	return items, total, err
}

func likeEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

// UpdateRepository sets the fields of u that are not nil.
func (db *DB) UpdateRepository(ctx context.Context, namespace, name string, u store.RepositoryUpdate) (r *store.Repository, err error) {
	err = db.write(ctx, func(tx *sql.Tx) error {
		if r, err = get[store.Repository](ctx, tx, tRepositories, namespace+"/"+name); err != nil {
			return err
		}
		if u.Summary != nil {
			r.Summary = *u.Summary
		}
		if u.Description != nil {
			r.Description = *u.Description
		}
		if u.Visibility != nil {
			r.Visibility = *u.Visibility
		}
		if u.ImmutableTags != nil {
			r.ImmutableTags = *u.ImmutableTags
		}
		r.UpdatedAt = now()
		_, err = put(ctx, tx, tRepositories, r)
		return err
	})
	if err != nil {
		return nil, err
	}
	return r, nil
}

// DeleteRepository removes a repository and everything it owns (versions, rules, builds and logs, triggers
// and records, its source and security policy).
func (db *DB) DeleteRepository(ctx context.Context, namespace, name string) error {
	return db.write(ctx, func(tx *sql.Tx) error { return deleteRepository(ctx, tx, namespace+"/"+name) })
}

func deleteRepository(ctx context.Context, tx *sql.Tx, full string) error {
	r, err := get[store.Repository](ctx, tx, tRepositories, full)
	if err != nil {
		return err
	}
	if err := removeID(ctx, tx, tRepositories, full); err != nil {
		return err
	}
	if err := bumpRepoCounters(ctx, tx, r, -1); err != nil {
		return err
	}
	for _, t := range repoOwned {
		if _, err := remove(ctx, tx, t, "repository = ?", full); err != nil {
			return err
		}
	}
	if _, err := tx.ExecContext(ctx, "DELETE FROM build_deliveries WHERE repository = ?", full); err != nil {
		return err
	}
	_, err = remove(ctx, tx, tSources, "id = ?", full)
	return err
}

// exists reports whether t holds id.
func exists(ctx context.Context, q querier, t *table, id string) (bool, error) {
	var one int
	err := q.QueryRowContext(ctx, "SELECT 1 FROM "+t.name+" WHERE id = ?", id).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}
