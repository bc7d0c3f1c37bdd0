package scandb

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	trivydb "github.com/aquasecurity/trivy-db/pkg/db"
	dbtypes "github.com/aquasecurity/trivy-db/pkg/types"
	bolt "go.etcd.io/bbolt"
)

func loadFixture(t *testing.T) AdvisoryFile {
	t.Helper()
	f, err := os.Open("testdata/advisories.json")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	adv, err := LoadAdvisories(f)
	if err != nil {
		t.Fatalf("LoadAdvisories: %v", err)
	}
	return adv
}

// openDB opens a built DB read-only, as Trivy does, and closes it at the end of the test.
func openDB(t *testing.T, dir string) trivydb.Config {
	t.Helper()
	buildMu.Lock()
	t.Cleanup(buildMu.Unlock)
	if err := trivydb.Init(filepath.Join(dir, "db"), trivydb.WithBoltOptions(&bolt.Options{ReadOnly: true, Timeout: time.Second})); err != nil {
		t.Fatalf("open built DB: %v", err)
	}
	t.Cleanup(func() {
		if err := trivydb.Close(); err != nil {
			t.Error(err)
		}
	})
	return trivydb.Config{}
}

func TestBuildReadBack(t *testing.T) {
	dir := t.TempDir()
	if err := Build(context.Background(), loadFixture(t), dir); err != nil {
		t.Fatalf("Build: %v", err)
	}

	meta, err := ReadMetadata(dir)
	if err != nil {
		t.Fatalf("ReadMetadata: %v", err)
	}
	if meta.Version != 2 || meta.DownloadedAt.IsZero() || !meta.NextUpdate.After(meta.UpdatedAt) {
		t.Errorf("metadata = %+v", meta)
	}
	if got, want := meta.DBVersion(), "2026-01-02T03:04:05Z"; got != want {
		t.Errorf("DBVersion = %q, want %q", got, want)
	}

	dbc := openDB(t, dir)

	musl, err := dbc.GetAdvisories("alpine 3.22", "musl")
	if err != nil {
		t.Fatal(err)
	}
	if len(musl) != 1 || musl[0].VulnerabilityID != "CVE-2025-26519" || musl[0].FixedVersion != "1.2.5-r9" {
		t.Fatalf("musl advisories = %+v", musl)
	}
	if ds := musl[0].DataSource; ds == nil || ds.ID != "alpine" || ds.Name != "Alpine Secdb" {
		t.Errorf("musl data source = %+v", ds)
	}

	// The library detector looks ecosystems up by prefix, exactly like this.
	npm, err := dbc.ForEachAdvisory([]string{"npm::"}, "lodash")
	if err != nil {
		t.Fatal(err)
	}
	lodash, ok := npm["CVE-2021-23337"]
	if !ok || len(npm) != 1 {
		t.Fatalf("lodash advisories = %v", npm)
	}
	if lodash.Source.ID != "ghsa" || lodash.Source.Name != "GitHub Security Advisory npm" {
		t.Errorf("lodash data source = %+v", lodash.Source)
	}
	for _, want := range []string{`"VulnerableVersions":["\u003c 4.17.21"]`, `"PatchedVersions":["4.17.21"]`} {
		if !strings.Contains(string(lodash.Content), want) {
			t.Errorf("lodash advisory %s lacks %s", lodash.Content, want)
		}
	}

	v, err := dbc.GetVulnerability("CVE-2021-23337")
	if err != nil {
		t.Fatal(err)
	}
	//lint:ignore SA1019 Build writes the legacy field on purpose: Trivy falls back to it.
	if v.Severity != "HIGH" || v.VendorSeverity["ghsa"] != dbtypes.SeverityHigh || !strings.Contains(v.Title, "lodash") ||
		!slices.Contains(v.References, "https://github.com/advisories/GHSA-35jh-r3h4-6jhm") {
		t.Errorf("CVE-2021-23337 = %+v", v)
	}
	v, err = dbc.GetVulnerability("CVE-2025-26519")
	if err != nil {
		t.Fatal(err)
	}
	if v.VendorSeverity["alpine"] != dbtypes.SeverityHigh {
		t.Errorf("CVE-2025-26519 vendor severity = %v", v.VendorSeverity)
	}
}

