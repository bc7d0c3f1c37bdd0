// Package store owns all of Berth's MongoDB state: the collections, their indexes and the typed queries over
// them. It is the one place that speaks BSON. The same code runs on a real MongoDB and on the embedded
// FerretDB (SQLite or PostgreSQL), so it keeps to what both do correctly: lookups by meaningful string _id, no
// transactions, no TTL indexes, no $lookup.
//
// Several processes (berth serve and berth worker replicas) may share the database, and FerretDB makes no
// update atomic with its filter (it reads, then writes the whole document). So nothing here relies on a guarded
// update. What must hold across processes rests on what FerretDB does enforce in SQL, the same way on MongoDB:
// unique indexes (an insert either takes a key or fails: names, webhook deliveries, the namespace limit's slots)
// and deletes (only one deleter finds the document). A write that depends on what it read (a build's status, a
// scan's waiting pushes, a user's policies) holds a lease on its entity (Locker, a Redis lease) instead. Plain
// replacements and $set by _id are left to the last writer.
package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Sentinel errors callers branch on.
var (
	ErrNotFound      = errors.New("not found")
	ErrAlreadyExists = errors.New("already exists")
	ErrLimitExceeded = errors.New("limit exceeded")
	ErrNotEmpty      = errors.New("not empty")
)

// alreadyExists answers ErrAlreadyExists for a duplicate-key error (of a command or of one document of a
// batch), and err otherwise.
func alreadyExists(err error) error {
	if mongo.IsDuplicateKeyError(err) {
		return ErrAlreadyExists
	}
	return err
}

// Options tune how the store talks to its database.
type Options struct {
	// Database name; default "berth".
	Database string
	// Locker takes the leases of the writes that read before they write; required. Every process sharing the
	// database must share its leases too (one Redis).
	Locker Locker
}

// Locker keeps a critical section to one holder at a time across every process sharing the database:
// lease.Redis. Lock waits for the lease on key, taken for ttl, until it is free or ctx ends.
type Locker interface {
	Lock(ctx context.Context, key string, ttl time.Duration) (unlock func(), err error)
}

const (
	// lockTTL is how long a lease of the store lives: the longest a crashed holder keeps others waiting.
	lockTTL = 30 * time.Second
	// lockBudget bounds the work done under a lease, well inside lockTTL.
	lockBudget = 10 * time.Second
)

// lock takes the lease on key (an entity, e.g. "build/<id>") and returns the context to do the guarded work
// with and what gives the lease back. The work's context ends after lockBudget, so a holder stops writing
// before its lease can expire and go to another process. Should it expire anyway (a process paused for longer
// than lockTTL), two holders can interleave and the later write wins: an update may be lost, never half
// applied. Waiting for the lease may take up to lockTTL (the lease of a holder that died).
func (s *Mongo) lock(ctx context.Context, key string) (context.Context, func(), error) {
	wctx, cancel := context.WithTimeout(ctx, lockTTL+5*time.Second)
	unlock, err := s.opts.Locker.Lock(wctx, "berth:lock:"+s.opts.Database+":"+key, lockTTL)
	cancel()
	if err != nil {
		return nil, nil, fmt.Errorf("store lease on %s: %w", key, err)
	}
	ctx, cancel = context.WithTimeout(ctx, lockBudget)
	return ctx, func() { cancel(); unlock() }, nil
}

// Mongo is the Store on MongoDB (or FerretDB). It is safe for concurrent use.
type Mongo struct {
	client *mongo.Client
	db     *mongo.Database
	opts   Options

	// ferret: the backend is FerretDB, which reads a whole collection for most filters (see repoCache).
	ferret bool

	insertersMu sync.Mutex
	inserters   map[string]*inserter // by collection

	repos repoCache
}

// Open connects to uri, checks the connection and makes sure every index exists.
func Open(ctx context.Context, uri string, opts Options) (*Mongo, error) {
	if opts.Database == "" {
		opts.Database = "berth"
	}
	if opts.Locker == nil {
		return nil, errors.New("store: Options.Locker is required (the leases of guarded writes)")
	}
	client, err := mongo.Connect(options.Client().ApplyURI(uri).SetServerSelectionTimeout(10 * time.Second))
	if err != nil {
		return nil, fmt.Errorf("connect to MongoDB: %w", err)
	}
	s := &Mongo{client: client, db: client.Database(opts.Database), opts: opts}
	if err := s.Ping(ctx); err != nil {
		_ = client.Disconnect(context.Background())
		return nil, fmt.Errorf("reach MongoDB at the configured URI (check --mongo-uri): %w", err)
	}
	var info bson.M
	if err := s.db.RunCommand(ctx, bson.D{{Key: "buildInfo", Value: 1}}).Decode(&info); err == nil {
		_, s.ferret = info["ferretdbVersion"]
	}
	if err := s.ensureIndexes(ctx); err != nil {
		_ = client.Disconnect(context.Background())
		return nil, err
	}
	return s, nil
}

