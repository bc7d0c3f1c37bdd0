package storage

import (
	"context"
	"encoding/json"
	"strings"

	"github.com/berth-dev/berth/registry/storage/driver"
)

// DeleteRepository removes everything the storage holds under a repository's
// name: tags, manifest links, blob links, referrer entries, the blob store's
// hints naming it, and its upload sessions (an upload in flight fails at its
// next step). Blob data stays for the garbage collector, which frees what no
// other repository references. Repositories nested under the name
// (name/child) are not touched. A repository that was never written is not an
// error.
func (s *Store) DeleteRepository(ctx context.Context, name string) error {
	rp, err := mustPath(repositoryPathSpec{name: name})
	if err != nil {
		return err
	}
	links, err := s.LayerLinks(ctx, name)
	if err != nil {
		return err
	}
	for _, dg := range links {
		hint, err := mustPath(blobRepositoryLinkPathSpec{digest: dg, name: name})
		if err != nil {
			return err
		}
		if err := s.d.Delete(ctx, strings.TrimSuffix(hint, "/link")); err != nil && !driver.IsNotFound(err) {
			return err
		}
	}
	if err := s.deleteUploadsOf(ctx, name); err != nil {
		return err
	}
	children, err := s.d.List(ctx, rp)
	if driver.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	nested := false
	for _, c := range children {
		if !strings.HasPrefix(c[strings.LastIndexByte(c, '/')+1:], "_") {
			nested = true
			continue
		}
		if err := s.d.Delete(ctx, c); err != nil && !driver.IsNotFound(err) {
			return err
		}
	}
	if !nested {
		if err := s.d.Delete(ctx, rp); err != nil && !driver.IsNotFound(err) {
			return err
		}
	}
	return nil
}

// deleteUploadsOf removes the upload sessions of a repository.
func (s *Store) deleteUploadsOf(ctx context.Context, name string) error {
	ids, err := s.d.List(ctx, uploadsRoot)
	if driver.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, p := range ids {
		id := p[strings.LastIndexByte(p, '/')+1:]
		if !ValidUploadID(id) {
			continue
		}
		ip, _ := mustPath(uploadInfoPathSpec{id: id})
		b, err := s.d.GetContent(ctx, ip)
		if err != nil {
			continue // finished meanwhile, or not fully started
		}
		var info UploadInfo
		if json.Unmarshal(b, &info) != nil || info.Repository != name {
			continue
		}
		s.uploads.mu.Lock()
		if st, ok := s.uploads.m[id]; ok && st.mu.TryLock() {
			st.gone = true
			delete(s.uploads.m, id)
			st.mu.Unlock()
		}
		s.uploads.mu.Unlock()
		// A request holding the session finds its data gone at its next step.
		if err := s.d.Delete(ctx, p); err != nil && !driver.IsNotFound(err) {
			return err
		}
	}
	return nil
}
