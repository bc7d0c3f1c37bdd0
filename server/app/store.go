package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/berth-dev/berth/store/embedded"
	"github.com/berth-dev/berth/store/sqlite"
)

// StorePath is the embedded store's file in a data dir.
func StorePath(dataDir string) string { return filepath.Join(dataDir, "store", sqlite.FileName) }

// legacyStoreDir is where Berth before the SQLite store kept its embedded FerretDB.
func legacyStoreDir(dataDir string) string { return filepath.Join(dataDir, "db") }

// openEmbeddedStore opens the data dir's SQLite store. A data dir of an earlier Berth, whose store is the
// embedded FerretDB in DATA/db, is migrated at the first start: every document is copied in one transaction,
// the log says so with the counts, and the old directory is renamed DATA/db.migrated (kept, for a way back).
func openEmbeddedStore(ctx context.Context, dataDir, database string, logger *slog.Logger) (*sqlite.DB, error) {
	if !embedded.Available { // production builds keep their state in MongoDB only
		return nil, embedded.ErrUnavailable
	}
	path := StorePath(dataDir)
	db, err := sqlite.Open(ctx, path)
	if err != nil {
		return nil, err
	}
	old := legacyStoreDir(dataDir)
	if _, err := os.Stat(filepath.Join(old, database+".sqlite")); err != nil {
		return db, nil // nothing to migrate
	}
	if err := migrateLegacyStore(ctx, db, old, database, logger); err != nil {
		_ = db.Close(ctx)
		return nil, err
	}
	return db, nil
}

func migrateLegacyStore(ctx context.Context, db *sqlite.DB, old, database string, logger *slog.Logger) error {
	if _, done, err := db.Migrated(ctx); err != nil {
		return err
	} else if !done {
		start := time.Now()
		logger.Info("migrating the embedded store from FerretDB to SQLite (once)", "from", old, "to", db.Path())
		m, err := embedded.StartMongo(ctx, old, logger)
		if err != nil {
			return fmt.Errorf("start the old embedded store to migrate it (%s): %w", old, err)
		}
		defer m.Stop()
		client, err := mongo.Connect(options.Client().ApplyURI(m.URI).SetServerSelectionTimeout(10 * time.Second))
		if err != nil {
			return err
		}
		defer func() { _ = client.Disconnect(context.Background()) }()
		counts, err := db.MigrateFrom(ctx, client.Database(database), old)
		if err != nil {
			return fmt.Errorf("migrate the embedded store from %s (nothing was changed; the old store is intact): %w", old, err)
		}
		var total int64
		attrs := []any{"took", time.Since(start).Round(time.Millisecond)}
		for col, n := range counts {
			total += n
			if n > 0 {
				attrs = append(attrs, col, n)
			}
		}
		logger.Info(fmt.Sprintf("embedded store migrated: %d documents copied from FerretDB to SQLite", total), attrs...)
		m.Stop()
	}
	// Migrated (now or by a start that stopped before this): the old directory is kept aside.
	aside := old + ".migrated"
	if _, err := os.Stat(aside); err == nil {
		aside = fmt.Sprintf("%s.migrated-%d", old, time.Now().Unix())
	}
	if err := os.Rename(old, aside); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("keep the migrated store aside: %w", err)
	}
	logger.Info("the old embedded store is kept aside; remove it once Berth runs as it should", "dir", aside)
	return nil
}
