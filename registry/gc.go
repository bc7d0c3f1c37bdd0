package registry

import (
	"context"
	"errors"
	"time"

	"github.com/berth-dev/berth/registry/manifest"
	"github.com/berth-dev/berth/registry/reference"
	"github.com/berth-dev/berth/registry/storage"
)

// GarbageCollect deletes blobs no manifest references. Blobs written, and
// repository links made, within grace are kept, so in-flight pushes are safe;
// manifest pushes wait while a collection runs. Manifests themselves (tagged
// or not) are kept: deleting them is an explicit API call.
func (r *Registry) GarbageCollect(ctx context.Context, grace time.Duration) (GCStats, error) {
	start := time.Now()
	cutoff := start.Add(-grace)
	var st GCStats
	r.gcMu.Lock()
	defer r.gcMu.Unlock()

	marked := map[reference.Digest]struct{}{}
	type link struct {
		name string
		dg   reference.Digest
	}
	var links []link
	repos, err := r.store.AllRepositories(ctx)
	if err != nil {
		return st, err
	}
	for _, name := range repos {
		revs, err := r.store.ManifestRevisions(ctx, name)
		if err != nil {
			return st, err
		}
		for _, dg := range revs {
			st.ManifestsScanned++
			marked[dg] = struct{}{}
			mt, payload, err := r.store.GetManifest(ctx, name, dg)
			if err != nil {
				if errors.Is(err, storage.ErrManifestUnknown) {
					continue
				}
				return st, err
			}
			m, err := manifest.Parse(mt, payload)
			if err != nil {
				r.log.Warn("registry gc: unreadable manifest kept", "repository", name, "digest", dg.String(), "err", err)
				continue
			}
			for _, b := range m.BlobRefs() {
				marked[b] = struct{}{}
			}
		}
		infos, err := r.store.LayerLinkInfos(ctx, name)
		if err != nil {
			return st, err
		}
		for _, li := range infos {
			links = append(links, link{name, li.Digest})
			if li.ModTime.After(cutoff) {
				marked[li.Digest] = struct{}{}
			}
		}
	}
	st.BlobsMarked = len(marked)
	deleted := map[reference.Digest]struct{}{}
	err = r.store.WalkBlobs(ctx, func(b storage.BlobInfo) error {
		if _, ok := marked[b.Digest]; ok || b.ModTime.After(cutoff) {
			return nil
		}
		// re-pushed since the walk saw it? then it is in use again
		if _, mt, err := r.store.BlobStat(ctx, b.Digest); err != nil || mt.After(cutoff) {
			return nil
		}
		if err := r.store.DeleteBlob(ctx, b.Digest); err != nil && !errors.Is(err, storage.ErrBlobUnknown) {
			return err
		}
		deleted[b.Digest] = struct{}{}
		st.BlobsDeleted++
		st.BytesFreed += b.Size
		return nil
	})
	if err != nil {
		return st, err
	}
	for _, l := range links {
		if _, ok := deleted[l.dg]; ok {
			if err := r.store.UnlinkBlob(ctx, l.name, l.dg); err == nil {
				st.LinksRemoved++
			}
		}
	}
	st.Duration = time.Since(start)
	r.log.Info("registry: garbage collection done", "manifests", st.ManifestsScanned, "deleted", st.BlobsDeleted, "freed", st.BytesFreed, "duration", st.Duration)
	return st, nil
}
