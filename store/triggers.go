package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

const (
	colTriggers       = "triggers"
	colTriggerRecords = "trigger_records"
)

// Statuses of a trigger record (SPEC §8).
const (
	TriggerTriggered    = "TRIGGERED"
	TriggerFailed       = "FAILED"
	TriggerNotTriggered = "NOT_TRIGGERED"
)

// Trigger is an outgoing webhook of a repository (SPEC §8). Its _id is random and global, so the worker and the
// API find it by _id alone; Repository scopes it.
type Trigger struct {
	ID         string   `bson:"_id"`
	Repository string   `bson:"repository"` // namespace/name
	Name       string   `bson:"name"`
	URL        string   `bson:"url"`
	FilterType string   `bson:"filter_type"` // ALL, EXPRESSION or TAGS
	Expression string   `bson:"expression"`
	Tags       []string `bson:"tags"`
	Enabled    bool     `bson:"enabled"`
	// Secret is the HMAC key of the X-Berth-Signature header, sealed with the instance's secretbox. It never
	// leaves the store except to sign a delivery.
	Secret    string    `bson:"secret"`
	CreatedAt time.Time `bson:"created_at"`
	UpdatedAt time.Time `bson:"updated_at"`
}

// TriggerRecord is one entry of a trigger's history: one delivery (however many attempts it took), one test
// delivery, or one push the trigger did not fire for.
type TriggerRecord struct {
	// ID is TriggerRecordID(...): the trigger's id, then a time-sortable part, so a trigger's records sort by
	// _id newest last and every attempt of a delivery rewrites the same document.
	ID              string    `bson:"_id"`
	TriggerID       string    `bson:"trigger_id"`
	Repository      string    `bson:"repository"`
	Time            time.Time `bson:"time"` // when the record was last written
	Tag             string    `bson:"tag"`
	Digest          string    `bson:"digest"`
	Status          string    `bson:"status"`
	Reason          string    `bson:"reason"`
	StatusCode      int       `bson:"status_code"`
	LatencyMS       int64     `bson:"latency_ms"`
	Attempts        int       `bson:"attempts"`
	RequestBody     string    `bson:"request_body"`
	ResponseExcerpt string    `bson:"response_excerpt"`
}

// NewTriggerID returns a fresh trigger id, which sorts after the ids this process made before (creationID).
func NewTriggerID() string { return creationID() }

// idSeq orders the ids one process makes within one millisecond.
var idSeq atomic.Uint32

// creationID is 16 hex digits: the millisecond, then a counter of this process, then a random byte. Lists
// sorted by creation time (to the millisecond, as the store keeps times) and then by id keep the creation
// order of what one process made within one millisecond too.
func creationID() string {
	var b [1]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%011x%03x%s", time.Now().UnixMilli()&0xfffffffffff, idSeq.Add(1)&0xfff, hex.EncodeToString(b[:]))
}

// TriggerRecordID names the record of triggerID for an event at `at`. key tells events at the same instant
// apart (e.g. tag and digest); the same inputs always give the same id, so a retried task rewrites its record.
func TriggerRecordID(triggerID string, at time.Time, key string) string {
	sum := sha256.Sum256([]byte(key))
	return triggerID + "-" + at.UTC().Format("20060102T150405.000000000Z") + "-" + hex.EncodeToString(sum[:4])
}

// CreateTrigger inserts t, giving it an id and times. ErrNotFound when its repository does not exist.
func (s *Mongo) CreateTrigger(ctx context.Context, t *Trigger) error {
	if _, err := findOne[Repository](ctx, s.c(colRepositories), bson.M{"_id": t.Repository}); err != nil {
		return err
	}
	if t.ID == "" {
		t.ID = NewTriggerID()
	}
	if t.Tags == nil {
		t.Tags = []string{}
	}
	t.CreatedAt, t.UpdatedAt = now(), now()
	if _, err := s.c(colTriggers).InsertOne(ctx, t); err != nil {
		return alreadyExists(err)
	}
	return s.undoIfOrphan(ctx, t.Repository, colTriggers, t.ID)
}

// GetTrigger returns trigger id of repo.
func (s *Mongo) GetTrigger(ctx context.Context, repo, id string) (*Trigger, error) {
	t, err := findOne[Trigger](ctx, s.c(colTriggers), bson.M{"_id": id})
	if err != nil {
		return nil, err
	}
	if t.Repository != repo {
		return nil, ErrNotFound
	}
	return t, nil
}

