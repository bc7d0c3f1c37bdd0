package scanner

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/workers/scanner/internal/scantest"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// TestBenchScanTimes measures first scans and rescans (layers cached) of a tiny image and of an image with
// a ~300 MB layer, with BERTH_SCANNER_BENCH=1 (task bench):
//
//	BERTH_SCANNER_BENCH=1 GOEXPERIMENT=jsonv2 go test -run TestBenchScanTimes -v .
//
// BERTH_SCANNER_BENCH_MB changes the size of the big file (default 300 MiB).
func TestBenchScanTimes(t *testing.T) {
	// Without BERTH_SCANNER_BENCH it runs as a smoke test (a 4 MiB layer, 2,000 files, no time bounds), so the
	// benchmark keeps working.
	full := os.Getenv("BERTH_SCANNER_BENCH") != ""
	mb, packages := 300, 2000
	if !full {
		mb, packages = 4, 200
	}
	if v := os.Getenv("BERTH_SCANNER_BENCH_MB"); v != "" {
		var err error
		if mb, err = strconv.Atoi(v); err != nil {
			t.Fatal(err)
		}
	}
	f := testFixture(t)
	// By default images go to the test registry; BERTH_SCANNER_REGISTRY (see TestExternalRegistry) sends
	// them to a running one, e.g. Berth's, to measure through its token auth and blob store.
	host, user, password, ns := f.reg.Host, testUser, testPassword, "ns"
	if h := os.Getenv("BERTH_SCANNER_REGISTRY"); h != "" {
		host, user, password = h, os.Getenv("BERTH_SCANNER_REGISTRY_USER"), os.Getenv("BERTH_SCANNER_REGISTRY_PASSWORD")
		ns = cmp.Or(os.Getenv("BERTH_SCANNER_REGISTRY_NS"), "scantest")
	}
	push := func(repo string, img v1.Image) string {
		ref, err := scantest.Push(host, user, password, ns+"/"+repo, img)
		if err != nil {
			t.Fatal(err)
		}
		return ref
	}
	tiny, err := scantest.Image(scantest.Alpine322(scantest.APKPackage{Name: "musl", Version: "1.2.5-r8"}), map[string]string{"etc/motd": "hi\n"})
	if err != nil {
		t.Fatal(err)
	}
	tinyRef := push("tiny", tiny)
	dbDir := t.TempDir()
	if err := scantest.WriteDB(dbDir, scantest.Fixture()); err != nil {
		t.Fatal(err)
	}
	scanOnce := func(t *testing.T, s *Scanner, ref string) time.Duration {
		t.Helper()
		bytesBefore := f.reg.BlobBytes()
		start := time.Now()
		rep, err := s.Scan(context.Background(), Request{Image: ref, Username: user, Password: password, Insecure: true})
		d := time.Since(start)
		if err != nil || !equalVulns(rep.Vulnerabilities, []Vulnerability{muslVuln}) {
			t.Fatalf("scan %s: %+v, %v", ref, rep, err)
		}
		if host == f.reg.Host {
			t.Logf("  scan took %v, downloaded %d bytes of blobs", d.Round(time.Microsecond), f.reg.BlobBytes()-bytesBefore)
		} else {
			t.Logf("  scan took %v", d.Round(time.Microsecond))
		}
		return d
	}
	measure := func(t *testing.T, ref string) (first, rescan, reopened time.Duration) {
		cacheDir := t.TempDir()
		s, err := New(Options{DBDir: dbDir, CacheDir: cacheDir})
		if err != nil {
			t.Fatal(err)
		}
		first = scanOnce(t, s, ref)
		const n = 3
		for range n {
			rescan += scanOnce(t, s, ref)
		}
		rescan /= n
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		// As after a restart of berth-scanner: the cache is read back from disk.
		s, err = New(Options{DBDir: dbDir, CacheDir: cacheDir})
		if err != nil {
			t.Fatal(err)
		}
		reopened = scanOnce(t, s, ref)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		return first, rescan, reopened
	}

	first, rescan, reopened := measure(t, tinyRef)
	t.Logf("tiny image (2 layers, a few KB): first %v, rescan %v, rescan after reopen %v", first, rescan, reopened)

	big := func(t *testing.T, name string, count int, files map[string]string) {
		build := time.Now()
		img, err := scantest.BigImage(t.TempDir(), int64(mb)<<20, count, files)
		if err != nil {
			t.Fatal(err)
		}
		ref := push(name, img)
		layers, _ := img.Layers()
		var compressed int64
		for _, l := range layers {
			n, _ := l.Size()
			compressed += n
		}
		t.Logf("%s: %d MiB of random data in %d file(s) + %d other files, one %d MB layer, built and pushed in %v",
			name, mb, count, len(files), compressed/1e6, time.Since(build).Round(time.Millisecond))

		first, rescan, reopened := measure(t, ref)
		t.Logf("%s: first %v, rescan %v (%.1f%% of first), rescan after reopen %v",
			name, first, rescan, 100*rescan.Seconds()/first.Seconds(), reopened)
		if !full {
			return
		}
		if first > 60*time.Second {
			t.Errorf("first scan of %s took %v, want < 60 s", name, first)
		}
		if rescan*5 > first || reopened*5 > first {
			t.Errorf("rescans of %s took %v / %v, want ≤ 20%% of the first scan (%v)", name, rescan, reopened, first)
		}
	}
	alpine := scantest.Alpine322(scantest.APKPackage{Name: "musl", Version: "1.2.5-r8"})
	big(t, "big-one-file", 1, alpine)

	// The same volume as 20,000 files next to 2,000 npm packages (a tenth in smoke mode): closer to a real application layer,
	// where the walker and the analyzers see many paths.
	many := scantest.Merge(alpine)
	for i := range packages {
		for k, v := range scantest.NodeModule(fmt.Sprintf("pkg%04d", i), "1.0.0") {
			many[strings.Replace(k, "app/", fmt.Sprintf("app%d/", i/100), 1)] = v
		}
	}
	big(t, "big-many-files", 10*packages, many)
}

// BenchmarkRescanTiny is the steady-state cost of scanning a small image whose layers are cached:
// registry round trips for manifest and config, cache lookups, and DB matching.
func BenchmarkRescanTiny(b *testing.B) {
	f := testFixture(b)
	dbDir := b.TempDir()
	if err := scantest.WriteDB(dbDir, scantest.Fixture()); err != nil {
		b.Fatal(err)
	}
	s, err := New(Options{DBDir: dbDir, CacheDir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	for b.Loop() {
		if _, err := s.Scan(context.Background(), request(f.alpine)); err != nil {
			b.Fatal(err)
		}
	}
}
