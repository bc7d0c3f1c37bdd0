package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

const (
	colScans            = "scans"
	colSecurityPolicies = "security_policies"
	// scanDBMetaID is the meta document remembering the vulnerability DB version the last rescan round used.
	scanDBMetaID = "scan-db"
)

// Scan statuses (SPEC §6).
const (
	ScanNotScanned = "NOT_SCANNED"
	ScanScanning   = "SCANNING"
	ScanDone       = "DONE"
	ScanFailed     = "FAILED"
)

// ScanFinal reports whether a scan status is a result (DONE or FAILED).
func ScanFinal(status string) bool { return status == ScanDone || status == ScanFailed }

// Scan is the scan of one manifest, keyed by its digest: the same content scans the same in every repository.
// While a rescan runs, Status is SCANNING and the fields of the previous result (ResultStatus, Vulnerabilities,
// …) stay until the new result replaces them.
type Scan struct {
	Digest string `bson:"_id"`
	Status string `bson:"status"`
	// ResultStatus is DONE or FAILED once a scan finished, "" before.
	ResultStatus string `bson:"result_status"`
	// ResultID is new at every FinishScan: it tells one result from the next (the retry of a failed scan is
	// named after it).
	ResultID        string              `bson:"result_id"`
	Scanner         string              `bson:"scanner"`    // e.g. "trivy 0.74.0"
	DBVersion       string              `bson:"db_version"` // the vulnerability DB's UpdatedAt
	OS              string              `bson:"os"`
	StartedAt       time.Time           `bson:"started_at"`
	FinishedAt      time.Time           `bson:"finished_at"`
	Error           string              `bson:"error"`
	Vulnerabilities []ScanVulnerability `bson:"vulnerabilities"`
	Summary         ScanSummary         `bson:"summary"`
	// Children are the platform images scanned for an index; its result aggregates theirs.
	Children []string `bson:"children"`
	// Waiting are the pushes of this digest whose triggers wait for the scan and the policy gate.
	Waiting []ScanWaiter `bson:"waiting"`
	// PullFrom is the repository the last scan pulled the image from (to queue it again after a restart).
	PullFrom  string    `bson:"pull_from"`
	UpdatedAt time.Time `bson:"updated_at"`
}

// ScanVulnerability is one finding.
type ScanVulnerability struct {
	ID               string `bson:"id"`
	Package          string `bson:"package"`
	InstalledVersion string `bson:"installed_version"`
	FixedVersion     string `bson:"fixed_version"`
	Severity         string `bson:"severity"`
	Title            string `bson:"title"`
	Link             string `bson:"link"`
}

// ScanSummary counts findings in the product's four levels.
type ScanSummary struct {
	High    int `bson:"high"`
	Medium  int `bson:"medium"`
	Low     int `bson:"low"`
	Unrated int `bson:"unrated"`
}

// ScanWaiter is a push waiting for its digest's scan.
type ScanWaiter struct {
	Repository string    `bson:"repository"`
	Tag        string    `bson:"tag"`
	PushedAt   time.Time `bson:"pushed_at"`
	BuildID    string    `bson:"build_id,omitempty"`
}

// Equal reports whether w and o are the same waiting push (times as the store keeps them, to the millisecond).
func (w ScanWaiter) Equal(o ScanWaiter) bool {
	return w.Repository == o.Repository && w.Tag == o.Tag && w.BuildID == o.BuildID &&
		w.PushedAt.UnixMilli() == o.PushedAt.UnixMilli()
}

// ScanResult is what a finished scan writes.
type ScanResult struct {
	Status          string // DONE or FAILED
	Scanner         string
	DBVersion       string
	OS              string
	StartedAt       time.Time
	FinishedAt      time.Time
	Error           string
	Vulnerabilities []ScanVulnerability
	Summary         ScanSummary
	Children        []string
}

// GetScan returns the scan of digest; ErrNotFound when it was never scanned nor queued.
func (s *Mongo) GetScan(ctx context.Context, digest string) (*Scan, error) {
	return findOne[Scan](ctx, s.c(colScans), bson.M{"_id": digest})
}

// ScansByDigest returns the scans of digests (those that exist) without their vulnerability lists.
func (s *Mongo) ScansByDigest(ctx context.Context, digests []string) (map[string]*Scan, error) {
	out := map[string]*Scan{}
	if len(digests) == 0 {
		return out, nil
	}
	cur, err := s.c(colScans).Find(ctx, bson.M{"_id": bson.M{"$in": digests}},
		options.Find().SetProjection(bson.M{"vulnerabilities": 0, "waiting": 0}))
	if err != nil {
		return nil, err
	}
	var scans []Scan
	if err := cur.All(ctx, &scans); err != nil {
		return nil, err
	}
	for i := range scans {
		out[scans[i].Digest] = &scans[i]
	}
	return out, nil
}

