package server_test

import (
	"archive/tar"
	"compress/gzip"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/berth-dev/berth/server/app/apptest"
)

// bigImage is a linux/amd64 image of one gzipped layer: files, plus size bytes of random data in count files
// under /opt/data. The layer is written under dir.
func bigImage(t testing.TB, dir string, size int64, count int, files map[string]string) v1.Image {
	t.Helper()
	p := filepath.Join(dir, "layer.tar.gz")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	zw, _ := gzip.NewWriterLevel(f, gzip.BestSpeed)
	tw := tar.NewWriter(zw)
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	dirs := map[string]bool{}
	mkdirs := func(name string) {
		var parents []string
		for d := filepath.Dir(name); d != "." && !dirs[d]; d = filepath.Dir(d) {
			parents = append(parents, d)
			dirs[d] = true
		}
		for i := len(parents) - 1; i >= 0; i-- {
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: parents[i] + "/", Mode: 0o755}); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, n := range names {
		mkdirs(n)
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: n, Mode: 0o644, Size: int64(len(files[n]))}); err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(tw, files[n]); err != nil {
			t.Fatal(err)
		}
	}
	rnd := rand.NewChaCha8([32]byte{7})
	for i := range count {
		n := fmt.Sprintf("opt/data/%03d/file%05d.bin", i/1000, i)
		mkdirs(n)
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: n, Mode: 0o644, Size: size / int64(count)}); err != nil {
			t.Fatal(err)
		}
		if _, err := io.CopyN(tw, rnd, size/int64(count)); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []io.Closer{tw, zw, f} {
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
	}
	l, err := tarball.LayerFromFile(p)
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(empty.Image, l)
	if err != nil {
		t.Fatal(err)
	}
	cf, _ := img.ConfigFile()
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// TestScanBench300MB measures through a whole Berth: push of a ~300 MB image → scan DONE, then a rescan of the
// same layers (POST …/scan → DONE), and `trivy image` (the pinned CLI) on the same image. BERTH_SCAN_BENCH=1
// (task bench, which installs the CLI) runs it in full and asserts the bounds (first < 60 s, rescan ≤ 20 %
// of the first). Without it, it runs as a smoke test in the test command: an 8 MB image, 2,000 files, the
// same findings, no time bounds and no CLI.
func TestScanBench300MB(t *testing.T) {
	full := os.Getenv("BERTH_SCAN_BENCH") != ""
	size, many := int64(300<<20), 20000
	if !full {
		size, many = 8<<20, 2000
	}
	dbDir := scanDB(t)
	in := scanInstance(t, dbDir, nil)
	for _, c := range []struct {
		name  string
		count int
	}{{"one-file", 1}, {"many-files", many}} {
		t.Run(c.name, func(t *testing.T) {
			files := alpineFiles("1.2.5-r8")
			for k, v := range nodeFiles("4.17.20") {
				files[k] = v
			}
			img := bigImage(t, t.TempDir(), size, c.count, files)
			size, _ := img.Size()
			layers, _ := img.Layers()
			ls, _ := layers[0].Size()
			tag := c.name
			start := time.Now()
			pushImg(t, in, "demo/big:"+tag, img)
			pushed := time.Now()
			s := waitScan(t, in, "demo/big", tag)
			first := time.Since(pushed)
			if s["status"] != "DONE" || len(vulnsOf(t, s)) != 2 {
				t.Fatalf("scan: %v", s)
			}
			r := in.Admin(t, "POST", "/api/v1/repositories/demo/big/tags/"+tag+"/scan", nil)
			if r.Status != 202 {
				t.Fatalf("rescan: %d %s", r.Status, r.Body)
			}
			rstart := time.Now()
			for {
				s = waitScan(t, in, "demo/big", tag)
				if s["status"] == "DONE" {
					break
				}
			}
			rescan := time.Since(rstart)
			t.Logf("image %s: layer %.0f MB gzipped (manifest %d B); push %v; push→scan DONE %v; rescan %v (%.1f %% of the first)",
				c.name, float64(ls)/1e6, size, pushed.Sub(start).Round(time.Millisecond), first.Round(time.Millisecond),
				rescan.Round(time.Millisecond), 100*rescan.Seconds()/first.Seconds())
			if !full {
				return
			}
			if first > 60*time.Second || rescan > first/5 {
				t.Errorf("first scan %v (bound 60 s), rescan %v (bound 20 %% of the first)", first, rescan)
			}
			trivyCLI(t, in, dbDir, "demo/big:"+tag)
		})
	}
}

// trivyCLI times `trivy image` (the pinned CLI, when on PATH) on the same image in Berth, offline on the same DB:
// with an empty cache, then again with the cache it filled.
func trivyCLI(t *testing.T, in *apptest.Instance, dbDir, ref string) {
	bin, err := exec.LookPath("trivy")
	if err != nil {
		t.Fatal("trivy CLI not on PATH: task bench installs it (scripts/install-bench-deps.sh)")
	}
	cache := t.TempDir()
	if err := os.MkdirAll(filepath.Join(cache, "db"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"trivy.db", "metadata.json"} {
		b, err := os.ReadFile(filepath.Join(dbDir, "db", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(cache, "db", f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var times []time.Duration
	for range 2 {
		cmd := exec.Command(bin, "image", "--cache-dir", cache, "--offline-scan", "--skip-db-update", "--skip-java-db-update",
			"--skip-check-update", "--scanners", "vuln", "--image-src", "remote", "--insecure", "--format", "json", "--quiet", in.Host+"/"+ref)
		cmd.Env = append(os.Environ(), "TRIVY_USERNAME=admin", "TRIVY_PASSWORD="+apptest.AdminPassword, "TMPDIR="+t.TempDir())
		start := time.Now()
		out, err := cmd.CombinedOutput()
		times = append(times, time.Since(start))
		if err != nil || !strings.Contains(string(out), "CVE-2025-26519") {
			t.Errorf("trivy image: %v\n%.2000s", err, out)
			return
		}
	}
	t.Logf("trivy image CLI on %s: %v, again with its cache %v", ref, times[0].Round(time.Millisecond), times[1].Round(time.Millisecond))
}
