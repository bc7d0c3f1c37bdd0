package scandb

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	trivydb "github.com/aquasecurity/trivy-db/pkg/db"
	"github.com/aquasecurity/trivy-db/pkg/metadata"
	dbtypes "github.com/aquasecurity/trivy-db/pkg/types"
	bolt "go.etcd.io/bbolt"
)

// SchemaVersion is the trivy-db schema Build writes and Trivy v0.74 reads.
const SchemaVersion = trivydb.SchemaVersion

// buildMu serialises builds: trivy-db keeps its open database in a package variable.
var buildMu sync.Mutex

// Build writes a Trivy DB for adv into outDir/db (trivy.db and metadata.json), replacing any DB already there.
// The new files are written in a temporary directory next to it and renamed into place, database first and
// metadata last, so a scanner that polls the metadata never sees new metadata with an old database.
//
// trivy-db holds its database in a global, so Build must not run while the same process uses trivy-db for
// anything else (Berth's scanner runs in its own process).
func Build(ctx context.Context, adv AdvisoryFile, outDir string) error {
	if err := adv.Validate(); err != nil {
		return err
	}
	dbDir := filepath.Join(outDir, "db")
	if err := os.MkdirAll(dbDir, 0o755); err != nil {
		return fmt.Errorf("create DB dir: %w", err)
	}
	tmp, err := os.MkdirTemp(outDir, ".db-build-")
	if err != nil {
		return fmt.Errorf("create temporary DB dir: %w", err)
	}
	defer os.RemoveAll(tmp)

	if err := writeDB(ctx, adv, tmp); err != nil {
		return err
	}

	updated := adv.UpdatedAt
	if updated.IsZero() {
		updated = time.Now()
	}
	next := adv.NextUpdate
	if next.IsZero() {
		next = updated.Add(24 * time.Hour)
	}
	meta := metadata.Metadata{
		Version:    SchemaVersion,
		UpdatedAt:  updated.UTC(),
		NextUpdate: next.UTC(),
		// Trivy treats a zero DownloadedAt as a corrupted DB.
		DownloadedAt: time.Now().UTC(),
	}
	if err := metadata.NewClient(tmp).Update(meta); err != nil {
		return fmt.Errorf("write DB metadata: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	for _, name := range []string{filepath.Base(trivydb.Path(tmp)), filepath.Base(metadata.Path(tmp))} {
		if err := os.Rename(filepath.Join(tmp, name), filepath.Join(dbDir, name)); err != nil {
			return fmt.Errorf("install %s: %w", name, err)
		}
	}
	return nil
}

func writeDB(ctx context.Context, adv AdvisoryFile, dir string) (err error) {
	buildMu.Lock()
	defer buildMu.Unlock()

	if err := trivydb.Init(dir); err != nil {
		return fmt.Errorf("create trivy.db: %w", err)
	}
	defer func() {
		if cerr := trivydb.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("close trivy.db: %w", cerr)
		}
	}()

	vulns := make(map[string]Vulnerability, len(adv.Vulnerabilities))
	for _, v := range adv.Vulnerabilities {
		vulns[v.ID] = v
	}
	// Trivy picks the severity of the advisory's data source first, so record it under every source id
	// that refers to the vulnerability (and keep the legacy Severity as the fallback).
	sourceIDs := make(map[string]map[string]bool)
	for _, a := range adv.Advisories {
		if ds, ok := dataSourceFor(a); ok {
			if sourceIDs[a.ID] == nil {
				sourceIDs[a.ID] = make(map[string]bool)
			}
			sourceIDs[a.ID][ds.ID] = true
		}
	}

	dbc := trivydb.Config{}
	return dbc.BatchUpdate(func(tx *bolt.Tx) error {
		for _, a := range adv.Advisories {
			if err := ctx.Err(); err != nil {
				return err
			}
			if ds, ok := dataSourceFor(a); ok {
				src := dbtypes.DataSource{ID: dbtypes.SourceID(ds.ID), Name: ds.Name, URL: ds.URL}
				if err := dbc.PutDataSource(tx, a.Source, src); err != nil {
					return fmt.Errorf("put data source %q: %w", a.Source, err)
				}
			}
			ta := dbtypes.Advisory{
				FixedVersion:       a.FixedVersion,
				VulnerableVersions: a.VulnerableVersions,
				PatchedVersions:    a.PatchedVersions,
				UnaffectedVersions: a.UnaffectedVersions,
			}
			if err := dbc.PutAdvisory(tx, []string{a.Source, a.Package}, a.ID, &ta); err != nil {
				return fmt.Errorf("put advisory %s/%s/%s: %w", a.Source, a.Package, a.ID, err)
			}
		}
		for _, v := range adv.Vulnerabilities {
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := dbc.PutVulnerability(tx, v.ID, toTrivyVulnerability(v, sourceIDs[v.ID])); err != nil {
				return fmt.Errorf("put vulnerability %s: %w", v.ID, err)
			}
			if err := dbc.PutVulnerabilityID(tx, v.ID); err != nil {
				return fmt.Errorf("put vulnerability id %s: %w", v.ID, err)
			}
		}
		return nil
	})
}

