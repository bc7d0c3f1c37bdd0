package store

import (
	"context"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Source types of a build rule (SPEC §5).
const (
	RuleBranch = "BRANCH"
	RuleTag    = "TAG"
)

// MaxBuildRules bounds the rules of one repository; every webhook matches against all of them.
const MaxBuildRules = 50

// BuildRule turns pushes of matching branches or tags into builds (SPEC §5).
type BuildRule struct {
	ID             string            `bson:"_id"`
	Repository     string            `bson:"repository"` // namespace/name
	SourceType     string            `bson:"source_type"`
	SourceRef      string            `bson:"source_ref"`
	DockerfileDir  string            `bson:"dockerfile_dir"`
	DockerfileName string            `bson:"dockerfile_name"`
	ImageTag       string            `bson:"image_tag"`
	BuildArgs      map[string]string `bson:"build_args"`
	Target         string            `bson:"target"`
	Platforms      []string          `bson:"platforms"`
	CreatedAt      time.Time         `bson:"created_at"`
	UpdatedAt      time.Time         `bson:"updated_at"`
}

// NewRuleID returns a fresh rule id, which sorts after the ids this process made before (creationID).
func NewRuleID() string { return creationID() }

// CreateBuildRule inserts r with a new id. ErrNotFound when the repository does not exist, ErrLimitExceeded
// when it has MaxBuildRules already. The repository's rules lease keeps the count and the insert together.
func (s *Mongo) CreateBuildRule(ctx context.Context, r *BuildRule) error {
	ctx, unlock, err := s.lock(ctx, "rules/"+r.Repository)
	if err != nil {
		return err
	}
	defer unlock()
	if _, err := findOne[Repository](ctx, s.c(colRepositories), bson.M{"_id": r.Repository}); err != nil {
		return err
	}
	n, err := s.c(colBuildRules).CountDocuments(ctx, bson.M{"repository": r.Repository})
	if err != nil {
		return err
	}
	if n >= MaxBuildRules {
		return ErrLimitExceeded
	}
	r.ID = NewRuleID()
	r.normalize()
	r.CreatedAt, r.UpdatedAt = now(), now()
	if _, err := s.c(colBuildRules).InsertOne(ctx, r); err != nil {
		return alreadyExists(err)
	}
	return s.undoIfOrphan(ctx, r.Repository, colBuildRules, r.ID)
}

func (r *BuildRule) normalize() {
	if r.BuildArgs == nil {
		r.BuildArgs = map[string]string{}
	}
	if r.Platforms == nil {
		r.Platforms = []string{}
	}
}

// GetBuildRule returns rule id of repo.
func (s *Mongo) GetBuildRule(ctx context.Context, repo, id string) (*BuildRule, error) {
	r, err := findOne[BuildRule](ctx, s.c(colBuildRules), bson.M{"_id": id})
	if err != nil {
		return nil, err
	}
	if r.Repository != repo {
		return nil, ErrNotFound
	}
	r.normalize()
	return r, nil
}

// ListBuildRules pages through the rules of repo, oldest first.
func (s *Mongo) ListBuildRules(ctx context.Context, repo string, p Page) ([]BuildRule, int64, error) {
	items, total, err := findPage[BuildRule](ctx, s.c(colBuildRules), bson.M{"repository": repo},
		bson.D{{Key: "created_at", Value: 1}, {Key: "_id", Value: 1}}, p)
	for i := range items {
		items[i].normalize()
	}
	return items, total, err
}

// AllBuildRules returns every rule of repo (at most MaxBuildRules), for matching a push.
func (s *Mongo) AllBuildRules(ctx context.Context, repo string) ([]BuildRule, error) {
	cur, err := s.c(colBuildRules).Find(ctx, bson.M{"repository": repo},
		options.Find().SetSort(bson.D{{Key: "created_at", Value: 1}, {Key: "_id", Value: 1}}).SetLimit(MaxBuildRules))
	if err != nil {
		return nil, err
	}
	items := []BuildRule{}
	if err := cur.All(ctx, &items); err != nil {
		return nil, err
	}
	for i := range items {
		items[i].normalize()
	}
	return items, nil
}

// UpdateBuildRule applies change to rule id of repo and stores the result, holding the rule's lease so that two
// changes at once both apply. An error from change is returned as is and nothing is stored.
func (s *Mongo) UpdateBuildRule(ctx context.Context, repo, id string, change func(*BuildRule) error) (*BuildRule, error) {
	ctx, unlock, err := s.lock(ctx, "rule/"+id)
	if err != nil {
		return nil, err
	}
	defer unlock()
	r, err := findOne[BuildRule](ctx, s.c(colBuildRules), bson.M{"_id": id})
	if err != nil {
		return nil, err
	}
	if r.Repository != repo {
		return nil, ErrNotFound
	}
	r.normalize()
	if err := change(r); err != nil {
		return nil, err
	}
	r.ID, r.Repository = id, repo
	r.normalize()
	r.UpdatedAt = now()
	res, err := s.c(colBuildRules).ReplaceOne(ctx, bson.M{"_id": id}, r, options.Replace())
	if err != nil {
		return nil, err
	}
	if res.MatchedCount == 0 {
		return nil, ErrNotFound
	}
	return r, nil
}

// DeleteBuildRule removes rule id of repo. Its builds stay: each keeps a copy of the rule it ran.
func (s *Mongo) DeleteBuildRule(ctx context.Context, repo, id string) error {
	res, err := s.c(colBuildRules).DeleteOne(ctx, bson.M{"_id": id, "repository": repo})
	if err != nil {
		return err
	}
	if res.DeletedCount == 0 {
		return ErrNotFound
	}
	return nil
}
