// Package storetest gives tests a fresh store on a real backend: the MongoDB at BERTH_TEST_MONGO_URI when it is
// set; FerretDB on a throwaway PostgreSQL when BERTH_TEST_STORE=ferretdb-postgresql (the test command runs the
// store tests that way too, as a second backend); else an embedded FerretDB (SQLite) started once per package.
package storetest

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"
	"testing"

	"github.com/berth-dev/berth/store"
	"github.com/berth-dev/berth/store/embedded"
)

var (
	uri           string
	serialize     bool
	embeddedStore *embedded.Mongo
	seq           atomic.Int64
)

// Main starts the backend for a package's tests; call it from TestMain.
func Main(m *testing.M) int {
	uri = os.Getenv("BERTH_TEST_MONGO_URI")
	if uri == "" && os.Getenv("BERTH_TEST_STORE") == "ferretdb-postgresql" {
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
		uri, serialize, embeddedStore = mg.URI, true, mg
	}
	return m.Run()
}

// URI is the backend the tests use, and whether writes must be serialised on it.
func URI() (string, bool) { return uri, serialize || os.Getenv("BERTH_TEST_SERIALIZE") == "1" }

// New opens a store on a database of its own, dropped when the test ends.
func New(t testing.TB) *store.Store {
	t.Helper()
	ctx := context.Background()
	u, ser := URI()
	s, err := store.Open(ctx, u, store.Options{Database: fmt.Sprintf("test%d_%d", os.Getpid(), seq.Add(1)), SerializeWrites: ser})
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
