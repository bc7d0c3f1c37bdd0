package app

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/berth-dev/berth/server"
	"github.com/berth-dev/berth/workers"
	"github.com/berth-dev/berth/workers/scandb"
)

// scanDBDownloadTimeout bounds one download of the vulnerability DB artifact.
const scanDBDownloadTimeout = 15 * time.Minute

// dbFetcher keeps the vulnerability DB in line with --scan-db-repository: it downloads the artifact when the
// DB is missing or the artifact's digest is not the one installed, and remembers the last attempt for
// GET /api/v1/system/scanner.
type dbFetcher struct {
	remote scandb.Remote // Repository "" = downloads off
	dir    string        // the scanner's --db-dir

	mu          sync.Mutex
	downloading bool
	lastAt      time.Time
	lastErr     string
}

// digestFile records which artifact the installed DB came from, so a restart does not download it again.
func (f *dbFetcher) digestFile() string { return filepath.Join(f.dir, "db", "berth-artifact-digest") }

// sync downloads the DB when it is missing or the artifact changed. It returns whether a new DB was installed.
func (f *dbFetcher) sync(ctx context.Context) (bool, error) {
	if f.remote.Repository == "" {
		return false, nil
	}
	ctx, cancel := context.WithTimeout(ctx, scanDBDownloadTimeout)
	defer cancel()
	have, _ := os.ReadFile(f.digestFile())
	_, dbErr := scandb.ReadMetadata(f.dir)
	if dbErr == nil && len(have) > 0 {
		d, err := scandb.RemoteDigest(ctx, f.remote)
		if err != nil {
			f.record(err)
			return false, err
		}
		if d == strings.TrimSpace(string(have)) {
			f.record(nil)
			return false, nil
		}
	}
	f.mu.Lock()
	f.downloading = true
	f.mu.Unlock()
	d, _, err := scandb.Download(ctx, f.remote, f.dir)
	if err == nil {
		err = os.WriteFile(f.digestFile(), []byte(d+"\n"), 0o644)
	}
	f.record(err)
	return err == nil, err
}

func (f *dbFetcher) record(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.downloading = false
	f.lastAt = time.Now().UTC()
	f.lastErr = ""
	if err != nil {
		f.lastErr = err.Error()
	}
}

func (f *dbFetcher) lastError() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lastErr
}

// Scanner states in GET /api/v1/system/scanner.
const (
	scannerReady       = "ready"
	scannerNoScanner   = "no_scanner"
	scannerNoDB        = "no_db"
	scannerDownloading = "downloading"
)

// ScannerStatus implements server.ScannerStatusService.
func (s *scanning) ScannerStatus(ctx context.Context) server.ScannerStatus {
	st := server.ScannerStatus{Scanner: s.bin, DBRepository: s.fetch.remote.Repository, DBDir: s.dbDir}
	if s.app.Cfg.ScannerAddr != "" {
		st.Scanner = s.app.Cfg.ScannerAddr
	}
	s.fetch.mu.Lock()
	if !s.fetch.lastAt.IsZero() {
		t := s.fetch.lastAt
		st.LastDownloadAt = &t
	}
	st.LastError = s.fetch.lastErr
	downloading := s.fetch.downloading
	s.fetch.mu.Unlock()

	info, err := s.DB(ctx)
	if err == nil {
		st.DBVersion = info.Version
		if !info.UpdatedAt.IsZero() {
			t := info.UpdatedAt.UTC()
			st.DBUpdatedAt = &t
		}
	}
	switch {
	case s.bin == "" && s.app.Cfg.ScannerAddr == "":
		st.State, st.Reason = scannerNoScanner, workers.NoScannerMessage
	case err != nil && downloading:
		st.State, st.Reason = scannerDownloading, "downloading the vulnerability DB from "+s.fetch.remote.Repository
	case err != nil:
		st.State, st.Reason = scannerNoDB, s.noDBReason(err)
	default:
		st.State = scannerReady
	}
	return st
}

// noDBReason says why there is no DB and how to get one.
func (s *scanning) noDBReason(err error) string {
	msg := err.Error()
	if !errors.Is(err, scandb.ErrNoDB) && s.app.Cfg.ScannerAddr != "" {
		return msg
	}
	if s.fetch.remote.Repository == "" {
		return msg + "; downloads are off (--scan-db-repository \"\"): drop in Trivy's DB or build one with `berth admin scan-db build`"
	}
	if last := s.fetch.lastError(); last != "" {
		return fmt.Sprintf("%s; the download from %s failed: %s (fix the repository, its credentials --scan-db-username and "+
			"$BERTH_SCAN_DB_PASSWORD, or mirror it into Berth: berth admin scan-db push)", msg, s.fetch.remote.Repository, last)
	}
	return msg + "; waiting for the download from " + s.fetch.remote.Repository
}

// scansReady is the "scans" check of /readyz.
func (s *scanning) scansReady(ctx context.Context) error {
	st := s.ScannerStatus(ctx)
	if st.State != scannerReady {
		return errors.New(st.Reason)
	}
	return nil
}
