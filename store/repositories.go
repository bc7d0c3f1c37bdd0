package store

import (
	"context"
	"errors"
	"regexp"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Origin of a repository.
const (
	OriginUser = "USER"
	OriginPush = "PUSH"
)

// Repository is namespace/name with its settings (SPEC §2).
type Repository struct {
	FullName    string `bson:"_id"` // namespace/name
	Namespace   string `bson:"namespace"`
	Name        string `bson:"name"`
	AccountID   string `bson:"account_id"`
	Summary     string `bson:"summary"`
	Description string `bson:"description"`
	Visibility  string `bson:"visibility"`
	Origin      string `bson:"origin"`
	// ImmutableTags is a regular expression matched against a whole tag: a tag it matches, once pushed, is
	// never moved to another digest nor deleted (SPEC §14). Empty: no tag is immutable.
	ImmutableTags string    `bson:"immutable_tags,omitempty"`
	CreatedAt     time.Time `bson:"created_at"`
	UpdatedAt     time.Time `bson:"updated_at"`
}

// CreateRepository inserts r. Errors: ErrNotFound when the namespace is missing (or being deleted),
// ErrAlreadyExists. It holds the namespace's lease, so a DeleteNamespace that found the namespace empty does
// not drop it under a new repository.
func (s *Mongo) CreateRepository(ctx context.Context, r *Repository) error {
	ctx, unlock, err := s.lock(ctx, "namespace/"+r.Namespace)
	if err != nil {
		return err
	}
	defer unlock()
	if ns, err := s.GetNamespace(ctx, r.Namespace); err != nil {
		return err
	} else if ns.Deleting {
		return ErrNotFound
	}
	r.FullName = r.Namespace + "/" + r.Name
	r.CreatedAt, r.UpdatedAt = now(), now()
	defer s.repos.invalidate()
	if _, err := s.c(colRepositories).InsertOne(ctx, r); err != nil {
		return alreadyExists(err)
	}
	return nil
}

// GetRepository returns namespace/name.
func (s *Mongo) GetRepository(ctx context.Context, namespace, name string) (*Repository, error) {
	return findOne[Repository](ctx, s.c(colRepositories), bson.M{"_id": namespace + "/" + name})
}

// ListRepositories pages through repositories by full name: those of one namespace, or all when namespace is
// empty (restricted to accountID when given).
func (s *Mongo) ListRepositories(ctx context.Context, accountID, namespace string, p Page) ([]Repository, int64, error) {
	return s.SearchRepositories(ctx, accountID, namespace, "", p)
}

// SearchRepositories lists repositories (of one namespace when namespace is not "") whose name contains
// query ("" matches all), by full name.
func (s *Mongo) SearchRepositories(ctx context.Context, accountID, namespace, query string, p Page) ([]Repository, int64, error) {
	if s.ferret {
		return s.searchCachedRepositories(ctx, accountID, namespace, query, p)
	}
	filter := bson.M{}
	if query != "" {
		filter["name"] = bson.M{"$regex": regexp.QuoteMeta(query)}
	}
	if namespace != "" {
		filter["namespace"] = namespace
	}
	if accountID != "" {
		filter["account_id"] = accountID
	}
	return findPage[Repository](ctx, s.c(colRepositories), filter, bson.D{{Key: "_id", Value: 1}}, p)
}

// RepositoryUpdate holds what a PATCH may change; nil fields stay as they are.
type RepositoryUpdate struct {
	Summary     *string
	Description *string
	Visibility  *string
	// ImmutableTags, validated by the caller (ValidateImmutableTags).
	ImmutableTags *string
}

// UpdateRepository applies u and returns the repository as it now is.
func (s *Mongo) UpdateRepository(ctx context.Context, namespace, name string, u RepositoryUpdate) (*Repository, error) {
	// The lease keeps a concurrent change of other fields (FerretDB rewrites the whole document) from being lost.
	ctx, unlock, err := s.lock(ctx, "repository/"+namespace+"/"+name)
	if err != nil {
		return nil, err
	}
	defer unlock()
	set := bson.M{"updated_at": now()}
	if u.Summary != nil {
		set["summary"] = *u.Summary
	}
	if u.Description != nil {
		set["description"] = *u.Description
	}
	if u.Visibility != nil {
		set["visibility"] = *u.Visibility
	}
	if u.ImmutableTags != nil {
		set["immutable_tags"] = *u.ImmutableTags
	}
	defer s.repos.invalidate()
	var r Repository
	err = s.c(colRepositories).FindOneAndUpdate(ctx, bson.M{"_id": namespace + "/" + name}, bson.M{"$set": set},
		options.FindOneAndUpdate().SetReturnDocument(options.After)).Decode(&r)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, ErrNotFound
	}
	return &r, err
}

// DeleteRepository removes a repository and its image versions.
func (s *Mongo) DeleteRepository(ctx context.Context, namespace, name string) error {
	return s.deleteRepository(ctx, namespace+"/"+name)
}

// deleteRepository removes the repository first, then what it owns: a child inserted after the sweep finds
// the repository gone (repositoryGone) and removes itself.
func (s *Mongo) deleteRepository(ctx context.Context, full string) error {
	defer s.repos.invalidate()
	res, err := s.c(colRepositories).DeleteOne(ctx, bson.M{"_id": full})
	if err != nil {
		return err
	}
	if res.DeletedCount == 0 {
		return ErrNotFound
	}
	for _, col := range repoOwnedCollections {
		if _, err := s.c(col).DeleteMany(ctx, bson.M{"repository": full}); err != nil {
			return err
		}
	}
	return nil
}

// repoOwnedCollections hold documents with a "repository" field that die with their repository.
var repoOwnedCollections = []string{colTags, colTriggers, colTriggerRecords,
	colSources, colSourceHooks, colHookDeliveries, colBuildRules, colBuilds, colBuildLogs, colSecurityPolicies}

// repositoryGone is the check a child of repository repo (a trigger, a rule, a source) makes after its insert:
// true when the repository is gone, so that DeleteRepository's sweep may have missed the child.
func (s *Mongo) repositoryGone(ctx context.Context, repo string) (bool, error) {
	_, err := findOne[Repository](ctx, s.c(colRepositories), bson.M{"_id": repo})
	if errors.Is(err, ErrNotFound) {
		return true, nil
	}
	return false, err
}

// undoIfOrphan removes document id of col, just inserted for repository repo, when the repository went
// meanwhile, and then answers ErrNotFound.
func (s *Mongo) undoIfOrphan(ctx context.Context, repo, col, id string) error {
	gone, err := s.repositoryGone(ctx, repo)
	if err != nil || !gone {
		return err
	}
	if _, err := s.c(col).DeleteOne(ctx, bson.M{"_id": id}); err != nil {
		return err
	}
	return ErrNotFound
}

func (s *Mongo) repoNamesIn(ctx context.Context, namespace string) ([]string, error) {
	cur, err := s.c(colRepositories).Find(ctx, bson.M{"namespace": namespace},
		options.Find().SetProjection(bson.M{"_id": 1}).SetSort(bson.D{{Key: "_id", Value: 1}}))
	if err != nil {
		return nil, err
	}
	var rs []Repository
	if err := cur.All(ctx, &rs); err != nil {
		return nil, err
	}
	names := make([]string, len(rs))
	for i, r := range rs {
		names[i] = r.FullName
	}
	return names, nil
}