// StartScan marks digest SCANNING (creating its record), pulled from repo, keeping the previous result until
// FinishScan.
//
// The writes of a scan record (StartScan, FinishScan, AddScanWaiter, RemoveScanWaiter) hold the digest's lease:
// FerretDB rewrites the whole document, so a waiter added while a scan finishes would otherwise be lost, and a
// push must see the record as it is right after its waiter went in (pipeline's settle).
func (s *Mongo) StartScan(ctx context.Context, digest, repo string, at time.Time) error {
	ctx, unlock, err := s.lock(ctx, "scan/"+digest)
	if err != nil {
		return err
	}
	defer unlock()
	_, err = s.c(colScans).UpdateOne(ctx, bson.M{"_id": digest}, bson.M{
		"$set":         bson.M{"status": ScanScanning, "started_at": at.UTC(), "pull_from": repo, "updated_at": now()},
		"$setOnInsert": bson.M{"result_status": "", "vulnerabilities": []ScanVulnerability{}, "waiting": []ScanWaiter{}, "children": []string{}},
	}, options.UpdateOne().SetUpsert(true))
	return err
}

// FinishScan records the result of digest's scan and returns the record as it is now (with its waiting pushes).
func (s *Mongo) FinishScan(ctx context.Context, digest string, r ScanResult) (*Scan, error) {
	if r.Vulnerabilities == nil {
		r.Vulnerabilities = []ScanVulnerability{}
	}
	if r.Children == nil {
		r.Children = []string{}
	}
	ctx, unlock, err := s.lock(ctx, "scan/"+digest)
	if err != nil {
		return nil, err
	}
	defer unlock()
	var sc Scan
	err = s.c(colScans).FindOneAndUpdate(ctx, bson.M{"_id": digest}, bson.M{
		"$set": bson.M{"status": r.Status, "result_status": r.Status, "result_id": newResultID(), "scanner": r.Scanner, "db_version": r.DBVersion,
			"os": r.OS, "started_at": r.StartedAt.UTC(), "finished_at": r.FinishedAt.UTC(), "error": r.Error,
			"vulnerabilities": r.Vulnerabilities, "summary": r.Summary, "children": r.Children, "updated_at": now()},
		"$setOnInsert": bson.M{"waiting": []ScanWaiter{}},
	}, options.FindOneAndUpdate().SetUpsert(true).SetReturnDocument(options.After)).Decode(&sc)
	if err != nil {
		return nil, err
	}
	return &sc, nil
}

func newResultID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// AddScanWaiter records that w waits for digest's scan, creating the record (NOT_SCANNED) if needed, and
// returns the record as it is now.
func (s *Mongo) AddScanWaiter(ctx context.Context, digest string, w ScanWaiter) (*Scan, error) {
	w.PushedAt = w.PushedAt.UTC().Truncate(time.Millisecond)
	ctx, unlock, err := s.lock(ctx, "scan/"+digest)
	if err != nil {
		return nil, err
	}
	defer unlock()
	var sc Scan
	err = s.c(colScans).FindOneAndUpdate(ctx, bson.M{"_id": digest}, bson.M{
		"$addToSet": bson.M{"waiting": w},
		"$set":      bson.M{"updated_at": now()},
		"$setOnInsert": bson.M{"status": ScanNotScanned, "result_status": "", "vulnerabilities": []ScanVulnerability{},
			"children": []string{}},
	}, options.FindOneAndUpdate().SetUpsert(true).SetReturnDocument(options.After)).Decode(&sc)
	if err != nil {
		return nil, err
	}
	return &sc, nil
}

// UnfinishedScans returns up to limit scans that are queued or running (NOT_SCANNED with waiting pushes, or
// SCANNING), or finished with pushes still waiting, without their findings: after a restart their tasks
// may be gone with an in-memory queue.
func (s *Mongo) UnfinishedScans(ctx context.Context, limit int) ([]Scan, error) {
	cur, err := s.c(colScans).Find(ctx, bson.M{"$or": bson.A{
		bson.M{"status": bson.M{"$in": []string{ScanNotScanned, ScanScanning}}},
		bson.M{"status": bson.M{"$in": []string{ScanDone, ScanFailed}}, "waiting.0": bson.M{"$exists": true}},
	}},
		options.Find().SetProjection(bson.M{"vulnerabilities": 0}).SetLimit(int64(limit)))
	if err != nil {
		return nil, err
	}
	scans := []Scan{}
	err = cur.All(ctx, &scans)
	return scans, err
}

