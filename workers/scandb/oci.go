package scandb

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	trivydb "github.com/aquasecurity/trivy-db/pkg/db"
	"github.com/aquasecurity/trivy-db/pkg/metadata"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	bolt "go.etcd.io/bbolt"
)

// Trivy's DB artifact (ghcr.io/aquasecurity/trivy-db:2, pushed by Trivy with oras): an OCI manifest with one
// layer of LayerMediaType, titled db.tar.gz, a gzipped tar holding trivy.db and metadata.json.
const (
	LayerMediaType  = "application/vnd.aquasec.trivy.db.layer.v1.tar+gzip"
	ConfigMediaType = "application/vnd.aquasec.trivy.config.v1+json"
	layerTitle      = "db.tar.gz"
	titleAnnotation = "org.opencontainers.image.title"
	// DefaultRepository is where Trivy itself downloads its DB from.
	DefaultRepository = "ghcr.io/aquasecurity/trivy-db:2"
	// maxDBBytes bounds a download (Trivy's DB is under 1 GiB uncompressed).
	maxDBBytes = 4 << 30
)

// Remote says where a DB artifact lives and how to reach it.
type Remote struct {
	Repository string // e.g. ghcr.io/aquasecurity/trivy-db:2, or 127.0.0.1:5000/mirror/trivy-db:2
	Username   string // with Password: HTTP Basic / token login; empty: anonymous
	Password   string
	// Insecure allows plain HTTP (and unverified TLS). Loopback and private addresses use plain HTTP anyway.
	Insecure bool
}

func (r Remote) ref() (name.Reference, error) {
	var opts []name.Option
	if r.Insecure {
		opts = append(opts, name.Insecure)
	}
	ref, err := name.ParseReference(r.Repository, opts...)
	if err != nil {
		return nil, fmt.Errorf("scan DB repository %q: %w", r.Repository, err)
	}
	return ref, nil
}

func (r Remote) options(ctx context.Context) []remote.Option {
	auth := authn.Anonymous
	if r.Username != "" {
		auth = &authn.Basic{Username: r.Username, Password: r.Password}
	}
	return []remote.Option{remote.WithContext(ctx), remote.WithAuth(auth)}
}

// Pack makes Trivy's DB artifact from dir/db/trivy.db and dir/db/metadata.json (dir as given to Build).
func Pack(dir string) (v1.Image, error) {
	if _, err := ReadMetadata(dir); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, p := range []string{trivydb.Path(filepath.Join(dir, "db")), metadata.Path(filepath.Join(dir, "db"))} {
		if err := addFile(tw, p); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, ConfigMediaType)
	return mutate.Append(img, mutate.Addendum{
		Layer:       static.NewLayer(buf.Bytes(), LayerMediaType),
		Annotations: map[string]string{titleAnnotation: layerTitle},
		MediaType:   LayerMediaType,
	})
}

func addFile(tw *tar.Writer, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	hdr := &tar.Header{Name: filepath.Base(path), Mode: 0o644, Size: fi.Size(), ModTime: fi.ModTime(), Typeflag: tar.TypeReg}
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	_, err = io.Copy(tw, f)
	return err
}

// Push packs the DB in dir as Trivy's artifact and pushes it to r.Repository; it returns the manifest digest.
func Push(ctx context.Context, dir string, r Remote) (string, error) {
	img, err := Pack(dir)
	if err != nil {
		return "", err
	}
	ref, err := r.ref()
	if err != nil {
		return "", err
	}
	if err := remote.Write(ref, img, r.options(ctx)...); err != nil {
		return "", fmt.Errorf("push the DB artifact to %s: %w", r.Repository, err)
	}
	d, err := img.Digest()
	return d.String(), err
}

// RemoteDigest is the manifest digest of the DB artifact at r, without downloading it.
func RemoteDigest(ctx context.Context, r Remote) (string, error) {
	ref, err := r.ref()
	if err != nil {
		return "", err
	}
	desc, err := remote.Head(ref, r.options(ctx)...)
	if err != nil {
		return "", fmt.Errorf("look up %s: %w", r.Repository, err)
	}
	return desc.Digest.String(), nil
}

