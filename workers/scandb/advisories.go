// Package scandb owns Berth's offline vulnerability database: it builds a Trivy DB (trivy-db schema 2:
// DIR/db/trivy.db and DIR/db/metadata.json) from a small JSON advisory file, and reads the metadata of a DB
// directory so Berth can tell which DB a scan used and notice when the operator drops in a new one.
//
// It depends on github.com/aquasecurity/trivy-db and go.etcd.io/bbolt only; the Trivy scanner itself lives in
// the nested module workers/scanner. The same DIR is the scanner's --db-dir.
//
//	adv, err := scandb.LoadAdvisories(f)
//	...
//	err = scandb.Build(ctx, adv, "/var/lib/berth/scan-db")
//	meta, err := scandb.ReadMetadata("/var/lib/berth/scan-db")
package scandb

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// AdvisoryFile is the JSON document `berth admin scan-db build --advisories FILE` reads.
type AdvisoryFile struct {
	// UpdatedAt becomes the DB's UpdatedAt (its version as shown in scan results); zero means the build time.
	UpdatedAt time.Time `json:"updated_at,omitzero"`
	// NextUpdate is informational only: the scanner never downloads. Zero means UpdatedAt + 24h.
	NextUpdate      time.Time       `json:"next_update,omitzero"`
	Advisories      []Advisory      `json:"advisories"`
	Vulnerabilities []Vulnerability `json:"vulnerabilities"`
}

// Advisory says that a package in one data source is affected by a vulnerability.
type Advisory struct {
	// Source is Trivy's bucket name: "alpine 3.22", "debian 12", "ubuntu 24.04" for OS packages;
	// "<ecosystem>::<name>" for language packages, e.g. "npm::GitHub Security Advisory npm".
	Source  string `json:"source"`
	Package string `json:"package"`
	ID      string `json:"id"` // CVE-…, GHSA-…

	// FixedVersion is for OS sources; empty means no fix yet (Trivy reports it as affected).
	FixedVersion string `json:"fixed_version,omitempty"`
	// Version ranges for language sources, in the ecosystem's syntax ("< 4.17.21", ">= 1.0, < 1.2.3").
	VulnerableVersions []string `json:"vulnerable_versions,omitempty"`
	PatchedVersions    []string `json:"patched_versions,omitempty"`
	UnaffectedVersions []string `json:"unaffected_versions,omitempty"`

	// DataSource names where the advisory comes from. Optional for the sources Berth knows (alpine, debian,
	// ubuntu, wolfi, chainguard and GitHub Security Advisory ecosystems); other sources have none unless given.
	DataSource *DataSource `json:"data_source,omitempty"`
}

// DataSource is the origin Trivy reports for an advisory; its ID also selects the vendor severity.
type DataSource struct {
	ID   string `json:"id"` // "alpine", "ghsa", "debian", …
	Name string `json:"name"`
	URL  string `json:"url,omitempty"`
}

// Vulnerability carries what a scan shows about an id.
type Vulnerability struct {
	ID          string   `json:"id"`
	Severity    string   `json:"severity"` // CRITICAL, HIGH, MEDIUM, LOW or UNKNOWN
	Title       string   `json:"title,omitempty"`
	Description string   `json:"description,omitempty"`
	References  []string `json:"references,omitempty"`
	// VendorSeverity optionally overrides Severity per data source id, e.g. {"nvd": "HIGH", "alpine": "MEDIUM"}.
	VendorSeverity map[string]string `json:"vendor_severity,omitempty"`
}

// Severities are the severity names Trivy uses, lowest first.
var Severities = []string{"UNKNOWN", "LOW", "MEDIUM", "HIGH", "CRITICAL"}

// ErrInvalidAdvisories marks every validation failure of an advisory file.
var ErrInvalidAdvisories = errors.New("invalid advisory file")

// LoadAdvisories decodes and validates an advisory file. Unknown fields are rejected so that a misspelt
// field does not silently produce a DB that matches nothing.
func LoadAdvisories(r io.Reader) (AdvisoryFile, error) {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	var f AdvisoryFile
	if err := dec.Decode(&f); err != nil {
		return AdvisoryFile{}, fmt.Errorf("%w: decode JSON: %w", ErrInvalidAdvisories, err)
	}
	if dec.More() {
		return AdvisoryFile{}, fmt.Errorf("%w: trailing data after the JSON object", ErrInvalidAdvisories)
	}
	if err := f.Validate(); err != nil {
		return AdvisoryFile{}, err
	}
	return f, nil
}

