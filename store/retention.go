package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

const (
	colRetentionRules = "retention_rules"
	colRetentionRuns  = "retention_runs"
)

// MaxRetentionRules is how many retention rules a namespace may have (SPEC §14).
const MaxRetentionRules = 15

// MaxRetentionDeletedListed bounds the deletions a run records one by one (a document stays well under
// MongoDB's 16 MiB); DeletedCount counts them all.
const MaxRetentionDeletedListed = 10000

// RetentionRule is one rule of a namespace's tag retention (SPEC §14). Empty patterns match everything.
type RetentionRule struct {
	ID                string    `bson:"id"`
	RepositoryPattern string    `bson:"repository_pattern"`
	TagPattern        string    `bson:"tag_pattern"`
	KeepLast          int       `bson:"keep_last"`
	KeepDays          int       `bson:"keep_days"`
	Enabled           bool      `bson:"enabled"`
	CreatedAt         time.Time `bson:"created_at"`
}

// RetentionRuleSet is a namespace's rules, one document per namespace: the limit of 15 and the order of the
// rules are one write.
type RetentionRuleSet struct {
	Namespace string          `bson:"_id"`
	Rules     []RetentionRule `bson:"rules"`
	UpdatedAt time.Time       `bson:"updated_at"`
}

// NewRetentionRuleID returns a new rule id.
func NewRetentionRuleID() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "rr-" + hex.EncodeToString(b[:])
}

// RetentionDeletion is a tag a retention run deleted (or, dry, would delete).
type RetentionDeletion struct {
	Repository string `bson:"repository"` // the name without the namespace
	Tag        string `bson:"tag"`
	Digest     string `bson:"digest"`
}

// RetentionRun records one run of a namespace's retention rules. FinishedAt is nil while it runs.
type RetentionRun struct {
	ID           string              `bson:"_id"`
	Namespace    string              `bson:"namespace"`
	StartedAt    time.Time           `bson:"started_at"`
	FinishedAt   *time.Time          `bson:"finished_at,omitempty"`
	DryRun       bool                `bson:"dry_run"`
	Trigger      string              `bson:"trigger"` // schedule or api
	Deleted      []RetentionDeletion `bson:"deleted"`
	DeletedCount int                 `bson:"deleted_count"`
	KeptCount    int                 `bson:"kept_count"`
	Error        string              `bson:"error,omitempty"`
}

// NewRetentionRunID returns an id that sorts by start time.
func NewRetentionRunID(at time.Time) string { return runID("ret-", at) }

// GetRetentionRules returns a namespace's retention rules in their order (none: an empty list).
func (s *Mongo) GetRetentionRules(ctx context.Context, namespace string) ([]RetentionRule, error) {
	d, err := findOne[RetentionRuleSet](ctx, s.c(colRetentionRules), bson.M{"_id": namespace})
	if errors.Is(err, ErrNotFound) {
		return []RetentionRule{}, nil
	}
	if err != nil {
		return nil, err
	}
	if d.Rules == nil {
		d.Rules = []RetentionRule{}
	}
	return d.Rules, nil
}

// UpdateRetentionRules replaces a namespace's rules with what change makes of them, under the namespace's
// lease; change's error is returned as it is and nothing is written.
func (s *Mongo) UpdateRetentionRules(ctx context.Context, namespace string, change func([]RetentionRule) ([]RetentionRule, error)) ([]RetentionRule, error) {
	ctx, unlock, err := s.lock(ctx, "retention/"+namespace)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if _, err := s.GetNamespace(ctx, namespace); err != nil {
		return nil, err
	}
	rules, err := s.GetRetentionRules(ctx, namespace)
	if err != nil {
		return nil, err
	}
	rules, err = change(rules)
	if err != nil {
		return nil, err
	}
	if rules == nil {
		rules = []RetentionRule{}
	}
	d := RetentionRuleSet{Namespace: namespace, Rules: rules, UpdatedAt: now()}
	_, err = s.c(colRetentionRules).ReplaceOne(ctx, bson.M{"_id": namespace}, d, options.Replace().SetUpsert(true))
	if err != nil {
		return nil, err
	}
	return rules, nil
}

