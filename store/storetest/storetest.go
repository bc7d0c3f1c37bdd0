// Package storetest gives tests a fresh store on a real backend, chosen by BERTH_TEST_STORE: the embedded
// default's SQLite ("" or "sqlite"); the MongoDB backend on FerretDB over a throwaway PostgreSQL
// ("ferretdb-postgresql", several replicas' shape) or on the embedded FerretDB ("ferretdb-sqlite"); or the
// MongoDB at BERTH_TEST_MONGO_URI when that is set. The test command runs the store's suite on each, so one body
// of cases holds every backend to the same behaviour. The MongoDB backend's leases are in a redis-server child
// (miniredis when redis-server is not installed), started once per package.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/berth-dev/berth/store"
	"github.com/berth-dev/berth/store/embedded"
	"github.com/berth-dev/berth/store/lease"
	"github.com/berth-dev/berth/store/sqlite"
)

var (
	uri           string
	embeddedStore *embedded.Mongo
	redisOpts     *redis.Options
	seq           atomic.Int64
)

// Backend names the backend the tests run on: sqlite, ferretdb-postgresql, ferretdb-sqlite or mongodb.
func Backend() string {
	switch {
	case os.Getenv("BERTH_TEST_MONGO_URI") != "":
		return "mongodb"
	case os.Getenv("BERTH_TEST_STORE") == "":
		return "sqlite"
	}
	return os.Getenv("BERTH_TEST_STORE")
}

// Main starts the backend for a package's tests; call it from TestMain.
func Main(m *testing.M) int {
	switch Backend() {
	case "sqlite":
		return m.Run()
	case "mongodb", "ferretdb-postgresql", "ferretdb-sqlite":
	default:
		fmt.Fprintf(os.Stderr, "storetest: BERTH_TEST_STORE=%s: use sqlite, ferretdb-postgresql or ferretdb-sqlite\n", Backend())
		return 2
	}
	uri = os.Getenv("BERTH_TEST_MONGO_URI")
	if uri == "" && Backend() == "ferretdb-postgresql" {
		dir, err := os.MkdirTemp("", "berth-pg-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		u, stop, err := startFerretOnPostgres(dir)
		if err != nil {
			fmt.Fprintln(os.Stderr, "storetest:", err)
			return 1
		}
		defer stop()
		uri = u
		fmt.Fprintln(os.Stderr, "storetest: FerretDB on PostgreSQL at", u)
	}
	if uri == "" {
		dir, err := os.MkdirTemp("", "berth-storetest-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		mg, err := embedded.StartMongo(context.Background(), dir, nil)
		if err != nil {
			fmt.Fprintln(os.Stderr, "storetest:", err)
			return 1
		}
		defer mg.Stop()
		uri, embeddedStore = mg.URI, mg
	}
	dir, err := os.MkdirTemp("", "berth-storetest-redis-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	r, err := startRedis(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "storetest:", err)
		return 1
	}
	defer r.Stop()
	redisOpts = &redis.Options{Network: r.Network, Addr: r.Addr, Password: r.Password}
	return m.Run()
}

// startRedis runs a redis-server child keeping its files in dir, or miniredis when redis-server is missing.
func startRedis(dir string) (*embedded.Redis, error) {
	r, err := embedded.StartRedisServer(context.Background(), dir)
	if errors.Is(err, embedded.ErrNoRedisServer) {
		r, err = embedded.StartRedis()
	}
	return r, err
}

// OwnLocker starts a Redis for one test (for tests that open their store without Main) and returns a Locker
// on it; both go when the test ends.
func OwnLocker(t testing.TB) store.Locker {
	t.Helper()
	r, err := startRedis(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Stop)
	rc := redis.NewClient(&redis.Options{Network: r.Network, Addr: r.Addr, Password: r.Password})
	t.Cleanup(func() { _ = rc.Close() })
	return lease.Redis{Client: rc}
}

// URI is the backend the tests use.
func URI() string { return uri }

// Locker returns a Locker with a Redis connection of its own (as another process would have) on the leases
// the tests' stores share; it is closed when the test ends.
func Locker(t testing.TB) store.Locker {
	rc := redis.NewClient(redisOpts)
	t.Cleanup(func() { _ = rc.Close() })
	return lease.Redis{Client: rc}
}

// New opens a store of its own (a database, or an SQLite file), gone when the test ends.
func New(t testing.TB) store.Store {
	t.Helper()
	ctx := context.Background()
	if Backend() == "sqlite" {
		db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), sqlite.FileName))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = db.Close(ctx) })
		return db
	}
	if uri == "" {
		t.Fatal("storetest: call storetest.Main from the package's TestMain")
	}
	s, err := store.Open(ctx, uri, store.Options{Database: fmt.Sprintf("test%d_%d", os.Getpid(), seq.Add(1)), Locker: Locker(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = s.DropDatabase(ctx)
		_ = s.Close(ctx)
	})
	if embeddedStore != nil && os.Getenv("BERTH_TEST_NO_ID_INDEX") == "" { // as Berth does at start
		if _, err := embeddedStore.IndexIDs(ctx, s.Database()); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// Second opens another store on s's data, with connections of its own (to the database and to Redis, or to the
// SQLite file): a second process sharing it, for tests of what holds between replicas.
func Second(t testing.TB, s store.Store) store.Store {
	t.Helper()
	ctx := context.Background()
	switch s := s.(type) {
	case *sqlite.DB:
		db, err := sqlite.Open(ctx, s.Path())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = db.Close(ctx) })
		return db
	case *store.Mongo:
		s2, err := store.Open(ctx, uri, store.Options{Database: s.Database(), Locker: Locker(t)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s2.Close(ctx) })
		return s2
	}
	t.Fatalf("storetest: a store of type %T", s)
	return nil
}
