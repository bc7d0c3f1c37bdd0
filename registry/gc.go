package registry

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/berth-dev/berth/registry/manifest"
	"github.com/berth-dev/berth/registry/reference"
	"github.com/berth-dev/berth/registry/storage"
)

// GCOptions tune one garbage collection.
type GCOptions struct {
	// UntaggedGrace: an untagged manifest is deleted once its revision link is
	// older than this (and nothing kept names it).
	UntaggedGrace time.Duration
	// BlobGrace: a blob no kept manifest references is deleted once its data,
	// its repository links and its usage notes are all older than this. It
	// protects pushes whose blobs are uploaded but whose manifest is not yet.
	BlobGrace time.Duration
	// DryRun counts what would be deleted and deletes nothing.
	DryRun bool
}

// GCStats reports a garbage collection run. In a dry run, the counts are
// what would have been deleted.
type GCStats struct {
	ManifestsScanned int
	ManifestsDeleted int
	BlobsMarked      int
	BlobsDeleted     int
	BytesFreed       int64
	LinksRemoved     int
	Duration         time.Duration
}

// gcClockSlack widens every grace: file times come from a coarse clock (and,
// on shared storage, from another machine's), so "written after the
// collection started" is judged with this much margin.
const gcClockSlack = time.Second

// GarbageCollect deletes untagged manifests older than UntaggedGrace — never
// index children, referrers (signatures, SBOMs) or anything else reachable
// from a tagged or young manifest — then blobs that no remaining manifest
// references, older than BlobGrace. It runs while pushes and pulls go on; the
// caller makes sure one collection runs at a time across replicas.
//
// How a concurrent push is never broken:
//   - The push path touches what it is about to rely on: before a manifest is
//     written, each blob it references gets its usage note rewritten
//     (storage.TouchBlob) and each child manifest of an index its revision
//     link (storage.TouchManifest). Uploads and mounts write fresh blob data
//     and links anyway.
//   - The collector computes its cutoffs once, at its start T0 (T0 - grace -
//     slack), and never deletes a manifest or blob whose data, links or notes
//     are newer than its cutoff. Right before each deletion it re-reads those
//     times (and a manifest's tags), so a touch made during the collection
//     saves the target.
//   - After deciding what to delete and before sweeping blobs, it marks again
//     from every manifest written since T0: a manifest whose touch came before
//     T0 but whose write landed after the first mark is seen here.
//   - In this process, a manifest push (check of its references, touches,
//     write) and each single deletion (re-check, delete) exclude each other
//     (gcMu), so no push can pass its reference check on a blob between the
//     collector's re-check and its delete. Across replicas that gap is the
//     microseconds between a re-check and the delete; a push that loses it gets
//     MANIFEST_BLOB_UNKNOWN (its blob is gone before its manifest is written),
//     never a stored manifest with a missing blob unless it also checked in
//     that gap. The blob grace (default 1h) covers the time between a push's
//     blob uploads and its manifest.
func (r *Registry) GarbageCollect(ctx context.Context, opts GCOptions) (GCStats, error) {
	start := time.Now()
	untaggedCutoff := start.Add(-opts.UntaggedGrace - gcClockSlack)
	blobCutoff := start.Add(-opts.BlobGrace - gcClockSlack)
	var st GCStats
	marked := map[reference.Digest]struct{}{}
	links := map[reference.Digest][]string{} // blob -> repositories linking it
	seen := map[manifestKey]struct{}{}       // manifests the first mark read

	repos, err := r.store.AllRepositories(ctx)
	if err != nil {
		return st, err
	}
	type dead struct {
		name string
		dg   reference.Digest
	}
	var deadManifests []dead
	for _, name := range repos {
		keep, drop, err := r.gcRepository(ctx, name, untaggedCutoff, marked, &st)
		if err != nil {
			return st, err
		}
		for _, dg := range keep {
			seen[manifestKey{name, dg}] = struct{}{}
		}
		for _, dg := range drop {
			seen[manifestKey{name, dg}] = struct{}{}
			deadManifests = append(deadManifests, dead{name, dg})
		}
		infos, err := r.store.LayerLinkInfos(ctx, name)
		if err != nil {
			return st, err
		}
		for _, li := range infos {
			links[li.Digest] = append(links[li.Digest], name)
			if li.ModTime.After(blobCutoff) {
				marked[li.Digest] = struct{}{}
			}
		}
	}

	r.gcStage("marked")
	for _, d := range deadManifests {
		deleted, err := r.gcDeleteManifest(ctx, d.name, d.dg, untaggedCutoff, opts.DryRun)
		if err != nil {
			return st, err
		}
		if deleted {
			st.ManifestsDeleted++
			continue
		}
		// in use again: what it references stays
		if err := r.markManifest(ctx, d.name, d.dg, marked); err != nil {
			return st, err
		}
	}

	// Mark again from manifests written (or touched) since the first mark
	// began, in every repository, new ones included.
	if repos, err = r.store.AllRepositories(ctx); err != nil {
		return st, err
	}
	for _, name := range repos {
		infos, err := r.store.ManifestRevisionInfos(ctx, name)
		if err != nil {
			return st, err
		}
		for _, li := range infos {
			if _, ok := seen[manifestKey{name, li.Digest}]; ok && !li.ModTime.After(start.Add(-gcClockSlack)) {
				continue
			}
			if err := r.markManifest(ctx, name, li.Digest, marked); err != nil {
				return st, err
			}
		}
	}
	st.BlobsMarked = len(marked)
	r.gcStage("remarked")

	err = r.store.WalkBlobs(ctx, func(b storage.BlobInfo) error {
		if _, ok := marked[b.Digest]; ok || b.ModTime.After(blobCutoff) {
			return nil
		}
		n, err := r.gcDeleteBlob(ctx, b.Digest, links[b.Digest], blobCutoff, opts.DryRun)
		if err != nil || n < 0 {
			return err
		}
		r.log.Debug("registry gc: blob unreferenced", "digest", b.Digest.String(), "size", b.Size, "dry_run", opts.DryRun)
		st.BlobsDeleted++
		st.BytesFreed += b.Size
		st.LinksRemoved += n
		return nil
	})
	if err != nil {
		return st, err
	}
	st.Duration = time.Since(start)
	r.log.Info("registry: garbage collection done", "dry_run", opts.DryRun, "manifests_scanned", st.ManifestsScanned,
		"manifests_deleted", st.ManifestsDeleted, "blobs_deleted", st.BlobsDeleted, "bytes_freed", st.BytesFreed, "duration", st.Duration)
	return st, nil
}

