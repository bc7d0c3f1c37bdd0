// Package store owns all of Berth's MongoDB state: the collections, their indexes and the typed queries over
// them. It is the one place that speaks BSON. The same code runs on a real MongoDB and on the embedded
// FerretDB (SQLite), so it keeps to what both do correctly: lookups by meaningful string _id, no transactions,
// no TTL indexes, no $lookup, and — where FerretDB is not atomic — writes serialised in-process.
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
	// SerializeWrites makes every write go through one in-process mutex. Set it for the embedded FerretDB,
	// whose guarded updates are not atomic under concurrency.
	SerializeWrites bool
}

// Store is Berth's state. It is safe for concurrent use.
type Store struct {
	client *mongo.Client
	db     *mongo.Database
	opts   Options

	wmu    sync.Mutex
	ferret bool

	insertersMu sync.Mutex
	inserters   map[string]*inserter // by collection

	repos repoCache
}

// FerretDB reports whether the backend is FerretDB, whose writes this process serialises. Several Berth
// replicas on one FerretDB could still race on guarded updates: run one replica there, or use MongoDB.
func (s *Store) FerretDB() bool { return s.ferret }

// Open connects to uri, checks the connection and makes sure every index exists.
func Open(ctx context.Context, uri string, opts Options) (*Store, error) {
	if opts.Database == "" {
		opts.Database = "berth"
	}
	client, err := mongo.Connect(options.Client().ApplyURI(uri).SetServerSelectionTimeout(10 * time.Second))
	if err != nil {
		return nil, fmt.Errorf("connect to MongoDB: %w", err)
	}
	s := &Store{client: client, db: client.Database(opts.Database), opts: opts}
	if err := s.Ping(ctx); err != nil {
		_ = client.Disconnect(context.Background())
		return nil, fmt.Errorf("reach MongoDB at the configured URI (check --mongo-uri): %w", err)
	}
	// FerretDB (any handler) does not make guarded updates atomic: serialise writes whatever the caller said.
	var info bson.M
	if err := s.db.RunCommand(ctx, bson.D{{Key: "buildInfo", Value: 1}}).Decode(&info); err == nil {
		if _, ok := info["ferretdbVersion"]; ok {
			s.opts.SerializeWrites = true
			s.ferret = true
		}
	}
	if err := s.ensureIndexes(ctx); err != nil {
		_ = client.Disconnect(context.Background())
		return nil, err
	}
	return s, nil
}

// Database is the name of the database s keeps its collections in.
func (s *Store) Database() string { return s.opts.Database }

// Close disconnects from the database.
func (s *Store) Close(ctx context.Context) error { return s.client.Disconnect(ctx) }

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	return s.db.RunCommand(ctx, bson.D{{Key: "ping", Value: 1}}).Err()
}

// DropDatabase removes every collection; used by tests that share one server.
func (s *Store) DropDatabase(ctx context.Context) error { return s.db.Drop(ctx) }

// lockWrites serialises a write when the backend needs it. Call as `defer s.lockWrites()()`.
func (s *Store) lockWrites() func() {
	if !s.opts.SerializeWrites {
		return func() {}
	}
	s.wmu.Lock()
	return s.wmu.Unlock
}

func (s *Store) c(name string) *mongo.Collection { return s.db.Collection(name) }

const (
	colMeta         = "meta"
	colUsers        = "users"
	colAccessKeys   = "access_keys"
	colPolicies     = "policies"
	colNamespaces   = "namespaces"
	colNSCounters   = "namespace_counters"
	colRepositories = "repositories"
	colTags         = "tags"
)

func (s *Store) ensureIndexes(ctx context.Context) error {
	idx := []struct {
		col  string
		keys bson.D
	}{
		{colNamespaces, bson.D{{Key: "account_id", Value: 1}}},
		{colRepositories, bson.D{{Key: "namespace", Value: 1}, {Key: "name", Value: 1}}},
		{colTags, bson.D{{Key: "repository", Value: 1}, {Key: "pushed_at", Value: -1}}},
		{colAccessKeys, bson.D{{Key: "user", Value: 1}}},
	}
	for _, i := range idx {
		if _, err := s.c(i.col).Indexes().CreateOne(ctx, mongo.IndexModel{Keys: i.keys}); err != nil {
			return fmt.Errorf("create index on %s: %w", i.col, err)
		}
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
var allCollections = []string{colMeta, colUsers, colAccessKeys, colPolicies, colNamespaces, colNSCounters, colRepositories,
	colTags, colSources, colSourceHooks, colHookDeliveries, colBuildRules, colBuilds, colBuildLogs, colScans,
	colSecurityPolicies, colTriggers, colTriggerRecords, colGCRuns, colSessions, colKeys}

// Page selects one page of a list. Page counts from 1.
type Page struct {
	Page     int
	PageSize int
}

func (p Page) skip() int64 { return int64((p.Page - 1) * p.PageSize) }

// findPage runs a paged find and a count with the same filter.
func findPage[T any](ctx context.Context, col *mongo.Collection, filter any, sort bson.D, p Page) ([]T, int64, error) {
	total, err := col.CountDocuments(ctx, filter)
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
