package sqlite

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/berth-dev/berth/store"
)

// PutImageVersion records (or replaces) the version v.Repository:v.Tag.
func (db *DB) PutImageVersion(ctx context.Context, v *store.ImageVersion) error {
	v.ID = v.Repository + ":" + v.Tag
	if v.Platforms == nil {
		v.Platforms = []string{}
	}
	return db.write(ctx, func(tx *sql.Tx) error {
		_, err := put(ctx, tx, tTags, v)
		return err
	})
}

// GetImageVersion returns repo:tag.
func (db *DB) GetImageVersion(ctx context.Context, repo, tag string) (*store.ImageVersion, error) {
	return get[store.ImageVersion](ctx, db.r, tTags, repo+":"+tag)
}

// ListImageVersions pages through a repository's versions, newest push first.
func (db *DB) ListImageVersions(ctx context.Context, repo string, p store.Page) ([]store.ImageVersion, int64, error) {
	return countedPage[store.ImageVersion](ctx, db.r, tTags, "repository = ?", repo,
		byPush, p)
}

// countedPage pages through the rows of a counted table whose countBy column is v.
func countedPage[T any](ctx context.Context, db *sql.DB, t *table, where string, v any, o order, p store.Page) ([]T, int64, error) {
	// One read transaction: the total and the page agree.
	tx, err := db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, 0, err
	}
	defer func() { _ = tx.Rollback() }()
	total, err := count(ctx, tx, t, v)
	if err != nil {
		return nil, 0, err
	}
	items, err := page[T](ctx, tx, t, where, []any{v}, o, p, total)
	return items, total, err
}

// DeleteImageVersion forgets repo:tag.
func (db *DB) DeleteImageVersion(ctx context.Context, repo, tag string) error {
	return db.write(ctx, func(tx *sql.Tx) error { return removeID(ctx, tx, tTags, repo+":"+tag) })
}

// ImageVersionsByDigest returns up to limit versions of repo that point at digest.
func (db *DB) ImageVersionsByDigest(ctx context.Context, repo, digest string, limit int) ([]store.ImageVersion, error) {
	return docs[store.ImageVersion](ctx, db.r, "SELECT doc FROM tags WHERE repository = ? AND digest = ? LIMIT ?", repo, digest, limit)
}

// DeleteImageVersionsByDigest forgets every tag of repo that points at digest.
func (db *DB) DeleteImageVersionsByDigest(ctx context.Context, repo, digest string) error {
	return db.write(ctx, func(tx *sql.Tx) error {
		_, err := remove(ctx, tx, tTags, "repository = ? AND digest = ?", repo, digest)
		return err
	})
}

// RecentImageVersions returns up to limit versions pushed since since, newest first.
func (db *DB) RecentImageVersions(ctx context.Context, since time.Time, limit int) ([]store.ImageVersion, error) {
	return docs[store.ImageVersion](ctx, db.r, "SELECT doc FROM tags WHERE pushed_at >= ? ORDER BY pushed_at DESC LIMIT ?",
		ms(since), limit)
}

// vulnList wraps a scan's vulnerabilities, kept apart from the scan (a BSON document cannot be an array).
type vulnList struct {
	V []store.ScanVulnerability `bson:"v"`
}

// putScan stores sc, its vulnerabilities apart.
func putScan(ctx context.Context, tx querier, sc *store.Scan) error {
	vulns := sc.Vulnerabilities
	if vulns == nil {
		vulns = []store.ScanVulnerability{}
	}
	sc.Vulnerabilities = nil
	raw, err := bson.Marshal(sc)
	sc.Vulnerabilities = vulns
	if err != nil {
		return err
	}
	vraw, err := bson.Marshal(vulnList{V: vulns})
	if err != nil {
		return err
	}
	pending := !store.ScanFinal(sc.Status) || len(sc.Waiting) > 0
	_, err = tx.ExecContext(ctx, `INSERT INTO scans(id, pending, doc, vulns) VALUES(?, ?, ?, ?)
		ON CONFLICT(id) DO UPDATE SET pending = excluded.pending, doc = excluded.doc, vulns = excluded.vulns`,
		sc.Digest, boolInt(pending), []byte(raw), []byte(vraw))
	return err
}

