package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Build statuses (SPEC §5): QUEUED → CLONING → BUILDING → PUSHING → SCANNING → SUCCESS, or FAILED, CANCELED,
// BLOCKED. The last four are final.
const (
	BuildQueued   = "QUEUED"
	BuildCloning  = "CLONING"
	BuildBuilding = "BUILDING"
	BuildPushing  = "PUSHING"
	BuildScanning = "SCANNING"
	BuildSuccess  = "SUCCESS"
	BuildFailed   = "FAILED"
	BuildCanceled = "CANCELED"
	BuildBlocked  = "BLOCKED"
)

// BuildFinal reports whether status is one a build never leaves.
func BuildFinal(status string) bool {
	switch status {
	case BuildSuccess, BuildFailed, BuildCanceled, BuildBlocked:
		return true
	}
	return false
}

// BuildRunning lists the statuses of a build a worker is working on.
var BuildRunning = []string{BuildCloning, BuildBuilding, BuildPushing, BuildScanning}

// What started a build.
const (
	BuildByWebhook = "webhook"
	BuildByManual  = "manual"
	BuildByAPI     = "api"
)

// Stage statuses.
const (
	StageRunning  = "RUNNING"
	StageSuccess  = "SUCCESS"
	StageFailed   = "FAILED"
	StageCanceled = "CANCELED"
)

// BuildStage is one stage of a build with its timing. Zero times are unset.
type BuildStage struct {
	Name       string    `bson:"name"`
	Status     string    `bson:"status"`
	StartedAt  time.Time `bson:"started_at"`
	FinishedAt time.Time `bson:"finished_at"`
}

// BuildSpec is what a build runs: the rule as it was when the build was made, so later edits or a deleted
// rule do not change a queued build.
type BuildSpec struct {
	DockerfileDir  string            `bson:"dockerfile_dir"`
	DockerfileName string            `bson:"dockerfile_name"`
	BuildArgs      map[string]string `bson:"build_args"`
	Target         string            `bson:"target"`
	Platforms      []string          `bson:"platforms"`
}

// Build is one run of a build rule (SPEC §5).
type Build struct {
	ID         string `bson:"_id"` // NewBuildID: sorts by creation time
	Repository string `bson:"repository"`
	RuleID     string `bson:"rule_id"`
	Trigger    string `bson:"trigger"`
	RefType    string `bson:"ref_type"` // RuleBranch or RuleTag
	Ref        string `bson:"ref"`      // branch or tag name
	Commit     string `bson:"commit"`
	Pusher     string `bson:"pusher"`
	ImageTag   string `bson:"image_tag"`
	Digest     string `bson:"digest"`
	Region     string `bson:"region"` // the queue it runs on: "default", "overseas"
	NoCache    bool   `bson:"no_cache"`
	// Deliveries are the keys of the webhook delivery that started the build (see TakeOverDelivery).
	Deliveries []string     `bson:"deliveries,omitempty"`
	Spec       BuildSpec    `bson:"spec"`
	Status     string       `bson:"status"`
	Stages     []BuildStage `bson:"stages"`
	Error      string       `bson:"error"`
	CreatedAt  time.Time    `bson:"created_at"`
	UpdatedAt  time.Time    `bson:"updated_at"`
	FinishedAt time.Time    `bson:"finished_at"`

	// QueueError is set when the build could not be put on the queue; the sweeper tries again.
	QueueError string `bson:"queue_error"`
	// Attempt counts the worker runs that started; Heartbeat is renewed by the running one, Worker names it.
	Attempt   int       `bson:"attempt"`
	Heartbeat time.Time `bson:"heartbeat"`
	Worker    string    `bson:"worker"`
	// Rev counts the writes of UpdateBuild.
	Rev int64 `bson:"rev"`
}

