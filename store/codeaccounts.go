package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

const colCodeAccounts = "code_accounts"

// CodeAccount is an account on a Git host, bound once and named by code sources (SPEC §16): Berth lists the
// repositories its token sees, clones with it and registers webhooks with it.
type CodeAccount struct {
	ID        string `bson:"_id"`
	AccountID string `bson:"account_id"` // the main account that owns it
	Provider  string `bson:"provider"`   // github, gitlab, gitea or bitbucket
	BaseURL   string `bson:"base_url"`   // the host's API root
	Username  string `bson:"username"`
	// Token is sealed with the instance's secretbox; it never leaves the store except to call the host or clone.
	Token     string    `bson:"token"`
	Login     string    `bson:"login"` // whom the host said the token belongs to, when it was bound
	CreatedBy string    `bson:"created_by"`
	CreatedAt time.Time `bson:"created_at"`
}

// NewCodeAccountID returns a fresh code account id, which sorts by creation.
func NewCodeAccountID() string { return creationID() }

// ErrInUse is the kind of an *InUseError.
var ErrInUse = errors.New("in use")

// InUseError refuses to delete a code account that code sources name.
type InUseError struct {
	Repositories []string // some of the repositories whose sources name it (at most MaxInUse)
}

// MaxInUse bounds the repositories an InUseError names.
const MaxInUse = 10

func (e *InUseError) Error() string {
	return fmt.Sprintf("the code account is used by the code source of %s; disconnect those first (DELETE …/source)",
		strings.Join(e.Repositories, ", "))
}

func (e *InUseError) Unwrap() error { return ErrInUse }

// ErrNoCodeAccount: a source names a code account that does not exist.
var ErrNoCodeAccount = errors.New("the code account does not exist")

// CreateCodeAccount stores a, giving it an id when it has none.
func (s *Mongo) CreateCodeAccount(ctx context.Context, a *CodeAccount) error {
	if a.ID == "" {
		a.ID = NewCodeAccountID()
	}
	a.CreatedAt = now()
	_, err := s.c(colCodeAccounts).InsertOne(ctx, a)
	return alreadyExists(err)
}

// GetCodeAccount returns code account id.
func (s *Mongo) GetCodeAccount(ctx context.Context, id string) (*CodeAccount, error) {
	return findOne[CodeAccount](ctx, s.c(colCodeAccounts), bson.M{"_id": id})
}

// ListCodeAccounts pages through the code accounts of the main account accountID in creation order.
func (s *Mongo) ListCodeAccounts(ctx context.Context, accountID string, p Page) ([]CodeAccount, int64, error) {
	return findPage[CodeAccount](ctx, s.c(colCodeAccounts), bson.M{"account_id": accountID},
		bson.D{{Key: "created_at", Value: 1}, {Key: "_id", Value: 1}}, p)
}

// DeleteCodeAccount deletes code account id; an *InUseError when code sources name it. It holds the account's
// lease, which PutSource holds too while it checks that the account it names exists.
func (s *Mongo) DeleteCodeAccount(ctx context.Context, id string) error {
	ctx, unlock, err := s.lock(ctx, "code-account/"+id)
	if err != nil {
		return err
	}
	defer unlock()
	cur, err := s.c(colSources).Find(ctx, bson.M{"code_account": id},
		options.Find().SetLimit(MaxInUse).SetProjection(bson.M{"_id": 1}).SetSort(bson.D{{Key: "code_account", Value: 1}, {Key: "_id", Value: 1}}))
	if err != nil {
		return err
	}
	var using []struct {
		ID string `bson:"_id"`
	}
	if err := cur.All(ctx, &using); err != nil {
		return err
	}
	if len(using) > 0 {
		e := &InUseError{}
		for _, u := range using {
			e.Repositories = append(e.Repositories, u.ID)
		}
		return e
	}
	res, err := s.c(colCodeAccounts).DeleteOne(ctx, bson.M{"_id": id})
	if err != nil {
		return err
	}
	if res.DeletedCount == 0 {
		return ErrNotFound
	}
	return nil
}

// codeAccountExists checks, under the account's lease, that the code account a source names exists.
func (s *Mongo) codeAccountExists(ctx context.Context, id string) (unlock func(), err error) {
	if id == "" {
		return func() {}, nil
	}
	ctx, unlock, err = s.lock(ctx, "code-account/"+id)
	if err != nil {
		return nil, err
	}
	if _, err := findOne[CodeAccount](ctx, s.c(colCodeAccounts), bson.M{"_id": id}); errors.Is(err, ErrNotFound) {
		unlock()
		return nil, ErrNoCodeAccount
	} else if err != nil {
		unlock()
		return nil, err
	}
	return unlock, nil
}