// scanDocs reads scans (their one or two columns: doc, and vulns when withVulns).
func scanDocs(ctx context.Context, q querier, withVulns bool, query string, args ...any) ([]store.Scan, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []store.Scan{}
	for rows.Next() {
		var raw, vraw []byte
		dest := []any{&raw}
		if withVulns {
			dest = append(dest, &vraw)
		}
		if err := rows.Scan(dest...); err != nil {
			return nil, err
		}
		var sc store.Scan
		if err := bson.Unmarshal(raw, &sc); err != nil {
			return nil, fmt.Errorf("store: decode scan: %w", err)
		}
		if withVulns {
			var vl vulnList
			if len(vraw) > 0 {
				if err := bson.Unmarshal(vraw, &vl); err != nil {
					return nil, fmt.Errorf("store: decode scan %s: %w", sc.Digest, err)
				}
			}
			sc.Vulnerabilities = vl.V
			if sc.Vulnerabilities == nil {
				sc.Vulnerabilities = []store.ScanVulnerability{}
			}
		}
		out = append(out, sc)
	}
	return out, rows.Err()
}

func getScan(ctx context.Context, q querier, digest string) (*store.Scan, error) {
	scans, err := scanDocs(ctx, q, true, "SELECT doc, vulns FROM scans WHERE id = ?", digest)
	if err != nil {
		return nil, err
	}
	if len(scans) == 0 {
		return nil, store.ErrNotFound
	}
	return &scans[0], nil
}

// GetScan returns the scan of digest, with its vulnerabilities.
func (db *DB) GetScan(ctx context.Context, digest string) (*store.Scan, error) {
	return getScan(ctx, db.r, digest)
}

// ScansByDigest returns the scans of digests that exist, without vulnerabilities and waiting pushes.
func (db *DB) ScansByDigest(ctx context.Context, digests []string) (map[string]*store.Scan, error) {
	out := map[string]*store.Scan{}
	for chunk := range slices.Chunk(digests, 500) {
		args := make([]any, len(chunk))
		for i, d := range chunk {
			args[i] = d
		}
		scans, err := scanDocs(ctx, db.r, false, "SELECT doc FROM scans WHERE id IN ("+placeholders(len(chunk))+")", args...)
		if err != nil {
			return nil, err
		}
		for i := range scans {
			scans[i].Waiting = nil
			out[scans[i].Digest] = &scans[i]
		}
	}
	return out, nil
}

// changeScan applies change to the scan of digest (a new NOT_SCANNED one when there is none) and stores it.
func (db *DB) changeScan(ctx context.Context, digest string, change func(*store.Scan)) (sc *store.Scan, err error) {
	err = db.write(ctx, func(tx *sql.Tx) error {
		sc, err = getScan(ctx, tx, digest)
		if errors.Is(err, store.ErrNotFound) {
			sc, err = &store.Scan{Digest: digest, Status: store.ScanNotScanned, Vulnerabilities: []store.ScanVulnerability{},
				Waiting: []store.ScanWaiter{}, Children: []string{}}, nil
		}
		if err != nil {
			return err
		}
		change(sc)
		sc.UpdatedAt = now()
		return putScan(ctx, tx, sc)
	})
	if err != nil {
		return nil, err
	}
	return sc, nil
}

// StartScan marks digest SCANNING since at, pulled from repo.
func (db *DB) StartScan(ctx context.Context, digest, repo string, at time.Time) error {
	_, err := db.changeScan(ctx, digest, func(sc *store.Scan) {
		sc.Status, sc.StartedAt, sc.PullFrom = store.ScanScanning, at.UTC(), repo
	})
	return err
}

