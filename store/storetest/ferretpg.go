package storetest

import (
	"os"
	"testing"
)

// FerretOnPostgres starts FerretDB on a throwaway PostgreSQL cluster for one test and returns its MongoDB URI.
// Several Berth processes may share it, as replicas share one database. Without PostgreSQL the test is skipped,
// or fails when CI is set.
func FerretOnPostgres(t testing.TB) string {
	t.Helper()
	// Not t.TempDir(): PostgreSQL runs as its own user, which must reach the directory.
	dir, err := os.MkdirTemp("", "berth-pg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	uri, stop, err := startFerretOnPostgres(dir)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("CI is set and FerretDB on PostgreSQL cannot start: %v", err)
		}
		t.Skipf("skipping: FerretDB on PostgreSQL: %v", err)
	}
	t.Cleanup(stop)
	return uri
}

// StartFerretOnPostgres starts FerretDB on a PostgreSQL cluster kept in dir (which PostgreSQL's own user must
// reach), for programs that are not tests (benchmarks); stop ends both.
func StartFerretOnPostgres(dir string) (uri string, stop func(), err error) {
	return startFerretOnPostgres(dir)
}