// ListTriggers pages through repo's triggers, oldest first.
func (s *Mongo) ListTriggers(ctx context.Context, repo string, p Page) ([]Trigger, int64, error) {
	return findPage[Trigger](ctx, s.c(colTriggers), bson.M{"repository": repo},
		bson.D{{Key: "created_at", Value: 1}, {Key: "_id", Value: 1}}, p)
}

// EnabledTriggers returns every enabled trigger of repo.
func (s *Mongo) EnabledTriggers(ctx context.Context, repo string) ([]Trigger, error) {
	cur, err := s.c(colTriggers).Find(ctx, bson.M{"repository": repo, "enabled": true},
		options.Find().SetSort(bson.D{{Key: "created_at", Value: 1}, {Key: "_id", Value: 1}}))
	if err != nil {
		return nil, err
	}
	ts := []Trigger{}
	if err := cur.All(ctx, &ts); err != nil {
		return nil, err
	}
	return ts, nil
}

// UpdateTrigger reads trigger id of repo, lets change modify it (an error from change aborts the update and is
// returned as is) and writes it back, holding the trigger's lease so that two changes at once both apply.
func (s *Mongo) UpdateTrigger(ctx context.Context, repo, id string, change func(*Trigger) error) (*Trigger, error) {
	ctx, unlock, err := s.lock(ctx, "trigger/"+id)
	if err != nil {
		return nil, err
	}
	defer unlock()
	t, err := findOne[Trigger](ctx, s.c(colTriggers), bson.M{"_id": id})
	if err != nil {
		return nil, err
	}
	if t.Repository != repo {
		return nil, ErrNotFound
	}
	if err := change(t); err != nil {
		return nil, err
	}
	t.ID, t.Repository = id, repo
	if t.Tags == nil {
		t.Tags = []string{}
	}
	t.UpdatedAt = now()
	res, err := s.c(colTriggers).ReplaceOne(ctx, bson.M{"_id": id}, t)
	if err != nil {
		return nil, err
	}
	if res.MatchedCount == 0 {
		return nil, ErrNotFound
	}
	return t, nil
}

// DeleteTrigger removes trigger id of repo and its records.
func (s *Mongo) DeleteTrigger(ctx context.Context, repo, id string) error {
	res, err := s.c(colTriggers).DeleteOne(ctx, bson.M{"_id": id, "repository": repo})
	if err != nil {
		return err
	}
	if res.DeletedCount == 0 {
		return ErrNotFound
	}
	_, err = s.c(colTriggerRecords).DeleteMany(ctx, bson.M{"trigger_id": id})
	return err
}

// PutTriggerRecord writes r, replacing the record with the same id (a later attempt of the same delivery).
func (s *Mongo) PutTriggerRecord(ctx context.Context, r *TriggerRecord) error {
	if r.ID == "" || r.TriggerID == "" {
		return errors.New("trigger record needs an id and a trigger id")
	}
	if r.Time.IsZero() {
		r.Time = now()
	}
	return upsert(func() error {
		_, err := s.c(colTriggerRecords).ReplaceOne(ctx, bson.M{"_id": r.ID}, r, options.Replace().SetUpsert(true))
		return err
	})
}

// GetTriggerRecord returns one record by id.
func (s *Mongo) GetTriggerRecord(ctx context.Context, id string) (*TriggerRecord, error) {
	return findOne[TriggerRecord](ctx, s.c(colTriggerRecords), bson.M{"_id": id})
}

// ListTriggerRecords pages through a trigger's records, newest first.
func (s *Mongo) ListTriggerRecords(ctx context.Context, triggerID string, p Page) ([]TriggerRecord, int64, error) {
	return findPage[TriggerRecord](ctx, s.c(colTriggerRecords), bson.M{"trigger_id": triggerID},
		bson.D{{Key: "_id", Value: -1}}, p)
}

// DeleteTriggerRecordsBefore removes every record last written before cutoff (the retention cleanup; FerretDB
// has no TTL indexes) and says how many went.
func (s *Mongo) DeleteTriggerRecordsBefore(ctx context.Context, cutoff time.Time) (int64, error) {
	res, err := s.c(colTriggerRecords).DeleteMany(ctx, bson.M{"time": bson.M{"$lt": cutoff.UTC()}})
	if err != nil {
		return 0, err
	}
	return res.DeletedCount, nil
}