// Validate checks the file is complete and consistent. All problems are reported at once.
func (f AdvisoryFile) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf(format, args...))
	}
	if len(f.Advisories) == 0 {
		bad("no advisories: the file needs at least one entry in \"advisories\"")
	}

	vulns := make(map[string]bool, len(f.Vulnerabilities))
	for i, v := range f.Vulnerabilities {
		at := fmt.Sprintf("vulnerabilities[%d]", i)
		if v.ID != "" {
			at += " (" + v.ID + ")"
		}
		switch {
		case strings.TrimSpace(v.ID) == "":
			bad("%s: id is required", at)
		case vulns[v.ID]:
			bad("%s: duplicate id", at)
		}
		vulns[v.ID] = true
		if !validSeverity(v.Severity) {
			bad("%s: severity %q is not one of %s", at, v.Severity, strings.Join(Severities, ", "))
		}
		for src, s := range v.VendorSeverity {
			if src == "" || !validSeverity(s) {
				bad("%s: vendor_severity %q: %q is not one of %s", at, src, s, strings.Join(Severities, ", "))
			}
		}
	}

	seen := make(map[[3]string]bool, len(f.Advisories))
	for i, a := range f.Advisories {
		at := fmt.Sprintf("advisories[%d]", i)
		if a.Package != "" || a.ID != "" {
			at += fmt.Sprintf(" (%s %s)", a.Package, a.ID)
		}
		if strings.TrimSpace(a.Source) == "" {
			bad("%s: source is required (e.g. \"alpine 3.22\" or \"npm::GitHub Security Advisory npm\")", at)
		}
		if strings.TrimSpace(a.Package) == "" {
			bad("%s: package is required", at)
		}
		if strings.TrimSpace(a.ID) == "" {
			bad("%s: id is required", at)
		} else if !vulns[a.ID] {
			bad("%s: no entry for %s in \"vulnerabilities\" (its severity and title come from there)", at, a.ID)
		}
		key := [3]string{a.Source, a.Package, a.ID}
		if seen[key] {
			bad("%s: duplicate advisory for the same source, package and id", at)
		}
		seen[key] = true

		ranges := len(a.VulnerableVersions) + len(a.PatchedVersions) + len(a.UnaffectedVersions)
		if isLanguageSource(a.Source) {
			if a.FixedVersion != "" {
				bad("%s: fixed_version is for OS sources; language source %q needs vulnerable_versions/patched_versions", at, a.Source)
			}
			if ranges == 0 {
				bad("%s: language source %q needs vulnerable_versions or patched_versions", at, a.Source)
			}
		} else if ranges > 0 {
			bad("%s: OS source %q takes fixed_version, not version ranges", at, a.Source)
		}
		if ds := a.DataSource; ds != nil && (ds.ID == "" || ds.Name == "") {
			bad("%s: data_source needs id and name", at)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %w", ErrInvalidAdvisories, errors.Join(errs...))
	}
	return nil
}

func validSeverity(s string) bool {
	for _, name := range Severities {
		if s == name {
			return true
		}
	}
	return false
}

// isLanguageSource reports whether a bucket name is an ecosystem bucket ("npm::…"), as Trivy's library
// detector looks them up by the "<ecosystem>::" prefix.
func isLanguageSource(source string) bool {
	return strings.Contains(source, "::")
}

// dataSourceFor returns the data source recorded for a bucket: the advisory's own, else the one the real
// trivy-db uses for that source family, else none.
func dataSourceFor(a Advisory) (DataSource, bool) {
	if a.DataSource != nil {
		return *a.DataSource, true
	}
	if eco, name, ok := strings.Cut(a.Source, "::"); ok {
		const ghsa = "GitHub Security Advisory "
		if ecoName, ok := strings.CutPrefix(name, ghsa); ok && eco != "" {
			return DataSource{
				ID:   "ghsa",
				Name: name,
				URL:  "https://github.com/advisories?query=type%3Areviewed+ecosystem%3A" + strings.ToLower(ecoName),
			}, true
		}
		return DataSource{}, false
	}
	family, _, _ := strings.Cut(a.Source, " ")
	if ds, ok := osDataSources[family]; ok {
		return ds, true
	}
	return DataSource{}, false
}

// osDataSources mirrors the data sources of trivy-db's vulnsrc packages (which cannot be imported cheaply).
var osDataSources = map[string]DataSource{
	"alpine":     {ID: "alpine", Name: "Alpine Secdb", URL: "https://secdb.alpinelinux.org/"},
	"debian":     {ID: "debian", Name: "Debian Security Tracker", URL: "https://salsa.debian.org/security-tracker-team/security-tracker"},
	"ubuntu":     {ID: "ubuntu", Name: "Ubuntu CVE Tracker", URL: "https://git.launchpad.net/ubuntu-cve-tracker"},
	"wolfi":      {ID: "wolfi", Name: "Wolfi Secdb", URL: "https://packages.wolfi.dev/os/security.json"},
	"chainguard": {ID: "chainguard", Name: "Chainguard Security Data", URL: "https://packages.cgr.dev/chainguard/security.json"},
}
