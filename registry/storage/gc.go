package storage

import (
	"context"
	"errors"
	"strings"

	"github.com/berth-dev/berth/registry/reference"
	"github.com/berth-dev/berth/registry/storage/driver"
)

// What the garbage collector reads and the push path touches. A touch
// rewrites a link with its own content, so its modification time says "in
// use since then"; the collector never deletes what was touched after its
// cutoff.

// ManifestRevisionInfos lists a repository's manifests with the time their
// revision link was last written (pushed, or touched by an index naming them).
func (s *Store) ManifestRevisionInfos(ctx context.Context, name string) ([]LinkInfo, error) {
	ds, err := s.ManifestRevisions(ctx, name)
	if err != nil {
		return nil, err
	}
	return s.linkInfos(ctx, ds, func(d reference.Digest) pathSpec { return manifestRevisionLinkPathSpec{name: name, digest: d} })
}

// ManifestRevisionInfo returns one manifest's revision link time, or
// ErrManifestUnknown.
func (s *Store) ManifestRevisionInfo(ctx context.Context, name string, dg reference.Digest) (LinkInfo, error) {
	p, err := mustPath(manifestRevisionLinkPathSpec{name: name, digest: dg})
	if err != nil {
		return LinkInfo{}, err
	}
	fi, err := s.d.Stat(ctx, p)
	if err != nil {
		return LinkInfo{}, mapNotFound(err, ErrManifestUnknown)
	}
	return LinkInfo{Digest: dg, ModTime: fi.ModTime()}, nil
}

// TouchManifest rewrites a manifest's revision link (same media type), so a
// collection running now keeps it. ErrManifestUnknown when it is gone.
func (s *Store) TouchManifest(ctx context.Context, name string, dg reference.Digest) error {
	mt, err := s.ManifestMediaType(ctx, name, dg)
	if err != nil {
		return err
	}
	p, err := mustPath(manifestRevisionLinkPathSpec{name: name, digest: dg})
	if err != nil {
		return err
	}
	return s.d.PutContent(ctx, p, []byte(mt))
}

// TouchBlob rewrites the blob store's note that repository name uses the
// blob, so a collection running now keeps the blob.
func (s *Store) TouchBlob(ctx context.Context, name string, dg reference.Digest) error {
	rp, err := mustPath(blobRepositoryLinkPathSpec{digest: dg, name: name})
	if err != nil {
		return err
	}
	return s.d.PutContent(ctx, rp, nil)
}

// BlobUsers lists the repositories noted as using a blob (linked or
// touched), each with the time of its last note.
func (s *Store) BlobUsers(ctx context.Context, dg reference.Digest) (map[string]LinkInfo, error) {
	root, err := mustPath(blobRepositoriesPathSpec{digest: dg})
	if err != nil {
		return nil, err
	}
	out := map[string]LinkInfo{}
	err = s.d.Walk(ctx, root, func(fi driver.FileInfo) error {
		p := fi.Path()
		if fi.IsDir() || !strings.HasSuffix(p, "/link") {
			return nil
		}
		name := strings.TrimSuffix(strings.TrimPrefix(p, root+"/"), "/link")
		if reference.ValidName(name) {
			out[name] = LinkInfo{Digest: dg, ModTime: fi.ModTime()}
		}
		return nil
	})
	if err != nil && !driver.IsNotFound(err) {
		return nil, err
	}
	return out, nil
}

// DeleteLayerLink removes a repository's link to a blob and the blob store's
// note of it; a link already gone is not an error.
func (s *Store) DeleteLayerLink(ctx context.Context, name string, dg reference.Digest) error {
	err := s.UnlinkBlob(ctx, name, dg)
	if errors.Is(err, ErrBlobUnknown) {
		return nil
	}
	return err
}
