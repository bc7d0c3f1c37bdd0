package store

import (
	"context"
	"errors"
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
}

// nsCounter counts an account's namespaces so the per-account limit holds under concurrency: the guarded
// $inc below is atomic on MongoDB, and the write mutex makes it so on the embedded store.
type nsCounter struct {
	AccountID string `bson:"_id"`
	N         int    `bson:"n"`
}

// CreateNamespace inserts ns unless the account already holds limit namespaces (limit 0 = unlimited).
// Errors: ErrLimitExceeded, ErrAlreadyExists.
func (s *Store) CreateNamespace(ctx context.Context, ns *Namespace, limit int) error {
	defer s.lockWrites()()
	ns.CreatedAt, ns.UpdatedAt = now(), now()
	if _, err := findOne[Namespace](ctx, s.c(colNamespaces), bson.M{"_id": ns.Name}); err == nil {
		return ErrAlreadyExists
	} else if !errors.Is(err, ErrNotFound) {
		return err
	}
	if err := s.takeNamespaceSlot(ctx, ns.AccountID, limit); err != nil {
		return err
	}
	if _, err := s.c(colNamespaces).InsertOne(ctx, ns); err != nil {
		s.releaseNamespaceSlot(ctx, ns.AccountID)
		return alreadyExists(err)
	}
	return nil
}

func (s *Store) takeNamespaceSlot(ctx context.Context, accountID string, limit int) error {
	filter := bson.M{"_id": accountID}
	if limit > 0 {
		filter["n"] = bson.M{"$lt": limit}
	}
	err := s.c(colNSCounters).FindOneAndUpdate(ctx, filter, bson.M{"$inc": bson.M{"n": 1}},
		options.FindOneAndUpdate().SetUpsert(true)).Err()
	switch {
	case err == nil, errors.Is(err, mongo.ErrNoDocuments): // ErrNoDocuments: upserted a fresh counter
		return nil
	case mongo.IsDuplicateKeyError(err): // the counter exists and is at the limit
		return ErrLimitExceeded
	default:
		return err
	}
}

func (s *Store) releaseNamespaceSlot(ctx context.Context, accountID string) {
	_, _ = s.c(colNSCounters).UpdateOne(ctx, bson.M{"_id": accountID, "n": bson.M{"$gt": 0}},
		bson.M{"$inc": bson.M{"n": -1}})
}

// RecountNamespaces rebuilds the per-account counters from the namespaces themselves, repairing any drift
// left by a crash between the two writes of CreateNamespace. Run at start.
func (s *Store) RecountNamespaces(ctx context.Context) error {
	defer s.lockWrites()()
	cur, err := s.c(colNamespaces).Find(ctx, bson.M{}, options.Find().SetProjection(bson.M{"account_id": 1}))
	if err != nil {
		return err
	}
	var all []Namespace
	if err := cur.All(ctx, &all); err != nil {
		return err
	}
	counts := map[string]int{}
	for _, ns := range all {
		counts[ns.AccountID]++
	}
	if _, err := s.c(colNSCounters).DeleteMany(ctx, bson.M{}); err != nil {
		return err
	}
	for acct, n := range counts {
		if _, err := s.c(colNSCounters).InsertOne(ctx, nsCounter{AccountID: acct, N: n}); err != nil {
			return err
		}
	}
	return nil
}

// GetNamespace returns the namespace called name.
func (s *Store) GetNamespace(ctx context.Context, name string) (*Namespace, error) {
	return findOne[Namespace](ctx, s.c(colNamespaces), bson.M{"_id": name})
}

// ListNamespaces pages through an account's namespaces by name (all accounts when accountID is empty).
func (s *Store) ListNamespaces(ctx context.Context, accountID string, p Page) ([]Namespace, int64, error) {
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
func (s *Store) UpdateNamespace(ctx context.Context, name string, u NamespaceUpdate) (*Namespace, error) {
	defer s.lockWrites()()
	set := bson.M{"updated_at": now()}
	if u.AutoCreateRepo != nil {
		set["auto_create_repo"] = *u.AutoCreateRepo
	}
	if u.DefaultVisibility != nil {
		set["default_visibility"] = *u.DefaultVisibility
	}
	var ns Namespace
	err := s.c(colNamespaces).FindOneAndUpdate(ctx, bson.M{"_id": name}, bson.M{"$set": set},
		options.FindOneAndUpdate().SetReturnDocument(options.After)).Decode(&ns)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, ErrNotFound
	}
	return &ns, err
}

// DeleteNamespace removes a namespace. Unless force, a namespace that still holds repositories is refused
// with ErrNotEmpty; with force its repositories and their image versions go too. The names of the deleted
// repositories are returned so the caller can drop their registry content.
func (s *Store) DeleteNamespace(ctx context.Context, name string, force bool) ([]string, error) {
	defer s.lockWrites()()
	ns, err := findOne[Namespace](ctx, s.c(colNamespaces), bson.M{"_id": name})
	if err != nil {
		return nil, err
	}
	repos, err := s.repoNamesIn(ctx, name)
	if err != nil {
		return nil, err
	}
	if len(repos) > 0 && !force {
		return repos, ErrNotEmpty
	}
	for _, full := range repos {
		if err := s.deleteRepositoryLocked(ctx, full); err != nil && !errors.Is(err, ErrNotFound) {
			return nil, err
		}
	}
	res, err := s.c(colNamespaces).DeleteOne(ctx, bson.M{"_id": name})
	if err != nil {
		return nil, err
	}
	if _, err := s.c(colSecurityPolicies).DeleteOne(ctx, bson.M{"_id": name}); err != nil {
		return nil, err
	}
	if res.DeletedCount == 1 {
		s.releaseNamespaceSlot(ctx, ns.AccountID)
	}
	return repos, nil
}
