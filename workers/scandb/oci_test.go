package scandb

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"io"
	"slices"
	"testing"

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
