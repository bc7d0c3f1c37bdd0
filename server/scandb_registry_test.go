package server_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/berth-dev/berth/server/app"
	"github.com/berth-dev/berth/server/app/apptest"
	"github.com/berth-dev/berth/workers/scandb"
)

// buildDB writes a DB of the test advisories with the given UpdatedAt into a new directory.
func buildDB(t testing.TB, updated time.Time) string {
	t.Helper()
	f, err := os.Open(filepath.Join(sourceRoot(t), "workers", "scandb", "testdata", "advisories.json"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	adv, err := scandb.LoadAdvisories(f)
	if err != nil {
		t.Fatal(err)
	}
	adv.UpdatedAt = updated
	dir := t.TempDir()
	if err := scandb.Build(context.Background(), adv, dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

// corruptArtifact is Trivy's artifact shape (one layer of its media type, titled db.tar.gz) whose tar holds a
// metadata.json of a newer DB and a trivy.db that is not a bbolt file.
func corruptArtifact(t testing.TB) *bytes.Buffer {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	meta := `{"Version":2,"NextUpdate":"2026-03-05T00:00:00Z","UpdatedAt":"2026-03-04T00:00:00Z","DownloadedAt":"2026-03-04T00:00:00Z"}`
	for n, body := range map[string]string{"trivy.db": strings.Repeat("not a bolt file ", 512), "metadata.json": meta} {
		if err := tw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return &buf
}

// TestScanDBFromRegistry: the vulnerability DB comes from an OCI artifact in Trivy's format, here mirrored into
// Berth's own registry (a private repository, so with credentials): the first scan finds the advisory's CVEs,
// a newer artifact leads to rescans, and a corrupt one leaves the DB in force, its error shown in
// GET /api/v1/system/scanner.
func TestScanDBFromRegistry(t *testing.T) {
	bin := scannerBin(t)
	t.Setenv("BERTH_SCAN_DB_PASSWORD", apptest.AdminPassword)
	dbDir := t.TempDir()
	in := apptest.Start(t, apptest.Options{Configure: func(c *app.Config) {
		c.ScanDBDir = dbDir
		c.ScannerBin = bin
		c.ScanDBRepository = c.Addr + "/mirror/trivy-db:2"
		c.ScanDBUsername = "admin"
		c.ScanDBCheckInterval = 200 * time.Millisecond
	}})
	for _, ns := range []string{"demo", "mirror"} {
		if r := in.Admin(t, "POST", "/api/v1/namespaces", map[string]any{"name": ns, "auto_create_repo": true}); r.Status != 201 {
			t.Fatalf("namespace: %d %s", r.Status, r.Body)
		}
	}
	repo := in.Host + "/mirror/trivy-db:2"
	status := func() map[string]any {
		t.Helper()
		r := in.Admin(t, "GET", "/api/v1/system/scanner", nil)
		if r.Status != 200 {
			t.Fatalf("GET /api/v1/system/scanner: %d %s", r.Status, r.Body)
		}
		return r.JSON
	}
	waitStatus := func(what string, ok func(map[string]any) bool) map[string]any {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			s := status()
			if ok(s) {
				return s
			}
			if time.Now().After(deadline) {
				t.Fatalf("scanner status never %s: %v", what, s)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}

	// Nothing published yet: no DB, and the failed download is reported, also by /readyz (still 200).
	// The check runs every 200 ms: wait for a report between two tries, not during the next one.
	s := waitStatus("reporting the missing artifact", func(s map[string]any) bool { return s["last_error"] != "" && s["state"] != "downloading" })
	if s["state"] != "no_db" || s["db_version"] != "" || s["db_repository"] != repo ||
		!strings.Contains(s["last_error"].(string), "MANIFEST_UNKNOWN") || !strings.Contains(s["reason"].(string), "the download from "+repo+" failed") {
		t.Fatalf("status before any artifact: %v", s)
	}
	resp, err := http.Get(in.URL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	var ready struct {
		Status string
		Checks map[string]json.RawMessage
	}
	err = json.NewDecoder(resp.Body).Decode(&ready)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || ready.Status != "ok" || string(ready.Checks["store"]) != `"ok"` ||
		!strings.Contains(string(ready.Checks["scans"]), `"ok":false`) || !strings.Contains(string(ready.Checks["scans"]), "MANIFEST_UNKNOWN") {
		t.Fatalf("/readyz without a DB: %d %+v %v", resp.StatusCode, ready, err)
	}
	if r := in.Call(t, "", "", "GET", "/api/v1/system/scanner", nil); r.Status != 401 {
		t.Errorf("anonymous GET /api/v1/system/scanner: %d %s", r.Status, r.Body)
	}

	// Publish the DB as Trivy does; the next check downloads it.
	push := func(dir string) {
		t.Helper()
		if _, err := scandb.Push(context.Background(), dir, scandb.Remote{Repository: repo, Username: "admin", Password: apptest.AdminPassword}); err != nil {
			t.Fatal(err)
		}
	}
	push(buildDB(t, time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)))
	s = waitStatus("ready", func(s map[string]any) bool { return s["state"] == "ready" && s["last_error"] == "" })
	if s["db_version"] != "2026-01-02T03:04:05Z" || s["db_updated_at"] != "2026-01-02T03:04:05Z" || s["last_error"] != "" || s["last_download_at"] == nil {
		t.Fatalf("status after the download: %v", s)
	}
	pushImg(t, in, "demo/app:1", fileImage(t, "amd64", vulnerableFiles...))
	scan := waitScan(t, in, "demo/app", "1")
	if scan["status"] != "DONE" || scan["db_version"] != "2026-01-02T03:04:05Z" || fmt.Sprint(vulnsOf(t, scan)) != fmt.Sprint(wantVulns) {
		t.Fatalf("first scan: %v", scan)
	}

	// A newer artifact: downloaded, and the recent images are rescanned with it.
	push(buildDB(t, time.Date(2026, 2, 3, 4, 5, 6, 0, time.UTC)))
	deadline := time.Now().Add(60 * time.Second)
	for {
		scan = waitScan(t, in, "demo/app", "1")
		if scan["status"] == "DONE" && scan["db_version"] == "2026-02-03T04:05:06Z" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("never rescanned with the newer DB: %v", scan)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// A corrupt artifact: the error is shown, the DB in force stays, scans go on with it.
	ref, err := name.ParseReference(repo)
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.Append(mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), scandb.ConfigMediaType),
		mutate.Addendum{Layer: static.NewLayer(corruptArtifact(t).Bytes(), scandb.LayerMediaType), MediaType: scandb.LayerMediaType,
			Annotations: map[string]string{"org.opencontainers.image.title": "db.tar.gz"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img, adminAuth); err != nil {
		t.Fatal(err)
	}
	s = waitStatus("reporting the corrupt artifact", func(s map[string]any) bool { return s["last_error"] != "" })
	if s["state"] != "ready" || s["db_version"] != "2026-02-03T04:05:06Z" || !strings.Contains(s["last_error"].(string), "trivy.db does not open") {
		t.Fatalf("status after a corrupt artifact: %v", s)
	}
	if r := in.Admin(t, "POST", "/api/v1/repositories/demo/app/tags/1/scan", nil); r.Status != 202 {
		t.Fatalf("rescan: %d %s", r.Status, r.Body)
	}
	time.Sleep(200 * time.Millisecond)
	if scan = waitScan(t, in, "demo/app", "1"); scan["status"] != "DONE" || scan["db_version"] != "2026-02-03T04:05:06Z" ||
		fmt.Sprint(vulnsOf(t, scan)) != fmt.Sprint(wantVulns) {
		t.Fatalf("scan after the corrupt artifact: %v", scan)
	}
}
