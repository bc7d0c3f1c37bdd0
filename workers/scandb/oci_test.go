package scandb

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	ggcrremote "github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// TestPackAsTrivy: the artifact is what Trivy's downloader (pkg/oci) accepts: an OCI manifest with Trivy's
// config media type and one layer of its DB media type, titled db.tar.gz, a gzipped tar of exactly trivy.db
// and metadata.json at its root.
func TestPackAsTrivy(t *testing.T) {
	dir := t.TempDir()
	if err := Build(context.Background(), loadFixture(t), dir); err != nil {
		t.Fatal(err)
	}
	img, err := Pack(dir)
	if err != nil {
		t.Fatal(err)
	}
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	if m.MediaType != types.OCIManifestSchema1 || m.Config.MediaType != ConfigMediaType || len(m.Layers) != 1 ||
		m.Layers[0].MediaType != LayerMediaType || m.Layers[0].Annotations["org.opencontainers.image.title"] != "db.tar.gz" {
		t.Fatalf("manifest = %+v", m)
	}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	rc, err := layers[0].Compressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	zr, err := gzip.NewReader(rc)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	var names []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
	}
	if !slices.Equal(names, []string{"trivy.db", "metadata.json"}) {
		t.Errorf("layer holds %v", names)
	}
	if _, err := Pack(t.TempDir()); err == nil {
		t.Error("Pack of an empty directory succeeded")
	}
}

// TestDownloadKeepsDBOnBadArtifacts: Download installs a pushed DB, and leaves it untouched when a newer
// artifact has another media type, a truncated layer, a DB of another schema, or no trivy.db.
func TestDownloadKeepsDBOnBadArtifacts(t *testing.T) {
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	remote := Remote{Repository: strings.TrimPrefix(srv.URL, "http://") + "/mirror/trivy-db:2"}
	src := t.TempDir()
	if err := Build(context.Background(), loadFixture(t), src); err != nil {
		t.Fatal(err)
	}
	pushed, err := Push(context.Background(), src, remote)
	if err != nil {
		t.Fatal(err)
	}
	dst := t.TempDir()
	got, meta, err := Download(context.Background(), remote, dst)
	if err != nil || got != pushed || meta.DBVersion() != "2026-01-02T03:04:05Z" || meta.DownloadedAt.IsZero() {
		t.Fatalf("Download = %s %+v %v, want %s", got, meta, err, pushed)
	}
	if d, err := RemoteDigest(context.Background(), remote); err != nil || d != pushed {
		t.Fatalf("RemoteDigest = %s %v", d, err)
	}
	want, _ := os.ReadFile(filepath.Join(src, "db", "trivy.db"))
	installed := func() []byte {
		b, err := os.ReadFile(filepath.Join(dst, "db", "trivy.db"))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	if !bytes.Equal(installed(), want) {
		t.Fatal("the installed trivy.db is not the pushed one")
	}

	layerOf := func(files map[string]string, truncate bool) []byte {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		tw := tar.NewWriter(zw)
		for _, n := range []string{"trivy.db", "metadata.json"} {
			if body, ok := files[n]; ok {
				_ = tw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg})
				_, _ = tw.Write([]byte(body))
			}
		}
		_ = tw.Close()
		_ = zw.Close()
		if truncate {
			return buf.Bytes()[:buf.Len()/2]
		}
		return buf.Bytes()
	}
	db := string(want)
	meta3 := `{"Version":3,"UpdatedAt":"2026-03-04T00:00:00Z","NextUpdate":"2026-03-05T00:00:00Z","DownloadedAt":"2026-03-04T00:00:00Z"}`
	meta2 := strings.Replace(meta3, `"Version":3`, `"Version":2`, 1)
	for _, c := range []struct {
		name      string
		layer     []byte
		mediaType types.MediaType
		want      string
	}{
		{"image layer", layerOf(map[string]string{"trivy.db": db, "metadata.json": meta2}, false), types.OCILayer,
			"is not a Trivy DB artifact: want one layer of application/vnd.aquasec.trivy.db.layer.v1.tar+gzip, got 1 layer(s): application/vnd.oci.image.layer.v1.tar+gzip"},
		{"truncated", layerOf(map[string]string{"trivy.db": db, "metadata.json": meta2}, true), LayerMediaType, "unexpected EOF"},
		{"schema 3", layerOf(map[string]string{"trivy.db": db, "metadata.json": meta3}, false), LayerMediaType, "DB has schema version 3, want 2"},
		{"no trivy.db", layerOf(map[string]string{"metadata.json": meta2}, false), LayerMediaType, "DB layer holds no trivy.db"},
		{"not bolt", layerOf(map[string]string{"trivy.db": strings.Repeat("x", 8192), "metadata.json": meta2}, false), LayerMediaType, "DB trivy.db does not open"},
	} {
		t.Run(c.name, func(t *testing.T) {
			img, err := mutate.Append(mutate.MediaType(empty.Image, types.OCIManifestSchema1),
				mutate.Addendum{Layer: static.NewLayer(c.layer, c.mediaType), MediaType: c.mediaType})
			if err != nil {
				t.Fatal(err)
			}
			ref, _ := remote.ref()
			if err := ggcrremote.Write(ref, img); err != nil {
				t.Fatal(err)
			}
			_, _, err = Download(context.Background(), remote, dst)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Download: %v, want an error saying %q", err, c.want)
			}
			if m, err := ReadMetadata(dst); err != nil || m.DBVersion() != "2026-01-02T03:04:05Z" || !bytes.Equal(installed(), want) {
				t.Fatalf("the DB in force changed: %+v %v", m, err)
			}
			if left, _ := filepath.Glob(filepath.Join(dst, ".db-download-*")); len(left) != 0 {
				t.Fatalf("temporary files left: %v", left)
			}
		})
	}
}
