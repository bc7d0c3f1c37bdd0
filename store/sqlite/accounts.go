package sqlite

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"time"

	"github.com/berth-dev/berth/store"
)

// EnsureInstance returns the instance's main account, creating it on first start.
func (db *DB) EnsureInstance(ctx context.Context) (inst *store.Instance, created bool, err error) {
	err = db.write(ctx, func(tx *sql.Tx) error {
		inst, err = get[store.Instance](ctx, tx, tMeta, "instance")
		if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		n, err := rand.Int(rand.Reader, big.NewInt(9e15))
		if err != nil {
			return err
		}
		inst = &store.Instance{ID: "instance", AccountID: fmt.Sprintf("%d", n.Int64()+1e15), CreatedAt: now()}
		created = true
		return insert(ctx, tx, tMeta, inst)
	})
	if err != nil {
		return nil, false, err
	}
	return inst, created, nil
}

// CreateUser adds u; store.ErrAlreadyExists when the name is taken.
func (db *DB) CreateUser(ctx context.Context, u *store.User) error {
	u.CreatedAt, u.UpdatedAt = now(), now()
	if u.Policies == nil {
		u.Policies = []string{}
	}
	return db.write(ctx, func(tx *sql.Tx) error { return insert(ctx, tx, tUsers, u) })
}

// GetUser returns the user called name.
func (db *DB) GetUser(ctx context.Context, name string) (*store.User, error) {
	return get[store.User](ctx, db.r, tUsers, name)
}

// ListUsers pages through the users by name.
func (db *DB) ListUsers(ctx context.Context, p store.Page) ([]store.User, int64, error) {
	return pageAll[store.User](ctx, db.r, tUsers, p)
}

// pageAll pages through a small table in id order (users, policies, namespaces of every account).
func pageAll[T any](ctx context.Context, q querier, t *table, p store.Page) ([]T, int64, error) {
	var total int64
	if err := q.QueryRowContext(ctx, "SELECT count(*) FROM "+t.name).Scan(&total); err != nil {
		return nil, 0, err
	}
	items, err := page[T](ctx, q, t, "", nil, byID, p, total)
	return items, total, err
}

// changeUser applies change to the user called name and stores it.
func (db *DB) changeUser(ctx context.Context, name string, change func(*store.User)) (u *store.User, err error) {
	err = db.write(ctx, func(tx *sql.Tx) error {
		if u, err = get[store.User](ctx, tx, tUsers, name); err != nil {
			return err
		}
		change(u)
		u.UpdatedAt = now()
		_, err = put(ctx, tx, tUsers, u)
		return err
	})
	if err != nil {
		return nil, err
	}
	return u, nil
}

// ChangeUser sets the fields of u that are not nil.
func (db *DB) ChangeUser(ctx context.Context, name string, uu store.UserUpdate) (*store.User, error) {
	return db.changeUser(ctx, name, func(u *store.User) {
		if uu.DisplayName != nil {
			u.DisplayName = *uu.DisplayName
		}
		if uu.PasswordHash != nil {
			u.PasswordHash = *uu.PasswordHash
		}
		if uu.Enabled != nil {
			u.Enabled = *uu.Enabled
		}
		if uu.RevokeTokens {
			u.TokensNotBefore = now().Truncate(time.Second).Add(time.Second)
		}
	})
}

// AttachPolicy adds policy to the user's (once).
func (db *DB) AttachPolicy(ctx context.Context, user, policy string) (*store.User, error) {
	return db.changeUser(ctx, user, func(u *store.User) {
		if !slices.Contains(u.Policies, policy) {
			u.Policies = append(u.Policies, policy)
		}
	})
}

// DetachPolicy removes policy from the user's.
func (db *DB) DetachPolicy(ctx context.Context, user, policy string) (*store.User, error) {
	return db.changeUser(ctx, user, func(u *store.User) {
		u.Policies = slices.DeleteFunc(u.Policies, func(p string) bool { return p == policy })
	})
}

// SetUserPolicies replaces the user's policies.
func (db *DB) SetUserPolicies(ctx context.Context, name string, policies []string) (*store.User, error) {
	return db.changeUser(ctx, name, func(u *store.User) { u.Policies = policies })
}

// DeleteUser removes a user with its access keys and console sessions.
func (db *DB) DeleteUser(ctx context.Context, name string) error {
	return db.write(ctx, func(tx *sql.Tx) error {
		if err := removeID(ctx, tx, tUsers, name); err != nil {
			return err
		}
		if _, err := remove(ctx, tx, tAccessKeys, "user = ?", name); err != nil {
			return err
		}
		_, err := remove(ctx, tx, tSessions, "user = ?", name)
		return err
	})
}

// CreateAccessKey adds k.
func (db *DB) CreateAccessKey(ctx context.Context, k *store.AccessKey) error {
	k.CreatedAt = now()
	return db.write(ctx, func(tx *sql.Tx) error { return insert(ctx, tx, tAccessKeys, k) })
}

// GetAccessKey returns the access key id.
func (db *DB) GetAccessKey(ctx context.Context, id string) (*store.AccessKey, error) {
	return get[store.AccessKey](ctx, db.r, tAccessKeys, id)
}

// ListAccessKeys pages through a user's keys, oldest first.
func (db *DB) ListAccessKeys(ctx context.Context, user string, p store.Page) ([]store.AccessKey, int64, error) {
	var total int64
	if err := db.r.QueryRowContext(ctx, "SELECT count(*) FROM access_keys WHERE user = ?", user).Scan(&total); err != nil {
		return nil, 0, err
	}
	items, err := page[store.AccessKey](ctx, db.r, tAccessKeys, "user = ?", []any{user},
		byCreated, p, total)
	return items, total, err
}