// NamespacesWithRetentionRules lists the namespaces that have any retention rule (the schedule's work).
func (s *Mongo) NamespacesWithRetentionRules(ctx context.Context) ([]string, error) {
	cur, err := s.c(colRetentionRules).Find(ctx, bson.M{"rules.0": bson.M{"$exists": true}},
		options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}).SetProjection(bson.M{"_id": 1}))
	if err != nil {
		return nil, err
	}
	var ds []RetentionRuleSet
	if err := cur.All(ctx, &ds); err != nil {
		return nil, err
	}
	out := make([]string, 0, len(ds))
	for _, d := range ds {
		out = append(out, d.Namespace)
	}
	return out, nil
}

// CreateRetentionRun records a run that has started.
func (s *Mongo) CreateRetentionRun(ctx context.Context, r *RetentionRun) error {
	r.StartedAt = r.StartedAt.UTC().Truncate(time.Millisecond)
	if r.Deleted == nil {
		r.Deleted = []RetentionDeletion{}
	}
	_, err := s.c(colRetentionRuns).InsertOne(ctx, r)
	return alreadyExists(err)
}

// FinishRetentionRun stores a run's outcome and marks it finished.
func (s *Mongo) FinishRetentionRun(ctx context.Context, r *RetentionRun) error {
	fin := now()
	r.FinishedAt = &fin
	if r.Deleted == nil {
		r.Deleted = []RetentionDeletion{}
	}
	res, err := s.c(colRetentionRuns).ReplaceOne(ctx, bson.M{"_id": r.ID}, r)
	if err != nil {
		return err
	}
	if res.MatchedCount == 0 {
		return ErrNotFound
	}
	return nil
}

// GetRetentionRun returns one run of a namespace.
func (s *Mongo) GetRetentionRun(ctx context.Context, namespace, id string) (*RetentionRun, error) {
	return findOne[RetentionRun](ctx, s.c(colRetentionRuns), bson.M{"_id": id, "namespace": namespace})
}

// ListRetentionRuns pages through a namespace's runs, newest first.
func (s *Mongo) ListRetentionRuns(ctx context.Context, namespace string, p Page) ([]RetentionRun, int64, error) {
	return findPage[RetentionRun](ctx, s.c(colRetentionRuns), bson.M{"namespace": namespace},
		bson.D{{Key: "namespace", Value: 1}, {Key: "_id", Value: -1}}, p)
}

// EndUnfinishedRetentionRuns marks every run other than id that never finished as finished now with message
// as its error. The caller holds the retention lease, so no such run is still going.
func (s *Mongo) EndUnfinishedRetentionRuns(ctx context.Context, id, message string) (int64, error) {
	res, err := s.c(colRetentionRuns).UpdateMany(ctx,
		bson.M{"_id": bson.M{"$ne": id}, "finished_at": bson.M{"$exists": false}},
		bson.M{"$set": bson.M{"finished_at": now(), "error": message}})
	if err != nil {
		return 0, err
	}
	return res.ModifiedCount, nil
}

// MaxPatternLength bounds a retention or immutable-tags pattern.
const MaxPatternLength = 256

// CompilePattern compiles a pattern of §14: a regular expression matched against a whole name ("" matches
// everything; the caller decides what an empty pattern means where it means none).
func CompilePattern(p string) (*regexp.Regexp, error) {
	if len(p) > MaxPatternLength {
		return nil, fmt.Errorf("the pattern is %d characters long; at most %d", len(p), MaxPatternLength)
	}
	if p == "" {
		p = ".*"
	}
	re, err := regexp.Compile(`^(?:` + p + `)$`)
	if err != nil {
		return nil, fmt.Errorf("%q is not a regular expression: %w", p, err)
	}
	return re, nil
}

// TagImmutable reports whether tag is immutable in r (its immutable_tags pattern matches the whole tag). A
// pattern that no longer compiles makes every tag immutable: better refused than lost.
func (r *Repository) TagImmutable(tag string) bool { return r.ImmutableMatcher()(tag) }

// ImmutableMatcher is TagImmutable with the pattern compiled once, for asking of many tags.
func (r *Repository) ImmutableMatcher() func(tag string) bool {
	if r.ImmutableTags == "" {
		return func(string) bool { return false }
	}
	re, err := CompilePattern(r.ImmutableTags)
	if err != nil {
		return func(string) bool { return true }
	}
	return re.MatchString
}
