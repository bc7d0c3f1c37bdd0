package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
)

const colGCRuns = "gc_runs"

// GCRun records one garbage collection of the registry. FinishedAt is nil while it runs.
type GCRun struct {
	ID               string     `bson:"_id"`
	StartedAt        time.Time  `bson:"started_at"`
	FinishedAt       *time.Time `bson:"finished_at,omitempty"`
	DryRun           bool       `bson:"dry_run"`
	UntaggedGrace    string     `bson:"untagged_grace"`
	BlobGrace        string     `bson:"blob_grace"`
	Trigger          string     `bson:"trigger"` // schedule, api or cli
	ManifestsDeleted int        `bson:"manifests_deleted"`
	BlobsDeleted     int        `bson:"blobs_deleted"`
	BytesFreed       int64      `bson:"bytes_freed"`
	Error            string     `bson:"error,omitempty"`
}

// NewGCRunID returns an id that sorts by start time.
func NewGCRunID(at time.Time) string { return runID("gc-", at) }

// runID is prefix, the time and a random suffix: ids of runs sort by start time.
func runID(prefix string, at time.Time) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return prefix + at.UTC().Format("20060102T150405.000Z") + "-" + hex.EncodeToString(b[:])
}

// CreateGCRun records a run that has started.
func (s *Mongo) CreateGCRun(ctx context.Context, r *GCRun) error {
	r.StartedAt = r.StartedAt.UTC().Truncate(time.Millisecond)
	_, err := s.c(colGCRuns).InsertOne(ctx, r)
	return alreadyExists(err)
}

// FinishGCRun stores a run's outcome.
func (s *Mongo) FinishGCRun(ctx context.Context, r *GCRun) error {
	fin := now()
	r.FinishedAt = &fin
	res, err := s.c(colGCRuns).UpdateOne(ctx, bson.M{"_id": r.ID}, bson.M{"$set": bson.M{
		"finished_at": fin, "manifests_deleted": r.ManifestsDeleted, "blobs_deleted": r.BlobsDeleted,
		"bytes_freed": r.BytesFreed, "error": r.Error,
	}})
	if err != nil {
		return err
	}
	if res.MatchedCount == 0 {
		return ErrNotFound
	}
	return nil
}

// GetGCRun returns one run.
func (s *Mongo) GetGCRun(ctx context.Context, id string) (*GCRun, error) {
	return findOne[GCRun](ctx, s.c(colGCRuns), bson.M{"_id": id})
}

// ListGCRuns pages through the runs, newest first.
func (s *Mongo) ListGCRuns(ctx context.Context, p Page) ([]GCRun, int64, error) {
	return findPage[GCRun](ctx, s.c(colGCRuns), bson.M{}, bson.D{{Key: "_id", Value: -1}}, p)
}

// LastGCRun returns the most recent run, or ErrNotFound.
func (s *Mongo) LastGCRun(ctx context.Context) (*GCRun, error) {
	runs, _, err := s.ListGCRuns(ctx, Page{Page: 1, PageSize: 1})
	if err != nil {
		return nil, err
	}
	if len(runs) == 0 {
		return nil, ErrNotFound
	}
	return &runs[0], nil
}

// EndUnfinishedGCRuns marks every run other than id that never finished as finished now with message as its
// error. The caller holds the collection lease, so no such run is still going: its process stopped mid-run.
func (s *Mongo) EndUnfinishedGCRuns(ctx context.Context, id, message string) (int64, error) {
	res, err := s.c(colGCRuns).UpdateMany(ctx,
		bson.M{"_id": bson.M{"$ne": id}, "finished_at": bson.M{"$exists": false}},
		bson.M{"$set": bson.M{"finished_at": now(), "error": message}})
	if err != nil {
		return 0, err
	}
	return res.ModifiedCount, nil
}