// SetAccessKeyEnabled turns a user's key on or off.
func (db *DB) SetAccessKeyEnabled(ctx context.Context, user, id string, enabled bool) error {
	return db.write(ctx, func(tx *sql.Tx) error {
		k, err := get[store.AccessKey](ctx, tx, tAccessKeys, id)
		if err != nil {
			return err
		}
		if k.User != user {
			return store.ErrNotFound
		}
		k.Enabled = enabled
		_, err = put(ctx, tx, tAccessKeys, k)
		return err
	})
}

// DeleteAccessKey removes a user's key.
func (db *DB) DeleteAccessKey(ctx context.Context, user, id string) error {
	return db.write(ctx, func(tx *sql.Tx) error {
		n, err := remove(ctx, tx, tAccessKeys, "id = ? AND user = ?", id, user)
		if err == nil && n == 0 {
			err = store.ErrNotFound
		}
		return err
	})
}

// CreatePolicy adds p.
func (db *DB) CreatePolicy(ctx context.Context, p *store.Policy) error {
	p.CreatedAt, p.UpdatedAt = now(), now()
	return db.write(ctx, func(tx *sql.Tx) error { return insert(ctx, tx, tPolicies, p) })
}

// GetPolicy returns the custom policy called name.
func (db *DB) GetPolicy(ctx context.Context, name string) (*store.Policy, error) {
	return get[store.Policy](ctx, db.r, tPolicies, name)
}

// ListPolicies pages through the custom policies by name.
func (db *DB) ListPolicies(ctx context.Context, p store.Page) ([]store.Policy, int64, error) {
	return pageAll[store.Policy](ctx, db.r, tPolicies, p)
}

// ListPoliciesFrom returns up to limit policies by name after the first skip, and how many there are.
func (db *DB) ListPoliciesFrom(ctx context.Context, skip, limit int) ([]store.Policy, int64, error) {
	var total int64
	if err := db.r.QueryRowContext(ctx, "SELECT count(*) FROM policies").Scan(&total); err != nil {
		return nil, 0, err
	}
	if limit <= 0 {
		return []store.Policy{}, total, nil
	}
	items, err := docs[store.Policy](ctx, db.r, "SELECT doc FROM policies ORDER BY id LIMIT ? OFFSET ?", limit, skip)
	return items, total, err
}

// UpdatePolicy replaces a policy's description and document.
func (db *DB) UpdatePolicy(ctx context.Context, name, description, document string) (p *store.Policy, err error) {
	err = db.write(ctx, func(tx *sql.Tx) error {
		if p, err = get[store.Policy](ctx, tx, tPolicies, name); err != nil {
			return err
		}
		p.Description, p.Document, p.UpdatedAt = description, document, now()
		_, err = put(ctx, tx, tPolicies, p)
		return err
	})
	if err != nil {
		return nil, err
	}
	return p, nil
}

// DeletePolicy removes a policy and detaches it from every user.
func (db *DB) DeletePolicy(ctx context.Context, name string) error {
	return db.write(ctx, func(tx *sql.Tx) error {
		if err := removeID(ctx, tx, tPolicies, name); err != nil {
			return err
		}
		users, err := docs[store.User](ctx, tx, "SELECT doc FROM users")
		if err != nil {
			return err
		}
		for i := range users {
			u := &users[i]
			if !slices.Contains(u.Policies, name) {
				continue
			}
			u.Policies = slices.DeleteFunc(u.Policies, func(p string) bool { return p == name })
			u.UpdatedAt = now()
			if _, err := put(ctx, tx, tUsers, u); err != nil {
				return err
			}
		}
		return nil
	})
}

// InsertInstanceKey stores a sealed key once; store.ErrAlreadyExists when id is taken.
func (db *DB) InsertInstanceKey(ctx context.Context, id, sealed string) error {
	return db.write(ctx, func(tx *sql.Tx) error {
		return insert(ctx, tx, tKeys, &store.InstanceKey{ID: id, Sealed: sealed, CreatedAt: now()})
	})
}

// GetInstanceKey returns the sealed key id.
func (db *DB) GetInstanceKey(ctx context.Context, id string) (*store.InstanceKey, error) {
	return get[store.InstanceKey](ctx, db.r, tKeys, id)
}

// CreateSession adds a console session.
func (db *DB) CreateSession(ctx context.Context, sess *store.Session) error {
	return db.write(ctx, func(tx *sql.Tx) error { return insert(ctx, tx, tSessions, sess) })
}

// GetSession returns the session id.
func (db *DB) GetSession(ctx context.Context, id string) (*store.Session, error) {
	return get[store.Session](ctx, db.r, tSessions, id)
}

// TouchSession records that the session was seen at t.
func (db *DB) TouchSession(ctx context.Context, id string, t time.Time) error {
	return db.write(ctx, func(tx *sql.Tx) error {
		sess, err := get[store.Session](ctx, tx, tSessions, id)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		sess.SeenAt = t
		_, err = put(ctx, tx, tSessions, sess)
		return err
	})
}

// DeleteSession removes the session id (none is no error).
func (db *DB) DeleteSession(ctx context.Context, id string) error {
	return db.write(ctx, func(tx *sql.Tx) error {
		_, err := remove(ctx, tx, tSessions, "id = ?", id)
		return err
	})
}

// DeleteExpiredSessions removes the sessions idle since idleBefore or created before createdBefore.
func (db *DB) DeleteExpiredSessions(ctx context.Context, idleBefore, createdBefore time.Time) (n int64, err error) {
	err = db.write(ctx, func(tx *sql.Tx) error {
		n, err = remove(ctx, tx, tSessions, "seen_at < ? OR created_at < ?", ms(idleBefore), ms(createdBefore))
		return err
	})
	return n, err
}
