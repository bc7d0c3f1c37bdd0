// Package storage owns the registry's on-storage layout (see paths.go): blobs,
// per-repository links, manifests, tags, referrers and upload sessions, on top
// of a driver.StorageDriver. It knows nothing about HTTP or auth.
package storage

import (
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/berth-dev/berth/registry/reference"
	"github.com/berth-dev/berth/registry/storage/driver"
)

// Errors callers branch on.
var (
	ErrBlobUnknown     = errors.New("blob unknown")
	ErrManifestUnknown = errors.New("manifest unknown")
	ErrTagUnknown      = errors.New("tag unknown")
	ErrUploadUnknown   = errors.New("upload unknown")
	ErrDigestMismatch  = errors.New("digest mismatch")
	ErrRepoUnknown     = errors.New("repository unknown")
)

// Store is the registry's storage layer.
type Store struct {
	d       driver.StorageDriver
	uploads *uploadSessions
}

// New returns a store over d.
func New(d driver.StorageDriver) *Store {
	return &Store{d: d, uploads: newUploadSessions()}
}

// Driver returns the underlying driver.
func (s *Store) Driver() driver.StorageDriver { return s.d }

func mustPath(spec pathSpec) (string, error) { return pathFor(spec) }

func mapNotFound(err, to error) error {
	if driver.IsNotFound(err) {
		return to
	}
	return err
}

// BlobStat returns the size and modification time of a blob in the global store.
func (s *Store) BlobStat(ctx context.Context, dg reference.Digest) (int64, time.Time, error) {
	p, err := mustPath(blobDataPathSpec{digest: dg})
	if err != nil {
		return 0, time.Time{}, err
	}
	fi, err := s.d.Stat(ctx, p)
	if err != nil {
		return 0, time.Time{}, mapNotFound(err, ErrBlobUnknown)
	}
	if fi.IsDir() {
		return 0, time.Time{}, ErrBlobUnknown
	}
	return fi.Size(), fi.ModTime(), nil
}

// BlobReader opens a blob at offset.
func (s *Store) BlobReader(ctx context.Context, dg reference.Digest, offset int64) (io.ReadCloser, error) {
	p, err := mustPath(blobDataPathSpec{digest: dg})
	if err != nil {
		return nil, err
	}
	rc, err := s.d.Reader(ctx, p, offset)
	if err != nil {
		return nil, mapNotFound(err, ErrBlobUnknown)
	}
	return rc, nil
}

// BlobURL returns a URL the client can read blob dg from directly, "" when the driver has none.
func (s *Store) BlobURL(ctx context.Context, dg reference.Digest) (string, error) {
	r, ok := s.d.(driver.Redirector)
	if !ok {
		return "", nil
	}
	p, err := mustPath(blobDataPathSpec{digest: dg})
	if err != nil {
		return "", err
	}
	return r.RedirectURL(ctx, p)
}

// BlobContent reads a whole (small) blob.
func (s *Store) BlobContent(ctx context.Context, dg reference.Digest) ([]byte, error) {
	p, err := mustPath(blobDataPathSpec{digest: dg})
	if err != nil {
		return nil, err
	}
	b, err := s.d.GetContent(ctx, p)
	if err != nil {
		return nil, mapNotFound(err, ErrBlobUnknown)
	}
	return b, nil
}

// PutBlobContent stores a small blob whose digest the caller verified. It
// always rewrites the file, which also refreshes its age for the garbage
// collector's grace period.
func (s *Store) PutBlobContent(ctx context.Context, dg reference.Digest, b []byte) error {
	if reference.FromBytes(dg.Algorithm(), b) != dg {
		return ErrDigestMismatch
	}
	p, err := mustPath(blobDataPathSpec{digest: dg})
	if err != nil {
		return err
	}
	return s.d.PutContent(ctx, p, b)
}

// DeleteBlob removes a blob from the global store (garbage collection only).
func (s *Store) DeleteBlob(ctx context.Context, dg reference.Digest) error {
	p, err := mustPath(blobDataPathSpec{digest: dg})
	if err != nil {
		return err
	}
	dir := p[:len(p)-len("/data")]
	return mapNotFound(s.d.Delete(ctx, dir), ErrBlobUnknown)
}

// LinkBlob makes a blob servable from a repository.
// It also records the repository under the blob, a hint that lets a mount
// without a source repository find where the blob may be pulled from.
func (s *Store) LinkBlob(ctx context.Context, name string, dg reference.Digest) error {
	p, err := mustPath(layerLinkPathSpec{name: name, digest: dg})
	if err != nil {
		return err
	}
	rp, err := mustPath(blobRepositoryLinkPathSpec{digest: dg, name: name})
	if err != nil {
		return err
	}
	if err := s.d.PutContent(ctx, rp, nil); err != nil {
		return err
	}
	return s.d.PutContent(ctx, p, []byte(dg.String()))
}

