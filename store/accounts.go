package store

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"math/big"
	"regexp"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Instance is the one main account this Berth serves.
type Instance struct {
	ID        string    `bson:"_id"`
	AccountID string    `bson:"account_id"`
	CreatedAt time.Time `bson:"created_at"`
}

// User is an identity of the main account: its administrator, or a RAM sub-user.
type User struct {
	Name         string   `bson:"_id"`
	AccountID    string   `bson:"account_id"`
	DisplayName  string   `bson:"display_name"`
	PasswordHash string   `bson:"password_hash"`
	Enabled      bool     `bson:"enabled"`
	Admin        bool     `bson:"admin"`
	Policies     []string `bson:"policies"`
	// TokensNotBefore revokes the user's temporary and registry tokens issued before it. Disabling a user
	// sets it, so its tokens stay dead when it is enabled again. It is a whole second (registry token times
	// have one-second precision), the one after the change.
	TokensNotBefore time.Time `bson:"tokens_not_before,omitempty"`
	CreatedAt       time.Time `bson:"created_at"`
	UpdatedAt       time.Time `bson:"updated_at"`
}

// EnsureInstance returns the main account, creating it with a fresh numeric id on first start.
// created tells whether this call made it.
func (s *Mongo) EnsureInstance(ctx context.Context) (inst *Instance, created bool, err error) {
	inst, err = findOne[Instance](ctx, s.c(colMeta), bson.M{"_id": "instance"})
	if err == nil {
		return inst, false, nil
	}
	if !errors.Is(err, ErrNotFound) {
		return nil, false, err
	}
	id, err := newAccountID()
	if err != nil {
		return nil, false, err
	}
	inst = &Instance{ID: "instance", AccountID: id, CreatedAt: now()}
	if _, err := s.c(colMeta).InsertOne(ctx, inst); err != nil {
		if mongo.IsDuplicateKeyError(err) { // another replica won the race
			inst, err = findOne[Instance](ctx, s.c(colMeta), bson.M{"_id": "instance"})
			return inst, false, err
		}
		return nil, false, err
	}
	return inst, true, nil
}

// newAccountID makes a 16-digit account id like Alibaba Cloud's.
func newAccountID() (string, error) {
	n, err := rand.Int(rand.Reader, big.NewInt(9e15))
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%d", n.Int64()+1e15), nil
}

var userNameRE = regexp.MustCompile(`^[a-z0-9](?:[a-z0-9._-]{0,62}[a-z0-9])?$`)

// ValidateUserName explains why name is not a valid user name, or returns nil. Names are lower case, which
// also keeps them apart from access key ids (upper-case "LTAI…") wherever either may be given as a login.
func ValidateUserName(name string) error {
	if !userNameRE.MatchString(name) {
		return fmt.Errorf("user name %q is invalid: use 1-64 characters of a-z, 0-9, '.', '_', '-', starting and ending with a letter or digit (e.g. ci-bot)", name)
	}
	return nil
}

// CreateUser inserts u; ErrAlreadyExists when the name is taken.
func (s *Mongo) CreateUser(ctx context.Context, u *User) error {
	u.CreatedAt, u.UpdatedAt = now(), now()
	if u.Policies == nil {
		u.Policies = []string{}
	}
	if _, err := s.c(colUsers).InsertOne(ctx, u); err != nil {
		return alreadyExists(err)
	}
	return nil
}

// GetUser returns the user called name.
func (s *Mongo) GetUser(ctx context.Context, name string) (*User, error) {
	return findOne[User](ctx, s.c(colUsers), bson.M{"_id": name})
}

// ListUsers pages through the users, by name.
func (s *Mongo) ListUsers(ctx context.Context, p Page) ([]User, int64, error) {
	return findPage[User](ctx, s.c(colUsers), bson.M{}, bson.D{{Key: "_id", Value: 1}}, p)
}

// updateUser sets the given fields of a user.
func (s *Mongo) updateUser(ctx context.Context, name string, set bson.M) (*User, error) {
	set["updated_at"] = now()
	return s.changeUser(ctx, name, bson.M{"$set": set})
}

// changeUser applies update to the user called name holding the user's lease: FerretDB rewrites the whole
// document, and a policy attached at the same time as a password change, or as a disable, must not undo it.
func (s *Mongo) changeUser(ctx context.Context, name string, update bson.M) (*User, error) {
	ctx, unlock, err := s.lock(ctx, "user/"+name)
	if err != nil {
		return nil, err
	}
	defer unlock()
	var u User
	err = s.c(colUsers).FindOneAndUpdate(ctx, bson.M{"_id": name}, update,
		options.FindOneAndUpdate().SetReturnDocument(options.After)).Decode(&u)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, ErrNotFound
	}
	return &u, err
}

// UserUpdate holds the user fields a change sets; nil fields stay as they are.
type UserUpdate struct {
	DisplayName  *string
	PasswordHash *string
	Enabled      *bool
	// RevokeTokens sets TokensNotBefore to the next whole second.
	RevokeTokens bool
}

// ChangeUser applies u to the user called name and returns the user; ErrNotFound when there is none.
func (s *Mongo) ChangeUser(ctx context.Context, name string, u UserUpdate) (*User, error) {
	set := bson.M{}
	if u.DisplayName != nil {
		set["display_name"] = *u.DisplayName
	}
	if u.PasswordHash != nil {
		set["password_hash"] = *u.PasswordHash
	}
	if u.Enabled != nil {
		set["enabled"] = *u.Enabled
	}
	if u.RevokeTokens {
		set["tokens_not_before"] = now().Truncate(time.Second).Add(time.Second)
	}
	return s.updateUser(ctx, name, set)
}

// AttachPolicy adds a policy name to a user's attachments (a no-op when it is already there) and returns the
// user; ErrNotFound when the user does not exist.
func (s *Mongo) AttachPolicy(ctx context.Context, user, policy string) (*User, error) {
	return s.changePolicies(ctx, user, bson.M{"$addToSet": bson.M{"policies": policy}})
}

// DetachPolicy removes a policy name from a user's attachments and returns the user; ErrNotFound when the
// user does not exist.
func (s *Mongo) DetachPolicy(ctx context.Context, user, policy string) (*User, error) {
	return s.changePolicies(ctx, user, bson.M{"$pull": bson.M{"policies": policy}})
}

func (s *Mongo) changePolicies(ctx context.Context, user string, update bson.M) (*User, error) {
	update["$set"] = bson.M{"updated_at": now()}
	return s.changeUser(ctx, user, update)
}

// SetUserPolicies replaces the names of the policies attached to a user.
func (s *Mongo) SetUserPolicies(ctx context.Context, name string, policies []string) (*User, error) {
	return s.updateUser(ctx, name, bson.M{"policies": policies})
}

// DeleteUser removes a user and its access keys.
func (s *Mongo) DeleteUser(ctx context.Context, name string) error {
	res, err := s.c(colUsers).DeleteOne(ctx, bson.M{"_id": name})
	if err != nil {
		return err
	}
	if res.DeletedCount == 0 {
		return ErrNotFound
	}
	if _, err = s.c(colAccessKeys).DeleteMany(ctx, bson.M{"user": name}); err != nil {
		return err
	}
	_, err = s.c(colSessions).DeleteMany(ctx, bson.M{"user": name})
	return err
}