// NewBuildID returns a fresh build id that sorts after every id made earlier (millisecond time, then random).
func NewBuildID() string {
	var b [5]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%012x%s", time.Now().UnixMilli(), hex.EncodeToString(b[:]))
}

// CreateBuild inserts b (QUEUED unless its status is set), giving it an id when it has none.
func (s *Mongo) CreateBuild(ctx context.Context, b *Build) error {
	if b.ID == "" {
		b.ID = NewBuildID()
	}
	if b.Status == "" {
		b.Status = BuildQueued
	}
	if b.Stages == nil {
		b.Stages = []BuildStage{}
	}
	b.CreatedAt, b.UpdatedAt = now(), now()
	doc, err := bson.Marshal(b)
	if err != nil {
		return err
	}
	return s.insertOne(ctx, colBuilds, doc)
}

// GetBuild returns build id of repo.
func (s *Mongo) GetBuild(ctx context.Context, repo, id string) (*Build, error) {
	b, err := s.BuildByID(ctx, id)
	if err != nil {
		return nil, err
	}
	if b.Repository != repo {
		return nil, ErrNotFound
	}
	return b, nil
}

// BuildByID returns build id, whatever its repository (for workers).
func (s *Mongo) BuildByID(ctx context.Context, id string) (*Build, error) {
	return findOne[Build](ctx, s.c(colBuilds), bson.M{"_id": id})
}

// ListBuilds pages through the builds of repo, newest first.
func (s *Mongo) ListBuilds(ctx context.Context, repo string, p Page) ([]Build, int64, error) {
	return findPage[Build](ctx, s.c(colBuilds), bson.M{"repository": repo}, bson.D{{Key: "_id", Value: -1}}, p)
}

// BuildsInStatus returns up to limit builds in any of statuses with an id after `after` (all when ""), oldest
// first: call it again with the last id for the next page.
func (s *Mongo) BuildsInStatus(ctx context.Context, statuses []string, after string, limit int) ([]Build, error) {
	filter := bson.M{"status": bson.M{"$in": statuses}}
	if after != "" {
		filter["_id"] = bson.M{"$gt": after}
	}
	return s.findBuilds(ctx, filter, limit)
}

// UnqueuedBuilds returns up to limit QUEUED builds whose task could not be put on the queue.
func (s *Mongo) UnqueuedBuilds(ctx context.Context, limit int) ([]Build, error) {
	return s.findBuilds(ctx, bson.M{"status": BuildQueued, "queue_error": bson.M{"$gt": ""}}, limit)
}