// BlobRepositories lists up to limit repositories recorded as having linked
// the blob. The list is a hint: callers check the repository link itself.
func (s *Store) BlobRepositories(ctx context.Context, dg reference.Digest, limit int) ([]string, error) {
	root, err := mustPath(blobRepositoriesPathSpec{digest: dg})
	if err != nil {
		return nil, err
	}
	var out []string
	stop := errors.New("enough")
	err = s.d.Walk(ctx, root, func(fi driver.FileInfo) error {
		p := fi.Path()
		if fi.IsDir() || !strings.HasSuffix(p, "/link") {
			return nil
		}
		name := strings.TrimSuffix(strings.TrimPrefix(p, root+"/"), "/link")
		if reference.ValidName(name) {
			out = append(out, name)
		}
		if len(out) >= limit {
			return stop
		}
		return nil
	})
	if err != nil && !errors.Is(err, stop) && !driver.IsNotFound(err) {
		return nil, err
	}
	return out, nil
}

// RepoBlobStat returns the blob's size when the repository links it and the
// blob exists.
func (s *Store) RepoBlobStat(ctx context.Context, name string, dg reference.Digest) (int64, error) {
	p, err := mustPath(layerLinkPathSpec{name: name, digest: dg})
	if err != nil {
		return 0, err
	}
	if _, err := s.d.Stat(ctx, p); err != nil {
		return 0, mapNotFound(err, ErrBlobUnknown)
	}
	size, _, err := s.BlobStat(ctx, dg)
	return size, err
}

// UnlinkBlob removes a blob from a repository (the data stays until GC).
func (s *Store) UnlinkBlob(ctx context.Context, name string, dg reference.Digest) error {
	p, err := mustPath(layerLinkPathSpec{name: name, digest: dg})
	if err != nil {
		return err
	}
	if rp, err := mustPath(blobRepositoryLinkPathSpec{digest: dg, name: name}); err == nil {
		_ = s.d.Delete(ctx, rp)
	}
	return mapNotFound(s.d.Delete(ctx, strings.TrimSuffix(p, "/link")), ErrBlobUnknown)
}

// PutManifest stores verified manifest bytes and links them in the repository
// with their media type.
func (s *Store) PutManifest(ctx context.Context, name string, dg reference.Digest, mediaType string, payload []byte) error {
	if err := s.PutBlobContent(ctx, dg, payload); err != nil {
		return err
	}
	p, err := mustPath(manifestRevisionLinkPathSpec{name: name, digest: dg})
	if err != nil {
		return err
	}
	return s.d.PutContent(ctx, p, []byte(mediaType))
}

// ManifestMediaType returns the media type of a manifest in the repository,
// or ErrManifestUnknown.
func (s *Store) ManifestMediaType(ctx context.Context, name string, dg reference.Digest) (string, error) {
	p, err := mustPath(manifestRevisionLinkPathSpec{name: name, digest: dg})
	if err != nil {
		return "", err
	}
	b, err := s.d.GetContent(ctx, p)
	if err != nil {
		return "", mapNotFound(err, ErrManifestUnknown)
	}
	return string(b), nil
}

// GetManifest returns a manifest's media type and bytes.
func (s *Store) GetManifest(ctx context.Context, name string, dg reference.Digest) (string, []byte, error) {
	mt, err := s.ManifestMediaType(ctx, name, dg)
	if err != nil {
		return "", nil, err
	}
	b, err := s.BlobContent(ctx, dg)
	if errors.Is(err, ErrBlobUnknown) {
		return "", nil, ErrManifestUnknown
	}
	if err != nil {
		return "", nil, err
	}
	return mt, b, nil
}

// DeleteManifestRevision unlinks a manifest from the repository.
func (s *Store) DeleteManifestRevision(ctx context.Context, name string, dg reference.Digest) error {
	p, err := mustPath(manifestRevisionLinkPathSpec{name: name, digest: dg})
	if err != nil {
		return err
	}
	return mapNotFound(s.d.Delete(ctx, strings.TrimSuffix(p, "/link")), ErrManifestUnknown)
}

// ManifestRevisions lists the manifests of a repository.
func (s *Store) ManifestRevisions(ctx context.Context, name string) ([]reference.Digest, error) {
	p, err := mustPath(manifestRevisionsPathSpec{name: name})
	if err != nil {
		return nil, err
	}
	return s.listDigestDirs(ctx, p)
}