// gcStage lets tests act between the collector's phases.
func (r *Registry) gcStage(stage string) {
	if r.gcTestHook != nil {
		r.gcTestHook(stage)
	}
}

// gcRepository decides which manifests of a repository stay: the tagged ones,
// those written after cutoff, unreadable ones (never delete what cannot be
// understood), and, from those, every index child and every referrer,
// transitively. It marks the blobs and manifest digests of what stays and
// returns both sets.
func (r *Registry) gcRepository(ctx context.Context, name string, cutoff time.Time, marked map[reference.Digest]struct{}, st *GCStats) (keep, drop []reference.Digest, err error) {
	revs, err := r.store.ManifestRevisionInfos(ctx, name)
	if err != nil {
		return nil, nil, err
	}
	parsed := make(map[reference.Digest]*manifest.Manifest, len(revs))
	referrersOf := map[reference.Digest][]reference.Digest{}
	kept := map[reference.Digest]bool{}
	var queue []reference.Digest
	keepIt := func(dg reference.Digest) {
		if !kept[dg] {
			kept[dg] = true
			queue = append(queue, dg)
		}
	}
	for _, li := range revs {
		st.ManifestsScanned++
		mt, payload, err := r.store.GetManifest(ctx, name, li.Digest)
		if errors.Is(err, storage.ErrManifestUnknown) {
			continue // deleted meanwhile
		}
		if err != nil {
			return nil, nil, err
		}
		m, perr := manifest.Parse(mt, payload)
		if perr != nil {
			r.log.Warn("registry gc: unreadable manifest kept", "repository", name, "digest", li.Digest.String(), "err", perr)
			keepIt(li.Digest)
			continue
		}
		parsed[li.Digest] = m
		if m.Subject != nil {
			referrersOf[m.SubjectDigest] = append(referrersOf[m.SubjectDigest], li.Digest)
		}
		if li.ModTime.After(cutoff) {
			keepIt(li.Digest)
		}
	}
	tags, err := r.store.Tags(ctx, name)
	if err != nil && !errors.Is(err, storage.ErrRepoUnknown) {
		return nil, nil, err
	}
	for _, t := range tags {
		if dg, err := r.store.ResolveTag(ctx, name, t); err == nil {
			keepIt(dg)
		}
	}
	for len(queue) > 0 {
		dg := queue[0]
		queue = queue[1:]
		marked[dg] = struct{}{}
		for _, ref := range referrersOf[dg] {
			keepIt(ref)
		}
		m := parsed[dg]
		if m == nil {
			continue // a tag on a manifest that is not (or no longer) here
		}
		for _, b := range m.BlobRefs() {
			marked[b] = struct{}{}
		}
		for _, c := range m.ManifestRefs() {
			keepIt(c)
			marked[c] = struct{}{} // a child may be a plain blob
		}
	}
	for _, li := range revs {
		if _, ok := parsed[li.Digest]; !ok {
			continue
		}
		if kept[li.Digest] {
			keep = append(keep, li.Digest)
		} else {
			drop = append(drop, li.Digest)
		}
	}
	return keep, drop, nil
}