func TestBuildReplacesDB(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	if err := Build(ctx, loadFixture(t), dir); err != nil {
		t.Fatal(err)
	}
	first, err := ReadMetadata(dir)
	if err != nil {
		t.Fatal(err)
	}

	next := AdvisoryFile{
		UpdatedAt:       first.UpdatedAt.Add(time.Hour),
		Advisories:      []Advisory{{Source: "debian 12", Package: "openssl", ID: "CVE-2024-0001", FixedVersion: "3.0.1-1"}},
		Vulnerabilities: []Vulnerability{{ID: "CVE-2024-0001", Severity: "LOW", VendorSeverity: map[string]string{"nvd": "MEDIUM"}}},
	}
	if err := Build(ctx, next, dir); err != nil {
		t.Fatal(err)
	}
	second, err := ReadMetadata(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !second.UpdatedAt.After(first.UpdatedAt) {
		t.Errorf("UpdatedAt did not move: %v then %v", first.UpdatedAt, second.UpdatedAt)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 || entries[0].Name() != "db" {
		t.Errorf("build left files behind: %v", entries)
	}

	dbc := openDB(t, dir)
	if musl, err := dbc.GetAdvisories("alpine 3.22", "musl"); err != nil || len(musl) != 0 {
		t.Errorf("old advisories survived a rebuild: %+v, %v", musl, err)
	}
	ssl, err := dbc.GetAdvisories("debian 12", "openssl")
	if err != nil || len(ssl) != 1 || ssl[0].DataSource == nil || ssl[0].DataSource.ID != "debian" {
		t.Errorf("openssl advisories = %+v, %v", ssl, err)
	}
	v, err := dbc.GetVulnerability("CVE-2024-0001")
	if err != nil {
		t.Fatal(err)
	}
	if v.VendorSeverity["debian"] != dbtypes.SeverityLow || v.VendorSeverity["nvd"] != dbtypes.SeverityMedium {
		t.Errorf("vendor severity = %v", v.VendorSeverity)
	}
}

func TestBuildCancelled(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Build(ctx, loadFixture(t), dir); !errors.Is(err, context.Canceled) {
		t.Fatalf("Build with a cancelled context = %v", err)
	}
	if _, err := ReadMetadata(dir); !errors.Is(err, ErrNoDB) {
		t.Errorf("a cancelled build installed a DB: %v", err)
	}
}

func TestReadMetadataErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := ReadMetadata(dir); !errors.Is(err, ErrNoDB) || !strings.Contains(err.Error(), "no vulnerability DB") {
		t.Errorf("empty dir: %v", err)
	}

	if err := Build(context.Background(), loadFixture(t), dir); err != nil {
		t.Fatal(err)
	}
	meta := filepath.Join(dir, "db", "metadata.json")
	if err := os.Remove(meta); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadMetadata(dir); !errors.Is(err, ErrNoDB) || !strings.Contains(err.Error(), "metadata.json") {
		t.Errorf("no metadata: %v", err)
	}

	if err := os.WriteFile(meta, []byte(`{"Version":1,"UpdatedAt":"2020-01-01T00:00:00Z"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadMetadata(dir); err == nil || !strings.Contains(err.Error(), "schema version 1") {
		t.Errorf("old schema: %v", err)
	}
}

func TestLoadAdvisoriesInvalid(t *testing.T) {
	const vuln = `"vulnerabilities":[{"id":"CVE-1","severity":"HIGH"}]`
	tests := []struct {
		name, json, want string
	}{
		{"not JSON", `{`, "decode JSON"},
		{"unknown field", `{"advisories":[{"source":"alpine 3.22","package":"musl","id":"CVE-1","fixed":"1"}],` + vuln + `}`, `unknown field "fixed"`},
		{"trailing data", `{"advisories":[{"source":"alpine 3.22","package":"musl","id":"CVE-1"}],` + vuln + `} {}`, "trailing data"},
		{"empty", `{}`, "no advisories"},
		{"missing source", `{"advisories":[{"package":"musl","id":"CVE-1"}],` + vuln + `}`, "advisories[0] (musl CVE-1): source is required"},
		{"missing package", `{"advisories":[{"source":"alpine 3.22","id":"CVE-1"}],` + vuln + `}`, "package is required"},
		{"no vulnerability entry", `{"advisories":[{"source":"alpine 3.22","package":"musl","id":"CVE-2"}],` + vuln + `}`, `no entry for CVE-2 in "vulnerabilities"`},
		{"bad severity", `{"advisories":[{"source":"alpine 3.22","package":"musl","id":"CVE-1"}],"vulnerabilities":[{"id":"CVE-1","severity":"high"}]}`, `severity "high" is not one of`},
		{"bad vendor severity", `{"advisories":[{"source":"alpine 3.22","package":"musl","id":"CVE-1"}],"vulnerabilities":[{"id":"CVE-1","severity":"HIGH","vendor_severity":{"nvd":"SEVERE"}}]}`, `vendor_severity "nvd"`},
		{"duplicate vulnerability", `{"advisories":[{"source":"alpine 3.22","package":"musl","id":"CVE-1"}],"vulnerabilities":[{"id":"CVE-1","severity":"HIGH"},{"id":"CVE-1","severity":"LOW"}]}`, "duplicate id"},
		{"duplicate advisory", `{"advisories":[{"source":"alpine 3.22","package":"musl","id":"CVE-1"},{"source":"alpine 3.22","package":"musl","id":"CVE-1"}],` + vuln + `}`, "duplicate advisory"},
		{"language source without ranges", `{"advisories":[{"source":"npm::GitHub Security Advisory npm","package":"lodash","id":"CVE-1"}],` + vuln + `}`, "needs vulnerable_versions or patched_versions"},
		{"language source with fixed_version", `{"advisories":[{"source":"npm::GitHub Security Advisory npm","package":"lodash","id":"CVE-1","fixed_version":"1","patched_versions":["1"]}],` + vuln + `}`, "fixed_version is for OS sources"},
		{"OS source with ranges", `{"advisories":[{"source":"alpine 3.22","package":"musl","id":"CVE-1","vulnerable_versions":["<1"]}],` + vuln + `}`, "takes fixed_version, not version ranges"},
		{"incomplete data source", `{"advisories":[{"source":"distro 1","package":"p","id":"CVE-1","data_source":{"id":"x"}}],` + vuln + `}`, "data_source needs id and name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := LoadAdvisories(strings.NewReader(tt.json))
			if !errors.Is(err, ErrInvalidAdvisories) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want it to contain %q", err, tt.want)
			}
		})
	}

	// Every problem is reported, not just the first.
	_, err := LoadAdvisories(strings.NewReader(`{"advisories":[{"id":"CVE-1"}],"vulnerabilities":[{"id":"CVE-1","severity":"x"}]}`))
	for _, want := range []string{"source is required", "package is required", `severity "x"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("err = %v, want it to contain %q", err, want)
		}
	}
}

func TestBuildValidates(t *testing.T) {
	err := Build(context.Background(), AdvisoryFile{}, t.TempDir())
	if !errors.Is(err, ErrInvalidAdvisories) {
		t.Errorf("Build of an empty file = %v", err)
	}
}

func TestDataSourceFor(t *testing.T) {
	tests := []struct {
		source string
		want   string // ID/Name, "" for none
	}{
		{"alpine 3.22", "alpine/Alpine Secdb"},
		{"debian 12", "debian/Debian Security Tracker"},
		{"ubuntu 24.04", "ubuntu/Ubuntu CVE Tracker"},
		{"npm::GitHub Security Advisory npm", "ghsa/GitHub Security Advisory npm"},
		{"pip::GitHub Security Advisory pip", "ghsa/GitHub Security Advisory pip"},
		{"npm::Node.js Ecosystem Security Working Group", ""},
		{"someos 1", ""},
	}
	for _, tt := range tests {
		ds, ok := dataSourceFor(Advisory{Source: tt.source})
		got := ""
		if ok {
			got = ds.ID + "/" + ds.Name
		}
		if got != tt.want {
			t.Errorf("dataSourceFor(%q) = %q, want %q", tt.source, got, tt.want)
		}
	}
}
