package store

import (
	"context"
	"errors"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// AccessKey lets a user authenticate without its password. Only a hash of the secret is kept.
type AccessKey struct {
	ID         string    `bson:"_id"`
	User       string    `bson:"user"`
	SecretHash string    `bson:"secret_hash"`
	Enabled    bool      `bson:"enabled"`
	CreatedAt  time.Time `bson:"created_at"`
}

// CreateAccessKey inserts k.
func (s *Mongo) CreateAccessKey(ctx context.Context, k *AccessKey) error {
	k.CreatedAt = now()
	if _, err := s.c(colAccessKeys).InsertOne(ctx, k); err != nil {
		return alreadyExists(err)
	}
	return nil
}

// GetAccessKey returns the key with id.
func (s *Mongo) GetAccessKey(ctx context.Context, id string) (*AccessKey, error) {
	return findOne[AccessKey](ctx, s.c(colAccessKeys), bson.M{"_id": id})
}

// ListAccessKeys pages through a user's keys.
func (s *Mongo) ListAccessKeys(ctx context.Context, user string, p Page) ([]AccessKey, int64, error) {
	return findPage[AccessKey](ctx, s.c(colAccessKeys), bson.M{"user": user}, bson.D{{Key: "created_at", Value: 1}, {Key: "_id", Value: 1}}, p)
}

// SetAccessKeyEnabled enables or disables a user's key.
func (s *Mongo) SetAccessKeyEnabled(ctx context.Context, user, id string, enabled bool) error {
	res, err := s.c(colAccessKeys).UpdateOne(ctx, bson.M{"_id": id, "user": user}, bson.M{"$set": bson.M{"enabled": enabled}})
	if err != nil {
		return err
	}
	if res.MatchedCount == 0 {
		return ErrNotFound
	}
	return nil
}

// DeleteAccessKey removes a user's key.
func (s *Mongo) DeleteAccessKey(ctx context.Context, user, id string) error {
	res, err := s.c(colAccessKeys).DeleteOne(ctx, bson.M{"_id": id, "user": user})
	if err != nil {
		return err
	}
	if res.DeletedCount == 0 {
		return ErrNotFound
	}
	return nil
}

// Policy is a custom RAM policy; Document is its JSON text as the user saved it.
type Policy struct {
	Name        string    `bson:"_id"`
	Description string    `bson:"description"`
	Document    string    `bson:"document"`
	CreatedAt   time.Time `bson:"created_at"`
	UpdatedAt   time.Time `bson:"updated_at"`
}

// CreatePolicy inserts p.
func (s *Mongo) CreatePolicy(ctx context.Context, p *Policy) error {
	p.CreatedAt, p.UpdatedAt = now(), now()
	if _, err := s.c(colPolicies).InsertOne(ctx, p); err != nil {
		return alreadyExists(err)
	}
	return nil
}

// GetPolicy returns the custom policy called name.
func (s *Mongo) GetPolicy(ctx context.Context, name string) (*Policy, error) {
	return findOne[Policy](ctx, s.c(colPolicies), bson.M{"_id": name})
}

// ListPolicies pages through the custom policies by name.
func (s *Mongo) ListPolicies(ctx context.Context, p Page) ([]Policy, int64, error) {
	return findPage[Policy](ctx, s.c(colPolicies), bson.M{}, bson.D{{Key: "_id", Value: 1}}, p)
}

// ListPoliciesFrom returns up to limit custom policies by name, skipping the first skip, and how many there are
// (for lists that put the system policies first).
func (s *Mongo) ListPoliciesFrom(ctx context.Context, skip, limit int) ([]Policy, int64, error) {
	col := s.c(colPolicies)
	total, err := col.CountDocuments(ctx, bson.M{})
	if err != nil || limit <= 0 {
		return []Policy{}, total, err
	}
	cur, err := col.Find(ctx, bson.M{}, options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}).
		SetSkip(int64(skip)).SetLimit(int64(limit)))
	if err != nil {
		return nil, 0, err
	}
	items := []Policy{}
	if err := cur.All(ctx, &items); err != nil {
		return nil, 0, err
	}
	return items, total, nil
}

// UpdatePolicy replaces a custom policy's document and description.
func (s *Mongo) UpdatePolicy(ctx context.Context, name, description, document string) (*Policy, error) {
	res, err := s.c(colPolicies).UpdateOne(ctx, bson.M{"_id": name},
		bson.M{"$set": bson.M{"description": description, "document": document, "updated_at": now()}})
	if err != nil {
		return nil, err
	}
	if res.MatchedCount == 0 {
		return nil, ErrNotFound
	}
	return findOne[Policy](ctx, s.c(colPolicies), bson.M{"_id": name})
}

// DeletePolicy removes a custom policy and detaches it from every user.
func (s *Mongo) DeletePolicy(ctx context.Context, name string) error {
	res, err := s.c(colPolicies).DeleteOne(ctx, bson.M{"_id": name})
	if err != nil {
		return err
	}
	if res.DeletedCount == 0 {
		return ErrNotFound
	}
	// One user at a time, each under its lease (see changeUser), rather than one UpdateMany.
	cur, err := s.c(colUsers).Find(ctx, bson.M{"policies": name}, options.Find().SetProjection(bson.M{"_id": 1}))
	if err != nil {
		return err
	}
	var users []User
	if err := cur.All(ctx, &users); err != nil {
		return err
	}
	for _, u := range users {
		if _, err := s.DetachPolicy(ctx, u.Name, name); err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
	}
	return nil
}
