package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Visibility of a repository.
const (
	VisibilityPublic  = "PUBLIC"
	VisibilityPrivate = "PRIVATE"
)

// Namespace is a set of repositories owned by one account (SPEC §1).
type Namespace struct {
	Name              string    `bson:"_id"`
	AccountID         string    `bson:"account_id"`
	AutoCreateRepo    bool      `bson:"auto_create_repo"`
	DefaultVisibility string    `bson:"default_visibility"`
	CreatedAt         time.Time `bson:"created_at"`
	UpdatedAt         time.Time `bson:"updated_at"`
	// Slot is the namespace's place under its account's limit, "<account>#<i>" with i below the limit. A
	// unique index on it lets no two namespaces share a place, so an account never holds more namespaces than
	// the limit, however many processes create them at once. Unset while the limit is off.
	Slot string `bson:"slot,omitempty"`
	// Deleting is set while a forced delete removes the namespace's repositories: no repository is created in
	// it meanwhile.
	Deleting bool `bson:"deleting,omitempty"`
}

func slotID(accountID string, i int) string { return fmt.Sprintf("%s#%d", accountID, i) }

// maxSlotRounds bounds CreateNamespace's attempts; each failed one means another creation took a slot.
const maxSlotRounds = 200

// CreateNamespace inserts ns unless the account already holds limit namespaces (limit 0 = unlimited).
// Errors: ErrLimitExceeded, ErrAlreadyExists.
//
// Under a limit the namespace takes a free slot below it in the same insert (see Namespace.Slot): the insert
// fails when another creation took that slot first, and the creation looks again. Namespaces made while the
// limit was off, or above a limit since lowered, have no slot below it: they are moved into free slots first,
// so that every namespace of the account holds one and the unique index counts them all.
func (s *Mongo) CreateNamespace(ctx context.Context, ns *Namespace, limit int) error {
	ns.CreatedAt, ns.UpdatedAt = now(), now()
	ns.Slot, ns.Deleting = "", false
	if _, err := s.GetNamespace(ctx, ns.Name); err == nil {
		return ErrAlreadyExists
	} else if !errors.Is(err, ErrNotFound) {
		return err
	}
	if limit <= 0 {
		_, err := s.c(colNamespaces).InsertOne(ctx, ns)
		return alreadyExists(err)
	}
	for range maxSlotRounds {
		held, outside, err := s.namespaceSlots(ctx, ns.AccountID, limit)
		if err != nil {
			return err
		}
		if len(held)+len(outside) >= limit {
			return ErrLimitExceeded
		}
		if len(outside) > 0 {
			for _, name := range outside {
				if err := s.moveIntoSlot(ctx, ns.AccountID, name, limit); err != nil {
					return err
				}
			}
			continue
		}
		free := 0
		for held[slotID(ns.AccountID, free)] {
			free++
		}
		ns.Slot = slotID(ns.AccountID, free)
		_, err = s.c(colNamespaces).InsertOne(ctx, ns)
		if err == nil {
			return nil
		}
		if !mongo.IsDuplicateKeyError(err) {
			return err
		}
		if _, err := s.GetNamespace(ctx, ns.Name); err == nil {
			return ErrAlreadyExists
		}
		// Another creation took the slot: look again.
	}
	return errors.New("the namespaces of the account kept changing; retry")
}

// namespaceSlots returns the slots below limit the account's namespaces hold, and the names of those that
// hold none.
func (s *Mongo) namespaceSlots(ctx context.Context, accountID string, limit int) (held map[string]bool, outside []string, err error) {
	cur, err := s.c(colNamespaces).Find(ctx, bson.M{"account_id": accountID},
		options.Find().SetProjection(bson.M{"slot": 1}).SetSort(bson.D{{Key: "_id", Value: 1}}))
	if err != nil {
		return nil, nil, err
	}
	var all []Namespace
	if err := cur.All(ctx, &all); err != nil {
		return nil, nil, err
	}
	inside := map[string]bool{}
	for i := range limit {
		inside[slotID(accountID, i)] = true
	}
	held = map[string]bool{}
	for _, ns := range all {
		if inside[ns.Slot] {
			held[ns.Slot] = true
		} else {
			outside = append(outside, ns.Name)
		}
	}
	return held, outside, nil
}

// moveIntoSlot gives namespace name a free slot below limit, if one is left. It holds the namespace's lease, so
// no other change of the namespace (UpdateNamespace rewrites the whole document on FerretDB) undoes the move.
func (s *Mongo) moveIntoSlot(ctx context.Context, accountID, name string, limit int) error {
	ctx, unlock, err := s.lock(ctx, "namespace/"+name)
	if err != nil {
		return err
	}
	defer unlock()
	for range maxSlotRounds {
		held, outside, err := s.namespaceSlots(ctx, accountID, limit)
		if err != nil || !slices.Contains(outside, name) || len(held) >= limit {
			return err // moved, gone, or no free slot left (then the account is at its limit)
		}
		free := 0
		for held[slotID(accountID, free)] {
			free++
		}
		_, err = s.c(colNamespaces).UpdateOne(ctx, bson.M{"_id": name}, bson.M{"$set": bson.M{"slot": slotID(accountID, free)}})
		if err != nil && !mongo.IsDuplicateKeyError(err) {
			// FerretDB reports a unique index's refusal of an update as an internal error: a slot taken
			// meanwhile is told apart by reading the slots again.
			if held, _, rerr := s.namespaceSlots(ctx, accountID, limit); rerr != nil || !held[slotID(accountID, free)] {
				return err
			}
		}
	}
	return errors.New("the namespaces of the account kept changing; retry")
}

