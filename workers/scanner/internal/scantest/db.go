// Package scantest holds the scanner's test fixtures: a vulnerability DB writer for the advisory file
// format of Berth's workers/scandb, hand-made images, and a registry with Docker token auth.
package scantest

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	dbtypes "github.com/aquasecurity/trivy-db/pkg/types"
	bolt "go.etcd.io/bbolt"
)

// AdvisoriesJSON is a real-world advisory file: CVE-2025-26519 in Alpine 3.22's musl (fixed in 1.2.5-r9)
// and CVE-2021-23337 in lodash < 4.17.21, both HIGH.
//
//go:embed advisories.json
var AdvisoriesJSON []byte

// Advisories is the subset of workers/scandb's AdvisoryFile the tests need.
type Advisories struct {
	UpdatedAt  time.Time `json:"updated_at"`
	Advisories []struct {
		Source             string   `json:"source"`
		Package            string   `json:"package"`
		ID                 string   `json:"id"`
		FixedVersion       string   `json:"fixed_version"`
		VulnerableVersions []string `json:"vulnerable_versions"`
		PatchedVersions    []string `json:"patched_versions"`
	} `json:"advisories"`
	Vulnerabilities []struct {
		ID          string   `json:"id"`
		Severity    string   `json:"severity"`
		Title       string   `json:"title"`
		Description string   `json:"description"`
		References  []string `json:"references"`
	} `json:"vulnerabilities"`
}

// Fixture returns AdvisoriesJSON decoded.
func Fixture() Advisories {
	var a Advisories
	if err := json.Unmarshal(AdvisoriesJSON, &a); err != nil {
		panic(err)
	}
	return a
}

// WriteDB writes dir/db/trivy.db and dir/db/metadata.json for adv, replacing any DB there by rename, as
// scandb.Build does. It writes the bbolt file directly rather than through trivy-db's package, whose
// global handle is the one the scanner under test has open.
func WriteDB(dir string, adv Advisories) error {
	dbDir := filepath.Join(dir, "db")
	if err := os.MkdirAll(dbDir, 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(dir, ".db-build-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	bdb, err := bolt.Open(filepath.Join(tmp, "trivy.db"), 0o644, nil)
	if err != nil {
		return err
	}
	sources := map[string]string{} // vuln id → data source id
	err = bdb.Update(func(tx *bolt.Tx) error {
		for _, a := range adv.Advisories {
			ds := dataSource(a.Source)
			sources[a.ID] = string(ds.ID)
			if err := put(tx, []string{"data-source"}, a.Source, ds); err != nil {
				return err
			}
			ta := &dbtypes.Advisory{FixedVersion: a.FixedVersion, VulnerableVersions: a.VulnerableVersions, PatchedVersions: a.PatchedVersions}
			if err := put(tx, []string{a.Source, a.Package}, a.ID, ta); err != nil {
				return err
			}
		}
		for _, v := range adv.Vulnerabilities {
			sev, err := dbtypes.NewSeverity(v.Severity)
			if err != nil {
				return err
			}
			tv := dbtypes.Vulnerability{Title: v.Title, Description: v.Description, Severity: v.Severity, References: v.References}
			if src := sources[v.ID]; src != "" {
				tv.VendorSeverity = dbtypes.VendorSeverity{dbtypes.SourceID(src): sev}
			}
			if err := put(tx, []string{"vulnerability"}, v.ID, tv); err != nil {
				return err
			}
		}
		return nil
	})
	if cerr := bdb.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}

	updated := adv.UpdatedAt
	if updated.IsZero() {
		updated = time.Now()
	}
	meta, err := json.Marshal(map[string]any{
		"Version": 2, "UpdatedAt": updated.UTC(), "NextUpdate": updated.Add(24 * time.Hour).UTC(),
		"DownloadedAt": time.Now().UTC(),
	})
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(tmp, "metadata.json"), meta, 0o644); err != nil {
		return err
	}
	for _, f := range []string{"trivy.db", "metadata.json"} {
		if err := os.Rename(filepath.Join(tmp, f), filepath.Join(dbDir, f)); err != nil {
			return err
		}
	}
	return nil
}

func dataSource(source string) dbtypes.DataSource {
	if eco, name, ok := strings.Cut(source, "::"); ok {
		return dbtypes.DataSource{ID: "ghsa", Name: name,
			URL: "https://github.com/advisories?query=type%3Areviewed+ecosystem%3A" + eco}
	}
	if strings.HasPrefix(source, "alpine ") {
		return dbtypes.DataSource{ID: "alpine", Name: "Alpine Secdb", URL: "https://secdb.alpinelinux.org/"}
	}
	panic(fmt.Sprintf("scantest: no data source for %q", source))
}

func put(tx *bolt.Tx, buckets []string, key string, v any) error {
	b, err := tx.CreateBucketIfNotExists([]byte(buckets[0]))
	if err != nil {
		return err
	}
	for _, name := range buckets[1:] {
		if b, err = b.CreateBucketIfNotExists([]byte(name)); err != nil {
			return err
		}
	}
	j, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.Put([]byte(key), j)
}
