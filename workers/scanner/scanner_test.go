package scanner

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berth-dev/berth/workers/scanner/internal/scantest"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

const (
	testUser     = "scanner"
	testPassword = "s3cret"
)

var (
	muslVuln = Vulnerability{
		ID: "CVE-2025-26519", Package: "musl", InstalledVersion: "1.2.5-r8", FixedVersion: "1.2.5-r9",
		Severity: "HIGH", Title: "musl: iconv: out-of-bounds write when converting EUC-KR text to UTF-8",
		Link: "https://avd.aquasec.com/nvd/cve-2025-26519",
	}
	lodashVuln = Vulnerability{
		ID: "CVE-2021-23337", Package: "lodash", InstalledVersion: "4.17.20", FixedVersion: "4.17.21",
		Severity: "HIGH", Title: "nodejs-lodash: command injection via template",
		Link: "https://avd.aquasec.com/nvd/cve-2021-23337",
	}
)

// fixture is one registry with the three test images, shared by the tests of this package.
type fixture struct {
	reg                   *scantest.Registry
	alpine, lodash, clean string // by-digest references
	alpineImg             v1.Image
}

var (
	fixOnce sync.Once
	fix     fixture
	fixErr  error
)

func testFixture(t testing.TB) fixture {
	t.Helper()
	fixOnce.Do(func() {
		fix.reg = scantest.NewRegistry(testUser, testPassword)
		push := func(repo string, layers ...map[string]string) (string, v1.Image) {
			if fixErr != nil {
				return "", nil
			}
			img, err := scantest.Image(layers...)
			if err != nil {
				fixErr = err
				return "", nil
			}
			ref, err := fix.reg.Push(repo, img)
			fixErr = err
			return ref, img
		}
		// (a) Alpine 3.22 with a vulnerable musl; (b) a Node app with a vulnerable lodash on no OS; (c) the same
		// packages at fixed versions.
		fix.alpine, fix.alpineImg = push("ns/alpine",
			scantest.Alpine322(scantest.APKPackage{Name: "musl", Version: "1.2.5-r8"}, scantest.APKPackage{Name: "busybox", Version: "1.37.0-r18"}),
			map[string]string{"etc/motd": "hello\n"})
		fix.lodash, _ = push("ns/node-app", scantest.NodeModule("lodash", "4.17.20"))
		fix.clean, _ = push("ns/clean", scantest.Merge(
			scantest.Alpine322(scantest.APKPackage{Name: "musl", Version: "1.2.5-r10"}),
			scantest.NodeModule("lodash", "4.17.21")))
	})
	if fixErr != nil {
		t.Fatalf("test images: %v", fixErr)
	}
	return fix
}