func toTrivyVulnerability(v Vulnerability, sourceIDs map[string]bool) dbtypes.Vulnerability {
	vendor := make(dbtypes.VendorSeverity)
	sev, _ := dbtypes.NewSeverity(v.Severity) // validated
	ids := make([]string, 0, len(sourceIDs))
	for id := range sourceIDs {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		vendor[dbtypes.SourceID(id)] = sev
	}
	for id, s := range v.VendorSeverity {
		vs, _ := dbtypes.NewSeverity(s)
		vendor[dbtypes.SourceID(id)] = vs
	}
	tv := dbtypes.Vulnerability{
		Title:       v.Title,
		Description: v.Description,
		Severity:    v.Severity,
		References:  v.References,
	}
	if len(vendor) > 0 {
		tv.VendorSeverity = vendor
	}
	return tv
}

// ErrNoDB reports a DB directory without a usable trivy.db and metadata.json.
var ErrNoDB = errors.New("no vulnerability DB")

// Metadata describes an installed DB; it mirrors Trivy's metadata.json.
type Metadata struct {
	Version      int       `json:"version"`
	UpdatedAt    time.Time `json:"updated_at"`
	NextUpdate   time.Time `json:"next_update"`
	DownloadedAt time.Time `json:"downloaded_at"`
}

// DBVersion is how scan results name the DB they used: its UpdatedAt in RFC 3339 (UTC), or the schema
// version when UpdatedAt is missing.
func (m Metadata) DBVersion() string {
	if m.UpdatedAt.IsZero() {
		return fmt.Sprintf("v%d", m.Version)
	}
	return m.UpdatedAt.UTC().Format(time.RFC3339)
}

// ReadMetadata reads dir/db/metadata.json, dir being the directory given to Build (the scanner's --db-dir).
// A missing DB or metadata file yields an error wrapping ErrNoDB; a DB with another schema version is an
// error too, since Trivy v0.74 cannot read it.
func ReadMetadata(dir string) (Metadata, error) {
	dbDir := filepath.Join(dir, "db")
	if _, err := os.Stat(trivydb.Path(dbDir)); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return Metadata{}, fmt.Errorf("%w in %s: trivy.db not found", ErrNoDB, dbDir)
		}
		return Metadata{}, fmt.Errorf("%w in %s: %w", ErrNoDB, dbDir, err)
	}
	m, err := metadata.NewClient(dbDir).Get()
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return Metadata{}, fmt.Errorf("%w in %s: metadata.json not found", ErrNoDB, dbDir)
		}
		return Metadata{}, fmt.Errorf("read DB metadata in %s: %w", dbDir, err)
	}
	if m.Version != SchemaVersion {
		return Metadata{}, fmt.Errorf("DB in %s has schema version %d, want %d: install a DB for Trivy v0.74",
			dbDir, m.Version, SchemaVersion)
	}
	return Metadata{Version: m.Version, UpdatedAt: m.UpdatedAt, NextUpdate: m.NextUpdate, DownloadedAt: m.DownloadedAt}, nil
}