// FinishScan stores the result of digest's scan and returns the scan.
func (db *DB) FinishScan(ctx context.Context, digest string, r store.ScanResult) (*store.Scan, error) {
	if r.Vulnerabilities == nil {
		r.Vulnerabilities = []store.ScanVulnerability{}
	}
	if r.Children == nil {
		r.Children = []string{}
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	return db.changeScan(ctx, digest, func(sc *store.Scan) {
		sc.Status, sc.ResultStatus, sc.ResultID = r.Status, r.Status, hex.EncodeToString(b[:])
		sc.Scanner, sc.DBVersion, sc.OS, sc.Error = r.Scanner, r.DBVersion, r.OS, r.Error
		sc.StartedAt, sc.FinishedAt = r.StartedAt.UTC(), r.FinishedAt.UTC()
		sc.Vulnerabilities, sc.Summary, sc.Children = r.Vulnerabilities, r.Summary, r.Children
	})
}

// AddScanWaiter records that w waits for digest's scan (once) and returns the scan.
func (db *DB) AddScanWaiter(ctx context.Context, digest string, w store.ScanWaiter) (*store.Scan, error) {
	w.PushedAt = w.PushedAt.UTC().Truncate(time.Millisecond)
	return db.changeScan(ctx, digest, func(sc *store.Scan) {
		if !slices.ContainsFunc(sc.Waiting, w.Equal) {
			sc.Waiting = append(sc.Waiting, w)
		}
	})
}

// RemoveScanWaiter forgets w (handled) from digest's scan.
func (db *DB) RemoveScanWaiter(ctx context.Context, digest string, w store.ScanWaiter) error {
	return db.write(ctx, func(tx *sql.Tx) error {
		sc, err := getScan(ctx, tx, digest)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		sc.Waiting = slices.DeleteFunc(sc.Waiting, w.Equal)
		return putScan(ctx, tx, sc)
	})
}

// UnfinishedScans returns up to limit scans not finished, or finished with pushes still waiting.
func (db *DB) UnfinishedScans(ctx context.Context, limit int) ([]store.Scan, error) {
	return scanDocs(ctx, db.r, false, "SELECT doc FROM scans WHERE pending = 1 LIMIT ?", limit)
}

// GetSecurityPolicy returns the policy of a namespace or repository (by name).
func (db *DB) GetSecurityPolicy(ctx context.Context, id string) (*store.SecurityPolicy, error) {
	return get[store.SecurityPolicy](ctx, db.r, tSecurityPolicies, id)
}

// PutSecurityPolicy stores p as its namespace's or repository's policy.
func (db *DB) PutSecurityPolicy(ctx context.Context, p *store.SecurityPolicy) error {
	p.ID = p.Namespace
	if p.Repository != "" {
		p.ID = p.Repository
	}
	if p.Allowlist == nil {
		p.Allowlist = []store.AllowEntry{}
	}
	p.UpdatedAt = now()
	return db.write(ctx, func(tx *sql.Tx) error {
		_, err := put(ctx, tx, tSecurityPolicies, p)
		return err
	})
}

// DeleteSecurityPolicy removes a policy (a repository's override).
func (db *DB) DeleteSecurityPolicy(ctx context.Context, id string) error {
	return db.write(ctx, func(tx *sql.Tx) error { return removeID(ctx, tx, tSecurityPolicies, id) })
}

// scanDBMeta is the meta document of the vulnerability DB's version.
type scanDBMeta struct {
	ID        string    `bson:"_id"`
	Version   string    `bson:"version"`
	UpdatedAt time.Time `bson:"updated_at"`
}

var tScanDBMeta = &table{name: "meta", values: func(d any) (string, []any) { return d.(*scanDBMeta).ID, nil }}

const scanDBMetaID = "scan-db"

// ScanDBVersion returns the vulnerability DB version the scans were made with ("" before any).
func (db *DB) ScanDBVersion(ctx context.Context) (string, error) {
	m, err := get[scanDBMeta](ctx, db.r, tScanDBMeta, scanDBMetaID)
	if errors.Is(err, store.ErrNotFound) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return m.Version, nil
}

// SetScanDBVersion records the vulnerability DB version.
func (db *DB) SetScanDBVersion(ctx context.Context, version string) error {
	return db.write(ctx, func(tx *sql.Tx) error {
		_, err := put(ctx, tx, tScanDBMeta, &scanDBMeta{ID: scanDBMetaID, Version: version, UpdatedAt: now()})
		return err
	})
}
