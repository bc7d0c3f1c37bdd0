package sqlite

import (
	"context"
	"database/sql"

	"github.com/berth-dev/berth/store"
)

// CreateCodeAccount stores a, giving it an id when it has none.
func (db *DB) CreateCodeAccount(ctx context.Context, a *store.CodeAccount) error {
	if a.ID == "" {
		a.ID = store.NewCodeAccountID()
	}
	a.CreatedAt = now()
	return db.write(ctx, func(tx *sql.Tx) error { return insert(ctx, tx, tCodeAccounts, a) })
}

// GetCodeAccount returns code account id.
func (db *DB) GetCodeAccount(ctx context.Context, id string) (*store.CodeAccount, error) {
	return get[store.CodeAccount](ctx, db.r, tCodeAccounts, id)
}

// ListCodeAccounts pages through the code accounts of the main account accountID in creation order.
func (db *DB) ListCodeAccounts(ctx context.Context, accountID string, p store.Page) ([]store.CodeAccount, int64, error) {
	var total int64
	if err := db.r.QueryRowContext(ctx, "SELECT count(*) FROM code_accounts WHERE account_id = ?", accountID).Scan(&total); err != nil {
		return nil, 0, err
	}
	items, err := page[store.CodeAccount](ctx, db.r, tCodeAccounts, "account_id = ?", []any{accountID}, byCreated, p, total)
	return items, total, err
}

// DeleteCodeAccount deletes code account id; an *store.InUseError when code sources name it.
func (db *DB) DeleteCodeAccount(ctx context.Context, id string) error {
	return db.write(ctx, func(tx *sql.Tx) error {
		repos, err := strs(ctx, tx, "SELECT id FROM sources WHERE code_account = ? ORDER BY id LIMIT ?", id, store.MaxInUse)
		if err != nil {
			return err
		}
		if len(repos) > 0 {
			return &store.InUseError{Repositories: repos}
		}
		return removeID(ctx, tx, tCodeAccounts, id)
	})
}
