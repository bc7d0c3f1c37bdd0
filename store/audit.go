package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

const colAuditLog = "audit_log"

// AuditEntry is one entry of the audit log (SPEC §14): who did what to which resource, from where, and how it
// ended. Entries are only ever added (and swept after the retention); nothing in Berth changes them.
type AuditEntry struct {
	// ID is NewAuditID(Time): the millisecond of Time, then random, so entries sort by id in time order and a
	// time range is an id range.
	ID        string    `bson:"_id"`
	Time      time.Time `bson:"time"`
	User      string    `bson:"user"`     // user name, the name or access key id a failed sign-in gave, or "anonymous"
	Client    string    `bson:"client"`   // the client's address
	Action    string    `bson:"action"`   // the RAM action, e.g. cr:PushRepository, or ram:Login for a sign-in
	Resource  string    `bson:"resource"` // the RAM resource name, or "*"
	Status    int       `bson:"status"`   // the HTTP status of the answer
	RequestID string    `bson:"request_id"`
}

// NewAuditID returns a fresh id for an entry at t that sorts after the ids of every earlier millisecond.
func NewAuditID(t time.Time) string {
	var b [5]byte
	_, _ = rand.Read(b[:])
	return AuditIDBound(t) + hex.EncodeToString(b[:])
}

// AuditIDBound is the smallest id an entry at t (or later) can have.
func AuditIDBound(t time.Time) string { return fmt.Sprintf("%012x", max(t.UnixMilli(), 0)) }

// AuditFilter selects audit entries; empty fields select all. Since and Until bound Time, both inclusive.
type AuditFilter struct {
	User, Action, Resource string
	Since, Until           time.Time
}

// AuditTotalCap bounds the total ListAuditEntries counts: beyond it the total says "at least this many" (the
// entries are still paged through), so that a page never counts a whole year of entries.
const AuditTotalCap = 10_000

// IDRange is the range of ids f's times select: ids >= lo and < hi.
func (f AuditFilter) IDRange() (lo, hi string) {
	lo, hi = "", "g" // above every hex id
	if !f.Since.IsZero() {
		lo = AuditIDBound(f.Since)
	}
	if !f.Until.IsZero() {
		hi = AuditIDBound(f.Until.Add(time.Millisecond))
	}
	return lo, hi
}

// AddAuditEntries inserts a batch of entries (one unordered insertMany; the audit writer batches).
func (s *Mongo) AddAuditEntries(ctx context.Context, entries []AuditEntry) error {
	if len(entries) == 0 {
		return nil
	}
	docs := make([]any, len(entries))
	for i := range entries {
		e := &entries[i]
		e.Time = e.Time.UTC().Truncate(time.Millisecond)
		if e.ID == "" {
			e.ID = NewAuditID(e.Time)
		}
		docs[i] = e
	}
	_, err := s.c(colAuditLog).InsertMany(ctx, docs, options.InsertMany().SetOrdered(false))
	return err
}

// ListAuditEntries pages through the entries f selects, newest first. Each filter is answered from its index
// ((user, _id), (action, _id), (resource, _id); a time range is an _id range); the total is capped at
// AuditTotalCap.
func (s *Mongo) ListAuditEntries(ctx context.Context, f AuditFilter, p Page) ([]AuditEntry, int64, error) {
	lo, hi := f.IDRange()
	filter := bson.D{}
	for _, kv := range []struct{ k, v string }{{"user", f.User}, {"action", f.Action}, {"resource", f.Resource}} {
		if kv.v != "" {
			filter = append(filter, bson.E{Key: kv.k, Value: kv.v})
		}
	}
	filter = append(filter, bson.E{Key: "_id", Value: bson.M{"$gte": lo, "$lt": hi}})
	return findPage[AuditEntry](ctx, s.c(colAuditLog), filter, bson.D{{Key: "_id", Value: -1}}, p,
		options.Count().SetLimit(AuditTotalCap))
}

// DeleteAuditEntriesBefore removes the entries older than cutoff (the retention sweep: ids below its bound, on
// the _id index) and says how many went.
func (s *Mongo) DeleteAuditEntriesBefore(ctx context.Context, cutoff time.Time) (int64, error) {
	res, err := s.c(colAuditLog).DeleteMany(ctx, bson.M{"_id": bson.M{"$lt": AuditIDBound(cutoff)}})
	if err != nil {
		return 0, err
	}
	return res.DeletedCount, nil
}