// GetNamespace returns the namespace called name.
func (s *Mongo) GetNamespace(ctx context.Context, name string) (*Namespace, error) {
	return findOne[Namespace](ctx, s.c(colNamespaces), bson.M{"_id": name})
}

// ListNamespaces pages through an account's namespaces by name (all accounts when accountID is empty).
func (s *Mongo) ListNamespaces(ctx context.Context, accountID string, p Page) ([]Namespace, int64, error) {
	filter := bson.M{}
	if accountID != "" {
		filter["account_id"] = accountID
	}
	return findPage[Namespace](ctx, s.c(colNamespaces), filter, bson.D{{Key: "_id", Value: 1}}, p)
}

// NamespaceUpdate holds the settings a PATCH may change; nil fields stay as they are.
type NamespaceUpdate struct {
	AutoCreateRepo    *bool
	DefaultVisibility *string
}

// UpdateNamespace applies u and returns the namespace as it now is.
func (s *Mongo) UpdateNamespace(ctx context.Context, name string, u NamespaceUpdate) (*Namespace, error) {
	ctx, unlock, err := s.lock(ctx, "namespace/"+name)
	if err != nil {
		return nil, err
	}
	defer unlock()
	set := bson.M{"updated_at": now()}
	if u.AutoCreateRepo != nil {
		set["auto_create_repo"] = *u.AutoCreateRepo
	}
	if u.DefaultVisibility != nil {
		set["default_visibility"] = *u.DefaultVisibility
	}
	var ns Namespace
	err = s.c(colNamespaces).FindOneAndUpdate(ctx, bson.M{"_id": name}, bson.M{"$set": set},
		options.FindOneAndUpdate().SetReturnDocument(options.After)).Decode(&ns)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, ErrNotFound
	}
	return &ns, err
}

// DeleteNamespace removes a namespace. Unless force, a namespace that still holds repositories is refused
// with ErrNotEmpty; with force its repositories and their image versions go too. The names of the deleted
// repositories are returned so the caller can drop their registry content.
//
// The namespace's lease (which CreateRepository holds too) keeps repositories from appearing between the check
// and the delete. A forced delete marks the namespace Deleting under the lease, then removes the repositories
// without it (that may take long), then the namespace; a delete interrupted half-way is finished by the next.
func (s *Mongo) DeleteNamespace(ctx context.Context, name string, force bool) ([]string, error) {
	lctx, unlock, err := s.lock(ctx, "namespace/"+name)
	if err != nil {
		return nil, err
	}
	repos, err := s.checkNamespaceDelete(lctx, name, force)
	unlock()
	if err != nil {
		return repos, err
	}
	for _, full := range repos {
		if err := s.deleteRepository(ctx, full); err != nil && !errors.Is(err, ErrNotFound) {
			return nil, err
		}
	}
	return repos, s.dropNamespace(ctx, name)
}

// checkNamespaceDelete, holding the namespace's lease, lists its repositories and either refuses the delete,
// drops the empty namespace, or marks it Deleting.
func (s *Mongo) checkNamespaceDelete(ctx context.Context, name string, force bool) ([]string, error) {
	if _, err := s.GetNamespace(ctx, name); err != nil {
		return nil, err
	}
	repos, err := s.repoNamesIn(ctx, name)
	if err != nil {
		return nil, err
	}
	switch {
	case len(repos) == 0:
		return nil, s.dropNamespace(ctx, name)
	case !force:
		return repos, ErrNotEmpty
	}
	_, err = s.c(colNamespaces).UpdateOne(ctx, bson.M{"_id": name}, bson.M{"$set": bson.M{"deleting": true}})
	return repos, err
}

// dropNamespace deletes the namespace's document (freeing its slot), its retention rules and runs and its
// security policy.
func (s *Mongo) dropNamespace(ctx context.Context, name string) error {
	if _, err := s.c(colNamespaces).DeleteOne(ctx, bson.M{"_id": name}); err != nil {
		return err
	}
	if _, err := s.c(colRetentionRules).DeleteOne(ctx, bson.M{"_id": name}); err != nil {
		return err
	}
	if _, err := s.c(colRetentionRuns).DeleteMany(ctx, bson.M{"namespace": name}); err != nil {
		return err
	}
	_, err := s.c(colSecurityPolicies).DeleteOne(ctx, bson.M{"_id": name})
	return err
}