// LayerLinks lists the blobs linked into a repository.
func (s *Store) LayerLinks(ctx context.Context, name string) ([]reference.Digest, error) {
	p, err := mustPath(layersPathSpec{name: name})
	if err != nil {
		return nil, err
	}
	return s.listDigestDirs(ctx, p)
}

// listDigestDirs lists <root>/<alg>/<hex> directories as digests, ignoring
// anything that does not parse.
func (s *Store) listDigestDirs(ctx context.Context, root string) ([]reference.Digest, error) {
	algs, err := s.d.List(ctx, root)
	if err != nil {
		if driver.IsNotFound(err) {
			return nil, nil
		}
		return nil, err
	}
	var out []reference.Digest
	for _, ap := range algs {
		alg := ap[strings.LastIndexByte(ap, '/')+1:]
		hexes, err := s.d.List(ctx, ap)
		if err != nil {
			if driver.IsNotFound(err) {
				continue
			}
			return nil, err
		}
		for _, hp := range hexes {
			d, err := reference.Parse(alg + ":" + hp[strings.LastIndexByte(hp, '/')+1:])
			if err == nil {
				out = append(out, d)
			}
		}
	}
	return out, nil
}

// Tag points a tag at a manifest digest.
func (s *Store) Tag(ctx context.Context, name, tag string, dg reference.Digest) error {
	p, err := mustPath(manifestTagCurrentPathSpec{name: name, tag: tag})
	if err != nil {
		return err
	}
	return s.d.PutContent(ctx, p, []byte(dg.String()))
}

// ResolveTag returns the digest a tag points at.
func (s *Store) ResolveTag(ctx context.Context, name, tag string) (reference.Digest, error) {
	p, err := mustPath(manifestTagCurrentPathSpec{name: name, tag: tag})
	if err != nil {
		return reference.Digest{}, err
	}
	b, err := s.d.GetContent(ctx, p)
	if err != nil {
		return reference.Digest{}, mapNotFound(err, ErrTagUnknown)
	}
	dg, err := reference.Parse(strings.TrimSpace(string(b)))
	if err != nil {
		return reference.Digest{}, ErrTagUnknown
	}
	return dg, nil
}

// DeleteTag removes a tag.
func (s *Store) DeleteTag(ctx context.Context, name, tag string) error {
	p, err := mustPath(manifestTagPathSpec{name: name, tag: tag})
	if err != nil {
		return err
	}
	return mapNotFound(s.d.Delete(ctx, p), ErrTagUnknown)
}

// Tags lists a repository's tags, sorted. A repository without tags gives
// an empty list; one that was never written gives ErrRepoUnknown.
func (s *Store) Tags(ctx context.Context, name string) ([]string, error) {
	p, err := mustPath(manifestTagsPathSpec{name: name})
	if err != nil {
		return nil, err
	}
	entries, err := s.d.List(ctx, p)
	if err != nil {
		if !driver.IsNotFound(err) {
			return nil, err
		}
		rp, _ := mustPath(repositoryPathSpec{name: name})
		if _, serr := s.d.Stat(ctx, rp); serr != nil {
			return nil, ErrRepoUnknown
		}
		return []string{}, nil
	}
	out := make([]string, 0, len(entries))
	for _, e := range entries {
		t := e[strings.LastIndexByte(e, '/')+1:]
		if reference.ValidTag(t) {
			out = append(out, t)
		}
	}
	slices.Sort(out)
	return out, nil
}

// RepositoryExists reports whether anything was ever written to the repository.
func (s *Store) RepositoryExists(ctx context.Context, name string) (bool, error) {
	p, err := mustPath(repositoryPathSpec{name: name})
	if err != nil {
		return false, err
	}
	_, err = s.d.Stat(ctx, p)
	if driver.IsNotFound(err) {
		return false, nil
	}
	return err == nil, err
}

// PutReferrer records that referrer (described by descriptor JSON) refers to subject.
func (s *Store) PutReferrer(ctx context.Context, name string, subject, referrer reference.Digest, descriptor []byte) error {
	p, err := mustPath(referrerLinkPathSpec{name: name, subject: subject, referrer: referrer})
	if err != nil {
		return err
	}
	return s.d.PutContent(ctx, p, descriptor)
}

// DeleteReferrer removes a referrer record.
func (s *Store) DeleteReferrer(ctx context.Context, name string, subject, referrer reference.Digest) error {
	p, err := mustPath(referrerLinkPathSpec{name: name, subject: subject, referrer: referrer})
	if err != nil {
		return err
	}
	err = s.d.Delete(ctx, strings.TrimSuffix(p, "/link"))
	if driver.IsNotFound(err) {
		return nil
	}
	return err
}