// Database is the name of the database s keeps its collections in.
func (s *Mongo) Database() string { return s.opts.Database }

// Close disconnects from the database.
func (s *Mongo) Close(ctx context.Context) error { return s.client.Disconnect(ctx) }

// Ping checks that the database answers.
func (s *Mongo) Ping(ctx context.Context) error {
	return s.db.RunCommand(ctx, bson.D{{Key: "ping", Value: 1}}).Err()
}

// DropDatabase removes every collection; used by tests that share one server.
func (s *Mongo) DropDatabase(ctx context.Context) error { return s.db.Drop(ctx) }

// upsert runs op, an upsert, once more when it fails on a duplicate key: two processes upserting a missing
// document at once may both try to insert it (FerretDB always reads first, MongoDB may too), and the second
// attempt then replaces what the first inserted: the last writer wins, as for any replacement.
func upsert(op func() error) error {
	err := op()
	if mongo.IsDuplicateKeyError(err) {
		err = op()
	}
	return err
}

func (s *Mongo) c(name string) *mongo.Collection { return s.db.Collection(name) }

const (
	colMeta         = "meta"
	colUsers        = "users"
	colAccessKeys   = "access_keys"
	colPolicies     = "policies"
	colNamespaces   = "namespaces"
	colRepositories = "repositories"
	colTags         = "tags"
)