func (s *Mongo) findBuilds(ctx context.Context, filter bson.M, limit int) ([]Build, error) {
	cur, err := s.c(colBuilds).Find(ctx, filter, options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}).SetLimit(int64(limit)))
	if err != nil {
		return nil, err
	}
	out := []Build{}
	if err := cur.All(ctx, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// ErrNoChange, returned by an UpdateBuild change function, leaves the build as it is: UpdateBuild then returns
// it as read, without a write.
var ErrNoChange = errors.New("no change")

// UpdateBuild applies change to build id and stores the result. It holds the build's lease meanwhile, so no
// other process writes the build between the read and the write: change always sees the build as it is, and a
// status it refuses to move backward (a worker's next stage after a cancel) stays refused. An error from change
// is returned as is and nothing is stored.
func (s *Mongo) UpdateBuild(ctx context.Context, id string, change func(*Build) error) (*Build, error) {
	ctx, unlock, err := s.lock(ctx, "build/"+id)
	if err != nil {
		return nil, err
	}
	defer unlock()
	b, err := findOne[Build](ctx, s.c(colBuilds), bson.M{"_id": id})
	if err != nil {
		return nil, err
	}
	rev := b.Rev
	if err := change(b); errors.Is(err, ErrNoChange) {
		return b, nil
	} else if err != nil {
		return nil, err
	}
	b.ID, b.Rev, b.UpdatedAt = id, rev+1, now()
	// By _id alone: FerretDB's SQLite handler reads the whole collection for any other filter.
	res, err := s.c(colBuilds).ReplaceOne(ctx, bson.M{"_id": id}, b)
	if err != nil {
		return nil, err
	}
	if res.MatchedCount == 0 { // deleted with its repository meanwhile
		return nil, ErrNotFound
	}
	return b, nil
}

// Stage returns the build's stage called name, or nil.
func (b *Build) Stage(name string) *BuildStage {
	for i := range b.Stages {
		if b.Stages[i].Name == name {
			return &b.Stages[i]
		}
	}
	return nil
}

// EnterStage ends the running stage (SUCCESS) and starts stage name at t; the build's status becomes name.
// Entering a stage that exists already (a retried attempt) restarts it.
func (b *Build) EnterStage(name string, t time.Time) {
	b.endRunning(StageSuccess, t)
	if st := b.Stage(name); st != nil {
		st.Status, st.StartedAt, st.FinishedAt = StageRunning, t, time.Time{}
	} else {
		b.Stages = append(b.Stages, BuildStage{Name: name, Status: StageRunning, StartedAt: t})
	}
	b.Status = name
}

// Finish puts the build in final status at t with errMsg (for FAILED and CANCELED); the running stage ends
// with a matching stage status.
func (b *Build) Finish(status, errMsg string, t time.Time) {
	stage := StageSuccess
	switch status {
	case BuildFailed, BuildBlocked:
		stage = StageFailed
	case BuildCanceled:
		stage = StageCanceled
	}
	b.endRunning(stage, t)
	b.Status, b.Error, b.FinishedAt = status, errMsg, t
}

func (b *Build) endRunning(status string, t time.Time) {
	for i := range b.Stages {
		if b.Stages[i].Status == StageRunning {
			b.Stages[i].Status, b.Stages[i].FinishedAt = status, t
		}
	}
}

// Running reports whether a worker is (or was, if it died) working on the build.
func (b *Build) Running() bool { return slices.Contains(BuildRunning, b.Status) }

// Build log storage bounds: a log is kept in chunks of at most MaxLogChunk bytes, MaxLogBytes in all.
const (
	MaxLogChunk = 64 << 10
	MaxLogBytes = 8 << 20
)

// LogChunk is one piece of a build log. A chunk is rewritten while it grows; Closed means it will not grow
// any more (the next one, if any, follows).
type LogChunk struct {
	ID         string    `bson:"_id"` // LogChunkID(build, seq)
	Build      string    `bson:"build"`
	Repository string    `bson:"repository"`
	Seq        int       `bson:"seq"`
	Data       string    `bson:"data"`
	Closed     bool      `bson:"closed"`
	At         time.Time `bson:"at"`
}

// LogChunkID names chunk seq of a build: the build id and the zero-padded sequence number.
func LogChunkID(build string, seq int) string { return fmt.Sprintf("%s-%06d", build, seq) }

// PutLogChunk writes c (replacing the same chunk).
func (s *Mongo) PutLogChunk(ctx context.Context, c *LogChunk) error {
	if len(c.Data) > MaxLogChunk {
		return fmt.Errorf("log chunk of %d bytes is larger than %d", len(c.Data), MaxLogChunk)
	}
	c.ID, c.At = LogChunkID(c.Build, c.Seq), now()
	// One writer per build (its worker): the last write is the chunk.
	return upsert(func() error {
		_, err := s.c(colBuildLogs).ReplaceOne(ctx, bson.M{"_id": c.ID}, c, options.Replace().SetUpsert(true))
		return err
	})
}

// GetLogChunk returns chunk seq of build, or ErrNotFound.
func (s *Mongo) GetLogChunk(ctx context.Context, build string, seq int) (*LogChunk, error) {
	return findOne[LogChunk](ctx, s.c(colBuildLogs), bson.M{"_id": LogChunkID(build, seq)})
}