// newScanner opens a Scanner on a fresh cache; with a DB from the fixture advisories when withDB.
func newScanner(t *testing.T, withDB bool) (*Scanner, string) {
	t.Helper()
	dbDir := t.TempDir()
	if withDB {
		if err := scantest.WriteDB(dbDir, scantest.Fixture()); err != nil {
			t.Fatal(err)
		}
	}
	s, err := New(Options{DBDir: dbDir, CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s, dbDir
}

func request(ref string) Request {
	return Request{Image: ref, Username: testUser, Password: testPassword, Insecure: true}
}

func TestScanFindsExactlyTheKnownVulnerabilities(t *testing.T) {
	f := testFixture(t)
	s, _ := newScanner(t, true)
	tests := []struct {
		name, ref, os string
		want          []Vulnerability
	}{
		{"alpine musl", f.alpine, "alpine 3.22.0", []Vulnerability{muslVuln}},
		{"node lodash", f.lodash, "", []Vulnerability{lodashVuln}},
		{"clean", f.clean, "alpine 3.22.0", []Vulnerability{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := time.Now().UTC()
			rep, err := s.Scan(context.Background(), request(tt.ref))
			if err != nil {
				t.Fatalf("Scan: %v", err)
			}
			if rep.Scanner != "trivy" || rep.ScannerVersion != "0.74.0" || rep.DBVersion != "2026-01-02T03:04:05Z" || rep.OS != tt.os {
				t.Errorf("report header = %+v", rep)
			}
			if rep.StartedAt.Before(before.Add(-time.Second)) || rep.FinishedAt.Before(rep.StartedAt) {
				t.Errorf("times: started %v finished %v", rep.StartedAt, rep.FinishedAt)
			}
			if rep.Vulnerabilities == nil {
				t.Errorf("vulnerabilities is nil; it must encode as []")
			}
			if !equalVulns(rep.Vulnerabilities, tt.want) {
				t.Errorf("vulnerabilities =\n  %+v\nwant\n  %+v", rep.Vulnerabilities, tt.want)
			}
		})
	}
}

func equalVulns(a, b []Vulnerability) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestScanWithoutDB(t *testing.T) {
	f := testFixture(t)
	s, dbDir := newScanner(t, false)

	_, err := s.Scan(context.Background(), request(f.alpine))
	if !errors.Is(err, ErrNoDB) || !strings.Contains(err.Error(), "no vulnerability DB in "+filepath.Join(dbDir, "db")) {
		t.Fatalf("Scan without a DB = %v", err)
	}
	if _, err := s.DBInfo(); !errors.Is(err, ErrNoDB) {
		t.Errorf("DBInfo without a DB = %v", err)
	}
	if _, err := os.Stat(filepath.Join(dbDir, "db", "trivy.db")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the scanner created a DB file: %v", err)
	}

	// Installing a DB later is picked up without a restart.
	if err := scantest.WriteDB(dbDir, scantest.Fixture()); err != nil {
		t.Fatal(err)
	}
	rep, err := s.Scan(context.Background(), request(f.alpine))
	if err != nil || !equalVulns(rep.Vulnerabilities, []Vulnerability{muslVuln}) {
		t.Fatalf("Scan after installing a DB = %+v, %v", rep, err)
	}
}

func TestDBUpdateIsNoticed(t *testing.T) {
	f := testFixture(t)
	s, dbDir := newScanner(t, true)
	if rep, err := s.Scan(context.Background(), request(f.alpine)); err != nil || len(rep.Vulnerabilities) != 1 {
		t.Fatalf("first scan = %+v, %v", rep, err)
	}

	// A newer DB in which musl has no advisory any more: the next scan uses it.
	adv := scantest.Fixture()
	adv.UpdatedAt = adv.UpdatedAt.Add(24 * time.Hour)
	adv.Advisories = adv.Advisories[1:]
	if err := scantest.WriteDB(dbDir, adv); err != nil {
		t.Fatal(err)
	}
	info, err := s.DBInfo()
	if err != nil || info.Version != "2026-01-03T03:04:05Z" || info.Schema != 2 || info.DownloadedAt.IsZero() {
		t.Fatalf("DBInfo after update = %+v, %v", info, err)
	}
	rep, err := s.Scan(context.Background(), request(f.alpine))
	if err != nil || rep.DBVersion != "2026-01-03T03:04:05Z" || len(rep.Vulnerabilities) != 0 {
		t.Fatalf("scan with the new DB = %+v, %v", rep, err)
	}
}

func TestScanErrors(t *testing.T) {
	f := testFixture(t)
	s, _ := newScanner(t, true)
	missing := f.reg.Host + "/ns/alpine@sha256:" + strings.Repeat("0", 64)
	tests := []struct {
		name string
		req  Request
		want error
	}{
		{"no image", Request{}, ErrInvalidRequest},
		{"bad reference", Request{Image: "UPPER/Case:::"}, ErrInvalidRequest},
		{"password without user", Request{Image: f.alpine, Password: "x"}, ErrInvalidRequest},
		{"wrong password", Request{Image: f.alpine, Username: testUser, Password: "wrong", Insecure: true}, ErrRegistryDenied},
		{"no credentials", Request{Image: f.alpine, Insecure: true}, ErrRegistryDenied},
		{"unknown digest", request(missing), ErrImageNotFound},
		{"unknown repository", request(f.reg.Host + "/ns/nothing:latest"), ErrImageNotFound},
		{"registry down", request("127.0.0.1:1/ns/app:latest"), ErrRegistry},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.Scan(context.Background(), tt.req)
			if !errors.Is(err, tt.want) {
				t.Errorf("Scan = %v, want %v", err, tt.want)
			}
		})
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Scan(ctx, request(f.alpine)); !errors.Is(err, context.Canceled) {
		t.Errorf("Scan with a cancelled context = %v", err)
	}
}

// TestRescanUsesLayerCache checks that a layer analysed once is neither downloaded nor analysed again, and
// that no temporary files are left behind.
func TestRescanUsesLayerCache(t *testing.T) {
	f := testFixture(t)
	dbDir := t.TempDir()
	if err := scantest.WriteDB(dbDir, scantest.Fixture()); err != nil {
		t.Fatal(err)
	}
	cacheDir := t.TempDir()
	layerDigest := firstLayer(t, f.alpineImg)

	for round := 1; round <= 2; round++ {
		// A new Scanner each round: the cache lives on disk, not in the process.
		s, err := New(Options{DBDir: dbDir, CacheDir: cacheDir})
		if err != nil {
			t.Fatal(err)
		}
		before := f.reg.BlobGets(layerDigest.String())
		rep, err := s.Scan(context.Background(), request(f.alpine))
		if err != nil || !equalVulns(rep.Vulnerabilities, []Vulnerability{muslVuln}) {
			t.Fatalf("round %d: %+v, %v", round, rep, err)
		}
		got := f.reg.BlobGets(layerDigest.String()) - before
		if round == 2 && got != 0 {
			t.Errorf("rescan downloaded the cached layer %d times", got)
		}
		var left []string
		_ = filepath.WalkDir(s.trivyTmp, func(p string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				left = append(left, p)
			}
			return nil
		})
		if len(left) > 0 {
			t.Errorf("round %d: temporary files left behind by a scan: %v", round, left)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(filepath.Join(cacheDir, "fanal", "fanal.db")); err != nil {
		t.Errorf("no layer cache on disk: %v", err)
	}
}

func TestClosedScanner(t *testing.T) {
	f := testFixture(t)
	s, _ := newScanner(t, true)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := s.Scan(context.Background(), request(f.alpine)); !errors.Is(err, errClosed) {
		t.Errorf("Scan after Close = %v", err)
	}
	if _, err := s.DBInfo(); !errors.Is(err, errClosed) {
		t.Errorf("DBInfo after Close = %v", err)
	}
	// The process may open a Scanner again.
	newScanner(t, false)
}

func TestOneScannerPerProcess(t *testing.T) {
	newScanner(t, false)
	if _, err := New(Options{DBDir: t.TempDir(), CacheDir: t.TempDir()}); err == nil {
		t.Fatal("a second Scanner opened while the first is open")
	}
}

// TestExternalDB scans the test images against a DB built elsewhere: by `berth admin scan-db build` (the main
// module's workers/scandb) from its testdata/advisories.json (the same advisories as scantest's), or the one in
// BERTH_SCANNER_DB_DIR:
//
//	BERTH_SCANNER_DB_DIR=/path/to/out GOEXPERIMENT=jsonv2 go test -run TestExternalDB .
func TestExternalDB(t *testing.T) {
	dbDir := os.Getenv("BERTH_SCANNER_DB_DIR")
	if dbDir == "" {
		dbDir = builtDB(t)
	}
	f := testFixture(t)
	s, err := New(Options{DBDir: dbDir, CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for ref, want := range map[string][]Vulnerability{f.alpine: {muslVuln}, f.lodash: {lodashVuln}, f.clean: {}} {
		rep, err := s.Scan(context.Background(), request(ref))
		if err != nil || !equalVulns(rep.Vulnerabilities, want) {
			t.Errorf("%s: %+v, %v; want %+v", ref, rep.Vulnerabilities, err, want)
		}
	}
}

// TestExternalRegistry pushes the test images to Berth's registry — a `berth serve` it starts, or the running
// registry named by BERTH_SCANNER_REGISTRY — and scans them from there, through its token auth:
//
//	BERTH_SCANNER_REGISTRY=127.0.0.1:5000 BERTH_SCANNER_REGISTRY_USER=admin BERTH_SCANNER_REGISTRY_PASSWORD=… \
//	BERTH_SCANNER_REGISTRY_NS=scantest GOEXPERIMENT=jsonv2 go test -run TestExternalRegistry -v .
func TestExternalRegistry(t *testing.T) {
	host := os.Getenv("BERTH_SCANNER_REGISTRY")
	user, password := os.Getenv("BERTH_SCANNER_REGISTRY_USER"), os.Getenv("BERTH_SCANNER_REGISTRY_PASSWORD")
	ns := cmp.Or(os.Getenv("BERTH_SCANNER_REGISTRY_NS"), "scantest")
	if host == "" {
		host, user, password = startBerth(t, ns), "admin", berthAdminPassword
	}
	s, _ := newScanner(t, true)
	images := []struct {
		repo   string
		layers []map[string]string
		want   []Vulnerability
	}{
		{"alpine", []map[string]string{scantest.Alpine322(scantest.APKPackage{Name: "musl", Version: "1.2.5-r8"})}, []Vulnerability{muslVuln}},
		{"node-app", []map[string]string{scantest.NodeModule("lodash", "4.17.20")}, []Vulnerability{lodashVuln}},
	}
	for _, im := range images {
		img, err := scantest.Image(im.layers...)
		if err != nil {
			t.Fatal(err)
		}
		ref, err := scantest.Push(host, user, password, ns+"/"+im.repo, img)
		if err != nil {
			t.Fatal(err)
		}
		rep, err := s.Scan(context.Background(), Request{Image: ref, Username: user, Password: password, Insecure: true})
		if err != nil || !equalVulns(rep.Vulnerabilities, im.want) {
			t.Errorf("%s: %+v, %v", ref, rep.Vulnerabilities, err)
		}
		if _, err := s.Scan(context.Background(), Request{Image: ref, Username: user, Password: password + "x", Insecure: true}); !errors.Is(err, ErrRegistryDenied) {
			t.Errorf("%s with a wrong password: %v", ref, err)
		}
	}
}

// TestScanSBOM: a scan asked for the SBOM reports the image's CycloneDX SBOM beside its findings, listing every
// package (those without findings too); a scan after the first makes it from the layer cache, downloading no
// layer; a scan not asked for it reports none.
func TestScanSBOM(t *testing.T) {
	f := testFixture(t)
	s, _ := newScanner(t, true)
	layerDigest := firstLayer(t, f.alpineImg)
	if rep, err := s.Scan(context.Background(), request(f.clean)); err != nil || rep.SBOM != nil {
		t.Fatalf("a scan without sbom: %v, SBOM %q", err, rep.SBOM)
	}
	for round := 1; round <= 2; round++ {
		req := request(f.alpine)
		req.SBOM = true
		before := f.reg.BlobGets(layerDigest.String())
		rep, err := s.Scan(context.Background(), req)
		if err != nil || !equalVulns(rep.Vulnerabilities, []Vulnerability{muslVuln}) {
			t.Fatalf("round %d: %+v, %v", round, rep, err)
		}
		if got := f.reg.BlobGets(layerDigest.String()) - before; round == 2 && got != 0 {
			t.Errorf("the second SBOM downloaded the cached layer %d times", got)
		}
		var bom struct {
			BOMFormat   string `json:"bomFormat"`
			SpecVersion string `json:"specVersion"`
			Components  []struct {
				Type, Name, Version, Purl string
			} `json:"components"`
		}
		if err := json.Unmarshal(rep.SBOM, &bom); err != nil {
			t.Fatalf("SBOM is not JSON: %v\n%s", err, rep.SBOM)
		}
		found := map[string]string{}
		for _, c := range bom.Components {
			found[c.Name] = c.Version
		}
		if bom.BOMFormat != "CycloneDX" || bom.SpecVersion == "" || found["musl"] != muslVuln.InstalledVersion {
			t.Errorf("round %d: SBOM %s %s, components %v", round, bom.BOMFormat, bom.SpecVersion, found)
		}
	}
}

// firstLayer is the digest of img's first layer.
func firstLayer(t *testing.T, img v1.Image) v1.Hash {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	dg, err := layers[0].Digest()
	if err != nil {
		t.Fatal(err)
	}
	return dg
}