// Download fetches the DB artifact at r, checks it (one layer of Trivy's media type, a gzipped tar holding a
// readable trivy.db with Trivy's buckets and a metadata.json of the schema this Trivy reads) and installs it in
// dir/db: trivy.db first, metadata.json last, as Build does. Anything wrong leaves the DB in dir untouched.
// It returns the artifact's manifest digest and the new DB's metadata.
func Download(ctx context.Context, r Remote, dir string) (string, Metadata, error) {
	ref, err := r.ref()
	if err != nil {
		return "", Metadata{}, err
	}
	img, err := remote.Image(ref, r.options(ctx)...)
	if err != nil {
		return "", Metadata{}, fmt.Errorf("fetch %s: %w", r.Repository, err)
	}
	digest, err := img.Digest()
	if err != nil {
		return "", Metadata{}, err
	}
	m, err := img.Manifest()
	if err != nil {
		return "", Metadata{}, fmt.Errorf("read the manifest of %s: %w", r.Repository, err)
	}
	if len(m.Layers) != 1 || string(m.Layers[0].MediaType) != LayerMediaType {
		return "", Metadata{}, fmt.Errorf("%s is not a Trivy DB artifact: want one layer of %s, got %s", r.Repository,
			LayerMediaType, describeLayers(m.Layers))
	}
	if m.Layers[0].Size > maxDBBytes {
		return "", Metadata{}, fmt.Errorf("%s: DB layer of %d bytes is over the %d byte limit", r.Repository, m.Layers[0].Size, int64(maxDBBytes))
	}
	layers, err := img.Layers()
	if err != nil {
		return "", Metadata{}, err
	}
	if err := os.MkdirAll(filepath.Join(dir, "db"), 0o755); err != nil {
		return "", Metadata{}, err
	}
	tmp, err := os.MkdirTemp(dir, ".db-download-")
	if err != nil {
		return "", Metadata{}, err
	}
	defer os.RemoveAll(tmp)
	rc, err := layers[0].Compressed() // verifies the digest as it reads
	if err != nil {
		return "", Metadata{}, fmt.Errorf("fetch the DB layer of %s: %w", r.Repository, err)
	}
	defer rc.Close()
	if err := extractDB(ctx, rc, tmp); err != nil {
		return "", Metadata{}, fmt.Errorf("%s: %w", r.Repository, err)
	}
	// Read to the end: the digest is checked there.
	if _, err := io.Copy(io.Discard, rc); err != nil {
		return "", Metadata{}, fmt.Errorf("%s: DB layer: %w", r.Repository, err)
	}
	meta, err := checkDB(tmp)
	if err != nil {
		return "", Metadata{}, fmt.Errorf("%s: %w", r.Repository, err)
	}
	// Trivy records when it downloaded the DB (a zero DownloadedAt reads as a corrupt DB).
	mc := metadata.NewClient(tmp)
	tm, err := mc.Get()
	if err != nil {
		return "", Metadata{}, err
	}
	tm.DownloadedAt = time.Now().UTC()
	if err := mc.Update(tm); err != nil {
		return "", Metadata{}, err
	}
	meta.DownloadedAt = tm.DownloadedAt
	for _, n := range []string{"trivy.db", "metadata.json"} {
		if err := os.Rename(filepath.Join(tmp, n), filepath.Join(dir, "db", n)); err != nil {
			return "", Metadata{}, fmt.Errorf("install %s: %w", n, err)
		}
	}
	return digest.String(), meta, nil
}

func describeLayers(ls []v1.Descriptor) string {
	if len(ls) == 0 {
		return "no layer"
	}
	s := fmt.Sprintf("%d layer(s):", len(ls))
	for _, l := range ls {
		s += " " + string(l.MediaType)
	}
	return s
}

// extractDB writes trivy.db and metadata.json from the gzipped tar r into dir, and nothing else.
func extractDB(ctx context.Context, r io.Reader, dir string) error {
	zr, err := gzip.NewReader(r)
	if err != nil {
		return fmt.Errorf("DB layer is not gzip: %w", err)
	}
	tr := tar.NewReader(zr)
	got := map[string]bool{}
	var total int64
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("DB layer: broken tar: %w", err)
		}
		n := filepath.Base(filepath.Clean(hdr.Name))
		if hdr.Typeflag != tar.TypeReg || (n != "trivy.db" && n != "metadata.json") {
			continue
		}
		total += hdr.Size
		if total > maxDBBytes {
			return fmt.Errorf("DB layer: over %d bytes uncompressed", int64(maxDBBytes))
		}
		f, err := os.OpenFile(filepath.Join(dir, n), os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
		if err != nil {
			return err
		}
		_, err = io.Copy(f, tr)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("DB layer: %s: %w", n, err)
		}
		got[n] = true
	}
	for _, n := range []string{"trivy.db", "metadata.json"} {
		if !got[n] {
			return fmt.Errorf("DB layer holds no %s", n)
		}
	}
	return nil
}

// checkDB checks dir holds a trivy.db that bbolt opens with Trivy's vulnerability bucket, and a metadata.json
// of this Trivy's schema.
func checkDB(dir string) (Metadata, error) {
	m, err := metadata.NewClient(dir).Get()
	if err != nil {
		return Metadata{}, fmt.Errorf("DB metadata.json: %w", err)
	}
	if m.Version != SchemaVersion {
		return Metadata{}, fmt.Errorf("DB has schema version %d, want %d (Trivy v0.74 reads trivy-db:%d)", m.Version, SchemaVersion, SchemaVersion)
	}
	db, err := bolt.Open(filepath.Join(dir, "trivy.db"), 0o444, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		return Metadata{}, fmt.Errorf("DB trivy.db does not open: %w", err)
	}
	defer db.Close()
	if err := db.View(func(tx *bolt.Tx) error {
		if tx.Bucket([]byte("vulnerability")) == nil {
			return errors.New("DB trivy.db has no vulnerability bucket")
		}
		return nil
	}); err != nil {
		return Metadata{}, err
	}
	return Metadata{Version: m.Version, UpdatedAt: m.UpdatedAt, NextUpdate: m.NextUpdate, DownloadedAt: m.DownloadedAt}, nil
}
