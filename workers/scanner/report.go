package scanner

import (
	"cmp"
	"encoding/json"
	"slices"
	"time"
)

// Report is the result of one image scan, as printed by `berth-scanner scan` and returned by POST /scan.
type Report struct {
	Scanner        string `json:"scanner"`         // always "trivy"
	ScannerVersion string `json:"scanner_version"` // Trivy library version, e.g. "0.74.0"
	// DBVersion names the vulnerability DB used: its UpdatedAt in RFC 3339 (UTC), or "v<schema>" without one.
	DBVersion       string          `json:"db_version"`
	OS              string          `json:"os"` // detected OS, e.g. "alpine 3.22.0"; "" when none was found
	StartedAt       time.Time       `json:"started_at"`
	FinishedAt      time.Time       `json:"finished_at"`
	Vulnerabilities []Vulnerability `json:"vulnerabilities"` // never null; most severe first
	// SBOM is the image's CycloneDX JSON SBOM, when the request asked for it.
	SBOM json.RawMessage `json:"sbom,omitempty"`
}

// Vulnerability is one finding: a vulnerable version of a package installed in the image.
type Vulnerability struct {
	ID               string `json:"id"` // CVE-…, GHSA-…
	Package          string `json:"package"`
	InstalledVersion string `json:"installed_version"`
	FixedVersion     string `json:"fixed_version"` // "" when no fix is known
	Severity         string `json:"severity"`      // CRITICAL, HIGH, MEDIUM, LOW or UNKNOWN
	Title            string `json:"title"`
	Link             string `json:"link"` // the primary URL of the advisory
}

// DBInfo describes the vulnerability DB the scanner uses (GET /db).
type DBInfo struct {
	Version   string    `json:"version"` // same as Report.DBVersion
	Schema    int       `json:"schema"`
	UpdatedAt time.Time `json:"updated_at"`
	// NextUpdate and DownloadedAt are copied from the DB's metadata.json; the scanner never downloads.
	NextUpdate   time.Time `json:"next_update"`
	DownloadedAt time.Time `json:"downloaded_at"`
}

// severityRank orders Trivy's severities, most severe first.
var severityRank = map[string]int{"CRITICAL": 0, "HIGH": 1, "MEDIUM": 2, "LOW": 3, "UNKNOWN": 4}

func sortVulnerabilities(vs []Vulnerability) {
	slices.SortFunc(vs, func(a, b Vulnerability) int {
		ra, ok := severityRank[a.Severity]
		if !ok {
			ra = len(severityRank)
		}
		rb, ok := severityRank[b.Severity]
		if !ok {
			rb = len(severityRank)
		}
		return cmp.Or(cmp.Compare(ra, rb), cmp.Compare(a.ID, b.ID), cmp.Compare(a.Package, b.Package),
			cmp.Compare(a.InstalledVersion, b.InstalledVersion))
	})
}