// ensureIndexes declares an index for every query of the store (on MongoDB; FerretDB v1 keeps them but filters
// in Go, which is why the embedded default is SQLite).
func (s *Mongo) ensureIndexes(ctx context.Context) error {
	idx := []struct {
		col  string
		keys bson.D
	}{
		{colNamespaces, bson.D{{Key: "account_id", Value: 1}}},
		{colRepositories, bson.D{{Key: "namespace", Value: 1}, {Key: "name", Value: 1}}},
		{colTags, bson.D{{Key: "repository", Value: 1}, {Key: "pushed_at", Value: -1}, {Key: "_id", Value: 1}}},
		{colTags, bson.D{{Key: "repository", Value: 1}, {Key: "digest", Value: 1}}},
		{colTags, bson.D{{Key: "pushed_at", Value: -1}}},
		{colAccessKeys, bson.D{{Key: "user", Value: 1}, {Key: "created_at", Value: 1}}},
		{colUsers, bson.D{{Key: "policies", Value: 1}}},
		{colSessions, bson.D{{Key: "user", Value: 1}}},
		{colSessions, bson.D{{Key: "seen_at", Value: 1}}},
		{colSessions, bson.D{{Key: "created_at", Value: 1}}},
		{colScans, bson.D{{Key: "status", Value: 1}}},
		{colBuildRules, bson.D{{Key: "repository", Value: 1}, {Key: "created_at", Value: 1}}},
		{colBuilds, bson.D{{Key: "repository", Value: 1}, {Key: "_id", Value: -1}}},
		{colBuilds, bson.D{{Key: "repository", Value: 1}, {Key: "deliveries", Value: 1}}},
		{colBuilds, bson.D{{Key: "status", Value: 1}, {Key: "_id", Value: 1}}},
		{colBuildLogs, bson.D{{Key: "repository", Value: 1}}},
		{colSourceHooks, bson.D{{Key: "repository", Value: 1}}},
		{colSources, bson.D{{Key: "code_account", Value: 1}, {Key: "_id", Value: 1}}},
		{colCodeAccounts, bson.D{{Key: "account_id", Value: 1}, {Key: "created_at", Value: 1}, {Key: "_id", Value: 1}}},
		{colHookDeliveries, bson.D{{Key: "repository", Value: 1}}},
		{colHookDeliveries, bson.D{{Key: "at", Value: 1}}},
		{colTriggers, bson.D{{Key: "repository", Value: 1}, {Key: "created_at", Value: 1}}},
		{colTriggerRecords, bson.D{{Key: "trigger_id", Value: 1}, {Key: "_id", Value: -1}}},
		{colTriggerRecords, bson.D{{Key: "repository", Value: 1}}},
		{colTriggerRecords, bson.D{{Key: "time", Value: 1}}},
		{colGCRuns, bson.D{{Key: "finished_at", Value: 1}}},
		{colRetentionRuns, bson.D{{Key: "namespace", Value: 1}, {Key: "_id", Value: -1}}},
		{colRetentionRuns, bson.D{{Key: "finished_at", Value: 1}}},
		// Each filter's index, ordered by _id and holding the other two filters (checked before a fetch).
		{colAuditLog, bson.D{{Key: "user", Value: 1}, {Key: "_id", Value: -1}, {Key: "action", Value: 1}, {Key: "resource", Value: 1}}},
		{colAuditLog, bson.D{{Key: "action", Value: 1}, {Key: "_id", Value: -1}, {Key: "user", Value: 1}, {Key: "resource", Value: 1}}},
		{colAuditLog, bson.D{{Key: "resource", Value: 1}, {Key: "_id", Value: -1}, {Key: "user", Value: 1}, {Key: "action", Value: 1}}},
	}
	for _, i := range idx {
		if _, err := s.c(i.col).Indexes().CreateOne(ctx, mongo.IndexModel{Keys: i.keys}); err != nil {
			return fmt.Errorf("create index on %s: %w", i.col, err)
		}
	}
	// The namespace limit's slots (namespaces.go). Sparse: namespaces of unlimited accounts have none (MongoDB
	// skips them; FerretDB ignores the option, but its SQL unique index already lets any number of them lack it).
	if _, err := s.c(colNamespaces).Indexes().CreateOne(ctx, mongo.IndexModel{Keys: bson.D{{Key: "slot", Value: 1}},
		Options: options.Index().SetUnique(true).SetSparse(true)}); err != nil {
		return fmt.Errorf("create the unique index of namespace slots: %w", err)
	}
	// Every collection exists from the start, so that what is set up per collection (the embedded store's
	// _id indexes) covers them all.
	have, err := s.db.ListCollectionNames(ctx, bson.D{})
	if err != nil {
		return fmt.Errorf("list collections: %w", err)
	}
	for _, name := range allCollections {
		if slices.Contains(have, name) {
			continue
		}
		var ce mongo.CommandError
		if err := s.db.CreateCollection(ctx, name); err != nil && !(errors.As(err, &ce) && ce.Code == 48) { // NamespaceExists
			return fmt.Errorf("create collection %s: %w", name, err)
		}
	}
	return nil
}

// allCollections are the collections of a Berth database.
var allCollections = []string{colMeta, colUsers, colAccessKeys, colPolicies, colNamespaces, colRepositories,
	colTags, colSources, colSourceHooks, colHookDeliveries, colBuildRules, colBuilds, colBuildLogs, colScans,
	colSecurityPolicies, colTriggers, colTriggerRecords, colGCRuns, colSessions, colKeys,
	colRetentionRules, colRetentionRuns, colAuditLog, colCodeAccounts}

// Page selects one page of a list. Page counts from 1.
type Page struct {
	Page     int
	PageSize int
}

func (p Page) skip() int64 { return int64((p.Page - 1) * p.PageSize) }

// findPage runs a paged find and a count with the same filter (count options, e.g. a limit, apply to the count).
func findPage[T any](ctx context.Context, col *mongo.Collection, filter any, sort bson.D, p Page,
	count ...options.Lister[options.CountOptions]) ([]T, int64, error) {
	total, err := col.CountDocuments(ctx, filter, count...)
	if err != nil {
		return nil, 0, err
	}
	cur, err := col.Find(ctx, filter, options.Find().SetSort(sort).SetSkip(p.skip()).SetLimit(int64(p.PageSize)))
	if err != nil {
		return nil, 0, err
	}
	items := []T{}
	if err := cur.All(ctx, &items); err != nil {
		return nil, 0, err
	}
	return items, total, nil
}

func findOne[T any](ctx context.Context, col *mongo.Collection, filter any) (*T, error) {
	var v T
	err := col.FindOne(ctx, filter).Decode(&v)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	return &v, nil
}

func now() time.Time { return time.Now().UTC().Truncate(time.Millisecond) }