// Referrers returns the descriptor JSON of every referrer of subject.
func (s *Store) Referrers(ctx context.Context, name string, subject reference.Digest) ([][]byte, error) {
	p, err := mustPath(referrersSubjectPathSpec{name: name, subject: subject})
	if err != nil {
		return nil, err
	}
	refs, err := s.listDigestDirs(ctx, p)
	if err != nil {
		return nil, err
	}
	out := make([][]byte, 0, len(refs))
	for _, r := range refs {
		lp, err := mustPath(referrerLinkPathSpec{name: name, subject: subject, referrer: r})
		if err != nil {
			return nil, err
		}
		b, err := s.d.GetContent(ctx, lp)
		if err != nil {
			if driver.IsNotFound(err) {
				continue
			}
			return nil, err
		}
		out = append(out, b)
	}
	return out, nil
}

// Repositories lists every repository holding at least one manifest, sorted.
func (s *Store) Repositories(ctx context.Context) ([]string, error) {
	var out []string
	err := s.d.Walk(ctx, repositoriesRoot, func(fi driver.FileInfo) error {
		if !fi.IsDir() {
			return nil
		}
		p := fi.Path()
		base := p[strings.LastIndexByte(p, '/')+1:]
		if strings.HasPrefix(base, "_") {
			if base == "_manifests" {
				out = append(out, strings.TrimPrefix(p[:len(p)-len("/_manifests")], repositoriesRoot+"/"))
			}
			return driver.ErrSkipDir
		}
		return nil
	})
	if err != nil && !driver.IsNotFound(err) {
		return nil, err
	}
	slices.Sort(out)
	return out, nil
}

// AllRepositories lists every repository directory (with manifests or only
// blob links), for garbage collection.
func (s *Store) AllRepositories(ctx context.Context) ([]string, error) {
	var out []string
	err := s.d.Walk(ctx, repositoriesRoot, func(fi driver.FileInfo) error {
		if !fi.IsDir() {
			return nil
		}
		p := fi.Path()
		base := p[strings.LastIndexByte(p, '/')+1:]
		if strings.HasPrefix(base, "_") {
			name := strings.TrimPrefix(p[:len(p)-len(base)-1], repositoriesRoot+"/")
			if len(out) == 0 || out[len(out)-1] != name {
				out = append(out, name)
			}
			return driver.ErrSkipDir
		}
		return nil
	})
	if err != nil && !driver.IsNotFound(err) {
		return nil, err
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// LinkInfo is a blob link of a repository and when it was last written.
type LinkInfo struct {
	Digest  reference.Digest
	ModTime time.Time
}

// LayerLinkInfos lists a repository's blob links with their ages.
func (s *Store) LayerLinkInfos(ctx context.Context, name string) ([]LinkInfo, error) {
	ds, err := s.LayerLinks(ctx, name)
	if err != nil {
		return nil, err
	}
	return s.linkInfos(ctx, ds, func(d reference.Digest) pathSpec { return layerLinkPathSpec{name: name, digest: d} })
}

// linkInfos stats the link that spec names for each digest; links deleted meanwhile are left out.
func (s *Store) linkInfos(ctx context.Context, ds []reference.Digest, spec func(reference.Digest) pathSpec) ([]LinkInfo, error) {
	out := make([]LinkInfo, 0, len(ds))
	for _, d := range ds {
		p, err := mustPath(spec(d))
		if err != nil {
			return nil, err
		}
		fi, err := s.d.Stat(ctx, p)
		if err != nil {
			continue // deleted meanwhile
		}
		out = append(out, LinkInfo{Digest: d, ModTime: fi.ModTime()})
	}
	return out, nil
}

// BlobInfo describes a blob in the global store.
type BlobInfo struct {
	Digest  reference.Digest
	Size    int64
	ModTime time.Time
}

// WalkBlobs calls fn for every blob in the global store.
func (s *Store) WalkBlobs(ctx context.Context, fn func(BlobInfo) error) error {
	root, _ := mustPath(blobsAlgPathSpec{})
	err := s.d.Walk(ctx, root, func(fi driver.FileInfo) error {
		p := fi.Path()
		if fi.IsDir() && strings.HasSuffix(p, "/_repositories") {
			return driver.ErrSkipDir
		}
		if fi.IsDir() || !strings.HasSuffix(p, "/data") {
			return nil
		}
		// /blobs/<alg>/<xx>/<hex>/data
		parts := strings.Split(strings.TrimPrefix(p, root+"/"), "/")
		if len(parts) != 4 {
			return nil
		}
		dg, err := reference.Parse(parts[0] + ":" + parts[2])
		if err != nil {
			return nil
		}
		return fn(BlobInfo{Digest: dg, Size: fi.Size(), ModTime: fi.ModTime()})
	})
	if driver.IsNotFound(err) {
		return nil
	}
	return err
}