// RemoveScanWaiter drops w from digest's waiting pushes.
func (s *Mongo) RemoveScanWaiter(ctx context.Context, digest string, w ScanWaiter) error {
	ctx, unlock, err := s.lock(ctx, "scan/"+digest)
	if err != nil {
		return err
	}
	defer unlock()
	_, err = s.c(colScans).UpdateOne(ctx, bson.M{"_id": digest}, bson.M{"$pull": bson.M{"waiting": w}})
	return err
}

// SecurityPolicy is the blocking policy of a namespace (ID "ns", Repository "") or a repository's override
// (ID "ns/repo").
type SecurityPolicy struct {
	ID             string       `bson:"_id"`
	Namespace      string       `bson:"namespace"`
	Repository     string       `bson:"repository"` // "" for a namespace's policy
	BlockSeverity  string       `bson:"block_severity"`
	OnlyFixable    bool         `bson:"only_fixable"`
	Allowlist      []AllowEntry `bson:"allowlist"`
	BlockUnscanned bool         `bson:"block_unscanned"`
	// RequireSignature and TrustedKeys (PEM public keys) are SPEC §15's signature requirement.
	RequireSignature bool      `bson:"require_signature"`
	TrustedKeys      []string  `bson:"trusted_keys"`
	UpdatedAt        time.Time `bson:"updated_at"`
}

// AllowEntry allowlists one vulnerability id until ExpiresAt (nil: for ever).
type AllowEntry struct {
	ID        string     `bson:"id"`
	ExpiresAt *time.Time `bson:"expires_at"`
}

// GetSecurityPolicy returns the policy stored under id ("ns" or "ns/repo"); ErrNotFound when there is none.
func (s *Mongo) GetSecurityPolicy(ctx context.Context, id string) (*SecurityPolicy, error) {
	return findOne[SecurityPolicy](ctx, s.c(colSecurityPolicies), bson.M{"_id": id})
}

// PutSecurityPolicy stores p, replacing the policy of the same namespace or repository.
func (s *Mongo) PutSecurityPolicy(ctx context.Context, p *SecurityPolicy) error {
	p.ID = p.Namespace
	if p.Repository != "" {
		p.ID = p.Repository
	}
	if p.Allowlist == nil {
		p.Allowlist = []AllowEntry{}
	}
	p.UpdatedAt = now()
	return upsert(func() error {
		_, err := s.c(colSecurityPolicies).ReplaceOne(ctx, bson.M{"_id": p.ID}, p, options.Replace().SetUpsert(true))
		return err
	})
}

// DeleteSecurityPolicy drops the policy stored under id; ErrNotFound when there was none.
func (s *Mongo) DeleteSecurityPolicy(ctx context.Context, id string) error {
	res, err := s.c(colSecurityPolicies).DeleteOne(ctx, bson.M{"_id": id})
	if err != nil {
		return err
	}
	if res.DeletedCount == 0 {
		return ErrNotFound
	}
	return nil
}

// RecentImageVersions returns up to limit image versions pushed at or after since, newest first.
func (s *Mongo) RecentImageVersions(ctx context.Context, since time.Time, limit int) ([]ImageVersion, error) {
	cur, err := s.c(colTags).Find(ctx, bson.M{"pushed_at": bson.M{"$gte": since.UTC()}},
		options.Find().SetSort(bson.D{{Key: "pushed_at", Value: -1}}).SetLimit(int64(limit)))
	if err != nil {
		return nil, err
	}
	vs := []ImageVersion{}
	err = cur.All(ctx, &vs)
	return vs, err
}

// ScanDBVersion returns the vulnerability DB version recorded by SetScanDBVersion ("" when none).
func (s *Mongo) ScanDBVersion(ctx context.Context) (string, error) {
	var doc struct {
		Version string `bson:"version"`
	}
	err := s.c(colMeta).FindOne(ctx, bson.M{"_id": scanDBMetaID}).Decode(&doc)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return "", nil
	}
	return doc.Version, err
}

// SetScanDBVersion records the vulnerability DB version images were last rescanned for.
func (s *Mongo) SetScanDBVersion(ctx context.Context, version string) error {
	return upsert(func() error {
		_, err := s.c(colMeta).UpdateOne(ctx, bson.M{"_id": scanDBMetaID},
			bson.M{"$set": bson.M{"version": version, "updated_at": now()}}, options.UpdateOne().SetUpsert(true))
		return err
	})
}