// markManifest marks a manifest's digest, blobs and children (not deleted).
func (r *Registry) markManifest(ctx context.Context, name string, dg reference.Digest, marked map[reference.Digest]struct{}) error {
	marked[dg] = struct{}{}
	mt, payload, err := r.store.GetManifest(ctx, name, dg)
	if errors.Is(err, storage.ErrManifestUnknown) {
		return nil
	}
	if err != nil {
		return err
	}
	m, err := manifest.Parse(mt, payload)
	if err != nil {
		return nil
	}
	for _, b := range m.BlobRefs() {
		marked[b] = struct{}{}
	}
	for _, c := range m.ManifestRefs() {
		marked[c] = struct{}{}
	}
	return nil
}

// gcDeleteManifest deletes an untagged manifest after checking, under the
// push lock, that nothing has touched or tagged it since the mark. It reports
// whether the manifest is (or, in a dry run, would be) deleted.
func (r *Registry) gcDeleteManifest(ctx context.Context, name string, dg reference.Digest, cutoff time.Time, dryRun bool) (bool, error) {
	r.gcMu.Lock()
	defer r.gcMu.Unlock()
	li, err := r.store.ManifestRevisionInfo(ctx, name, dg)
	if errors.Is(err, storage.ErrManifestUnknown) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if li.ModTime.After(cutoff) {
		return false, nil
	}
	tags, err := r.store.Tags(ctx, name)
	if err != nil && !errors.Is(err, storage.ErrRepoUnknown) {
		return false, err
	}
	for _, t := range tags {
		if td, err := r.store.ResolveTag(ctx, name, t); err == nil && td == dg {
			return false, nil
		}
	}
	if dryRun {
		return true, nil
	}
	if err := r.deleteManifest(ctx, name, dg); err != nil {
		if ErrorCode(err) == CodeManifestUnknown {
			return false, nil
		}
		return false, err
	}
	return true, nil
}

// gcDeleteBlob deletes an unmarked blob and every repository link to it after
// checking, under the push lock, that its data and usage notes are still
// older than cutoff. It returns the number of links removed, or -1 when the
// blob stays.
func (r *Registry) gcDeleteBlob(ctx context.Context, dg reference.Digest, linked []string, cutoff time.Time, dryRun bool) (int, error) {
	r.gcMu.Lock()
	defer r.gcMu.Unlock()
	if _, mt, err := r.store.BlobStat(ctx, dg); err != nil || mt.After(cutoff) {
		return -1, nil // gone, or written again since the walk saw it
	}
	users, err := r.store.BlobUsers(ctx, dg)
	if err != nil {
		return -1, err
	}
	names := map[string]struct{}{}
	for _, n := range linked {
		names[n] = struct{}{}
	}
	for n, li := range users {
		if li.ModTime.After(cutoff) {
			return -1, nil // linked or touched by a push since the cutoff
		}
		names[n] = struct{}{}
	}
	if dryRun {
		return len(names), nil
	}
	if err := r.store.DeleteBlob(ctx, dg); err != nil && !errors.Is(err, storage.ErrBlobUnknown) {
		return -1, err
	}
	removed := 0
	for n := range names {
		if err := r.store.DeleteLayerLink(ctx, n, dg); err != nil {
			return -1, err
		}
		removed++
	}
	r.epoch.Add(1)
	r.manifests.removeIf(func(k manifestKey, _ *cachedManifest) bool { return k.dg == dg })
	return removed, nil
}

// touchReferences is the push side of the collector's safety: called with
// gcMu held shared, before a manifest is written, it refreshes what the
// manifest relies on, so a collection running now keeps it (see
// GarbageCollect).
func (r *Registry) touchReferences(ctx context.Context, name string, m *manifest.Manifest) error {
	refs := m.BlobRefs()
	children := m.ManifestRefs()
	if len(refs)+len(children) == 0 {
		return nil
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	sem := make(chan struct{}, 8)
	do := func(f func() error) {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := f(); err != nil {
				mu.Lock()
				if first == nil {
					first = err
				}
				mu.Unlock()
			}
		}()
	}
	for _, d := range refs {
		do(func() error { return r.store.TouchBlob(ctx, name, d) })
	}
	for _, d := range children {
		do(func() error {
			err := r.store.TouchManifest(ctx, name, d)
			if errors.Is(err, storage.ErrManifestUnknown) {
				return r.store.TouchBlob(ctx, name, d) // a child stored as a plain blob
			}
			return err
		})
	}
	wg.Wait()
	return first
}
