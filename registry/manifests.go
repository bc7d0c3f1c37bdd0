package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/berth-dev/berth/registry/manifest"
	"github.com/berth-dev/berth/registry/reference"
	"github.com/berth-dev/berth/registry/storage"
)

// resolveTag looks a tag up through the cache.
func (r *Registry) resolveTag(ctx context.Context, name, tag string) (reference.Digest, error) {
	k := tagKey{name, tag}
	if e, ok := r.tags.get(k); ok && (r.cfg.CacheTTL <= 0 || time.Since(e.at) < r.cfg.CacheTTL) {
		return e.dg, nil
	}
	epoch := r.epoch.Load()
	dg, err := r.store.ResolveTag(ctx, name, tag)
	if err != nil {
		return reference.Digest{}, storageErr(err)
	}
	if r.epoch.Load() == epoch { // no write raced with the read
		r.tags.add(k, tagEntry{dg: dg, at: time.Now()}, 0)
	}
	return dg, nil
}

// resolveReference turns a tag or digest reference into a digest.
func (r *Registry) resolveReference(ctx context.Context, name, ref string) (reference.Digest, error) {
	if strings.IndexByte(ref, ':') >= 0 {
		dg, derr := parseDigestParam(ref)
		if derr != nil {
			return dg, derr
		}
		return dg, nil
	}
	if !reference.ValidTag(ref) {
		return reference.Digest{}, ErrManifestInvalid(fmt.Sprintf("invalid tag %q", ref))
	}
	return r.resolveTag(ctx, name, ref)
}

// loadManifest reads a manifest of the repository through the cache.
func (r *Registry) loadManifest(ctx context.Context, name string, dg reference.Digest) (*cachedManifest, error) {
	k := manifestKey{name, dg}
	// The TTL bounds how long another replica's delete (a repository deleted,
	// a manifest collected) leaves a cached copy here.
	if m, ok := r.manifests.get(k); ok && (r.cfg.CacheTTL <= 0 || time.Since(m.at) < r.cfg.CacheTTL) {
		return m, nil
	}
	epoch := r.epoch.Load()
	mt, payload, err := r.store.GetManifest(ctx, name, dg)
	if err != nil {
		return nil, storageErr(err)
	}
	m := &cachedManifest{mediaType: mt, payload: payload, size: strconv.Itoa(len(payload)), at: time.Now()}
	if r.epoch.Load() == epoch {
		r.manifests.add(k, m, int64(len(payload)+len(name)+64))
	}
	return m, nil
}

func (r *Registry) serveManifestGet(ctx context.Context, w http.ResponseWriter, req *http.Request, subj Subject, name, ref string) {
	dg, err := r.resolveReference(ctx, name, ref)
	if err != nil {
		r.writeStorageError(w, req, err)
		return
	}
	m, err := r.loadManifest(ctx, name, dg)
	if err != nil {
		r.writeStorageError(w, req, err)
		return
	}
	ds := dg.String()
	if err := r.hooks.CheckPull(ctx, subj, name, ds, m.mediaType); err != nil {
		var e *Error
		if !errors.As(err, &e) {
			r.log.Error("registry: CheckPull failed", "repository", name, "digest", ds, "err", err)
		}
		writeError(w, req, toError(err))
		return
	}
	h := w.Header()
	h["Content-Type"] = []string{m.mediaType}
	h["Content-Length"] = []string{m.size}
	h["Docker-Content-Digest"] = []string{ds}
	h["Etag"] = []string{`"` + ds + `"`}
	w.WriteHeader(http.StatusOK)
	if req.Method != http.MethodHead {
		_, _ = w.Write(m.payload)
	}
}

func (r *Registry) serveManifestPut(ctx context.Context, w http.ResponseWriter, req *http.Request, subj Subject, name, ref string) {
	tooBig := &Error{Code: CodeSizeInvalid, Message: fmt.Sprintf("manifest exceeds %d bytes", manifest.MaxSize), Status: http.StatusRequestEntityTooLarge}
	if req.ContentLength > manifest.MaxSize {
		writeError(w, req, tooBig)
		return
	}
	payload, err := io.ReadAll(io.LimitReader(req.Body, manifest.MaxSize+1))
	if err != nil {
		writeError(w, req, ErrManifestInvalid("reading manifest: "+err.Error()))
		return
	}
	if len(payload) > manifest.MaxSize {
		writeError(w, req, tooBig)
		return
	}
	// the reference: a digest to verify, or a tag
	var (
		dg   reference.Digest
		tags []string
	)
	if strings.IndexByte(ref, ':') >= 0 {
		want, derr := parseDigestParam(ref)
		if derr != nil {
			writeError(w, req, derr)
			return
		}
		dg = reference.FromBytes(want.Algorithm(), payload)
		if dg != want {
			writeError(w, req, ErrDigestInvalid("manifest digest does not match content").WithDetail(map[string]string{"digest": want.String()}))
			return
		}
	} else {
		if !reference.ValidTag(ref) {
			writeError(w, req, ErrManifestInvalid(fmt.Sprintf("invalid tag %q", ref)))
			return
		}
		dg = reference.FromBytes(reference.Canonical, payload)
		tags = append(tags, ref)
	}
	for _, t := range req.URL.Query()["tag"] {
		if !reference.ValidTag(t) {
			writeError(w, req, ErrManifestInvalid(fmt.Sprintf("invalid tag %q", t)))
			return
		}
		if !slices.Contains(tags, t) {
			tags = append(tags, t)
		}
	}
	m, err := manifest.Parse(req.Header.Get("Content-Type"), payload)
	if err != nil {
		var me *manifest.Error
		if errors.As(err, &me) {
			writeError(w, req, ErrManifestInvalid(me.Reason))
			return
		}
		writeError(w, req, ErrManifestInvalid(err.Error()))
		return
	}
	r.gcMu.RLock()
	defer r.gcMu.RUnlock()
	if err := r.checkReferences(ctx, name, m); err != nil {
		r.writeStorageError(w, req, err)
		return
	}
	if !r.ensureRepository(ctx, w, req, subj, name) {
		return
	}
	if err := r.touchReferences(ctx, name, m); err != nil {
		r.writeStorageError(w, req, err)
		return
	}
	release, err := r.guardTags(ctx, name, tags, dg)
	if err != nil {
		r.writeStorageError(w, req, err)
		return
	}
	err = r.commitManifest(ctx, name, dg, m, payload, tags)
	release()
	if err != nil {
		r.writeStorageError(w, req, err)
		return
	}
	now := time.Now().UTC()
	ds := dg.String()
	evTags := tags
	if len(evTags) == 0 {
		evTags = []string{""}
	}
	for _, t := range evTags {
		ev := ManifestEvent{Repository: name, Tag: t, Digest: ds, MediaType: m.Resolved, Size: int64(len(payload)), Payload: payload, PushedAt: now, Subject: subj}
		if err := r.hooks.ManifestPushed(ctx, ev); err != nil {
			r.log.Error("registry: ManifestPushed hook failed (push kept)", "repository", name, "tag", t, "digest", ds, "err", err)
		}
	}
	h := w.Header()
	h.Set("Location", "/v2/"+name+"/manifests/"+ds)
	h.Set("Docker-Content-Digest", ds)
	if m.Subject != nil {
		h.Set("OCI-Subject", m.Subject.Digest)
	}
	if len(req.URL.Query()["tag"]) > 0 {
		for _, t := range tags {
			h.Add("OCI-Tag", t)
		}
	}
	h.Set("Content-Length", "0")
	w.WriteHeader(http.StatusCreated)
}

// checkReferences refuses a manifest whose blobs (or, for an index, child
// manifests) are not in the repository.
func (r *Registry) checkReferences(ctx context.Context, name string, m *manifest.Manifest) error {
	for _, d := range m.BlobRefs() {
		if _, err := r.store.RepoBlobStat(ctx, name, d); err != nil {
			if errors.Is(err, storage.ErrBlobUnknown) {
				return ErrManifestBlobUnknown("blob unknown to registry: " + d.String()).WithDetail(map[string]string{"digest": d.String()})
			}
			return err
		}
	}
	for _, d := range m.ManifestRefs() {
		if _, err := r.loadManifest(ctx, name, d); err != nil {
			if ErrorCode(err) != CodeManifestUnknown {
				return err
			}
			// a child may also be a plain blob (some tools index artifacts)
			if _, berr := r.store.RepoBlobStat(ctx, name, d); berr != nil {
				return ErrManifestBlobUnknown("manifest unknown to registry: " + d.String()).WithDetail(map[string]string{"digest": d.String()})
			}
		}
	}
	return nil
}

// commitManifest stores the manifest, its referrer entry and tags, and
// refreshes the caches.
func (r *Registry) commitManifest(ctx context.Context, name string, dg reference.Digest, m *manifest.Manifest, payload []byte, tags []string) error {
	r.epoch.Add(1)
	if err := r.store.PutManifest(ctx, name, dg, m.Resolved, payload); err != nil {
		return err
	}
	if m.Subject != nil {
		desc, err := json.Marshal(m.ReferrerDescriptor(dg, int64(len(payload))))
		if err != nil {
			return err
		}
		if err := r.store.PutReferrer(ctx, name, m.SubjectDigest, dg, desc); err != nil {
			return err
		}
	}
	for _, t := range tags {
		if err := r.store.Tag(ctx, name, t, dg); err != nil {
			return err
		}
	}
	r.epoch.Add(1)
	r.manifests.add(manifestKey{name, dg}, &cachedManifest{mediaType: m.Resolved, payload: payload, size: strconv.Itoa(len(payload)), at: time.Now()}, int64(len(payload)+len(name)+64))
	now := time.Now()
	for _, t := range tags {
		r.tags.add(tagKey{name, t}, tagEntry{dg: dg, at: now}, 0)
	}
	return nil
}

func (r *Registry) serveManifestDelete(ctx context.Context, w http.ResponseWriter, req *http.Request, name, ref string) {
	var err error
	if strings.IndexByte(ref, ':') >= 0 {
		dg, derr := parseDigestParam(ref)
		if derr != nil {
			writeError(w, req, derr)
			return
		}
		err = r.deleteManifest(ctx, name, dg)
	} else {
		if !reference.ValidTag(ref) {
			writeError(w, req, ErrManifestInvalid(fmt.Sprintf("invalid tag %q", ref)))
			return
		}
		err = r.deleteTag(ctx, name, ref)
	}
	if err != nil {
		r.writeStorageError(w, req, err)
		return
	}
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusAccepted)
}

func (r *Registry) deleteTag(ctx context.Context, name, tag string) error {
	if err := r.guardDelete(ctx, name, tag); err != nil {
		return err
	}
	r.epoch.Add(1)
	r.tags.remove(tagKey{name, tag})
	if err := r.store.DeleteTag(ctx, name, tag); err != nil {
		return storageErr(err)
	}
	r.epoch.Add(1)
	r.tags.remove(tagKey{name, tag})
	if err := r.hooks.TagDeleted(ctx, name, tag); err != nil {
		r.log.Error("registry: TagDeleted hook failed", "repository", name, "tag", tag, "err", err)
	}
	return nil
}

func (r *Registry) deleteManifest(ctx context.Context, name string, dg reference.Digest) error {
	mt, payload, err := r.store.GetManifest(ctx, name, dg)
	if err != nil {
		return storageErr(err)
	}
	r.epoch.Add(1)
	// tags pointing at it go too
	tags, err := r.store.Tags(ctx, name)
	if err != nil && !errors.Is(err, storage.ErrRepoUnknown) {
		return err
	}
	var removed []string
	for _, t := range tags {
		if td, err := r.store.ResolveTag(ctx, name, t); err == nil && td == dg {
			removed = append(removed, t)
		}
	}
	for _, t := range removed { // an immutable tag keeps its manifest
		if err := r.guardDelete(ctx, name, t); err != nil {
			return err
		}
	}
	for _, t := range removed {
		if err := r.store.DeleteTag(ctx, name, t); err != nil && !errors.Is(err, storage.ErrTagUnknown) {
			return err
		}
	}
	if m, perr := manifest.Parse(mt, payload); perr == nil && m.Subject != nil {
		if err := r.store.DeleteReferrer(ctx, name, m.SubjectDigest, dg); err != nil {
			return err
		}
	}
	if err := r.store.DeleteManifestRevision(ctx, name, dg); err != nil {
		return storageErr(err)
	}
	r.epoch.Add(1)
	r.manifests.remove(manifestKey{name, dg})
	r.tags.removeIf(func(k tagKey, e tagEntry) bool { return k.name == name && e.dg == dg })
	for _, t := range removed {
		if err := r.hooks.TagDeleted(ctx, name, t); err != nil {
			r.log.Error("registry: TagDeleted hook failed", "repository", name, "tag", t, "err", err)
		}
	}
	if err := r.hooks.ManifestDeleted(ctx, name, dg.String()); err != nil {
		r.log.Error("registry: ManifestDeleted hook failed", "repository", name, "digest", dg.String(), "err", err)
	}
	return nil
}

// maxPage caps n on the tags list and catalog; a larger n is lowered, not
// refused, and the Link header leads to the next page.
const maxPage = 1000

// pageParams reads n and last. n is -1 when absent.
func pageParams(q url.Values) (n int, last string, err *Error) {
	n = -1
	if s := q.Get("n"); s != "" {
		v, perr := strconv.Atoi(s)
		if perr != nil || v < 0 {
			return 0, "", ErrUnsupported("invalid n: must be a non-negative integer").withStatus(http.StatusBadRequest)
		}
		n = v
	}
	return n, q.Get("last"), nil
}

func (e *Error) withStatus(status int) *Error {
	c := *e
	c.Status = status
	return &c
}

// page applies last and n to a sorted list; more reports a further page.
func page(all []string, last string, n int) (out []string, more bool) {
	if last != "" {
		i, _ := slices.BinarySearch(all, last)
		for i < len(all) && all[i] <= last {
			i++
		}
		all = all[i:]
	}
	if n >= 0 && len(all) > n {
		return all[:n], true
	}
	return all, false
}

func setLink(w http.ResponseWriter, path string, items []string, n int) {
	if len(items) == 0 {
		return
	}
	v := url.Values{}
	v.Set("n", strconv.Itoa(n))
	v.Set("last", items[len(items)-1])
	w.Header().Set("Link", "<"+path+"?"+v.Encode()+`>; rel="next"`)
}

func (r *Registry) serveTags(w http.ResponseWriter, req *http.Request, name string) {
	n, last, perr := pageParams(req.URL.Query())
	if perr != nil {
		writeError(w, req, perr)
		return
	}
	if n > maxPage {
		n = maxPage
	}
	tags, err := r.store.Tags(req.Context(), name)
	if err != nil {
		r.writeStorageError(w, req, err)
		return
	}
	out, more := page(tags, last, n)
	if more {
		setLink(w, "/v2/"+name+"/tags/list", out, n)
	}
	writeJSON(w, http.StatusOK, "application/json", struct {
		Name string   `json:"name"`
		Tags []string `json:"tags"`
	}{name, out})
}

func (r *Registry) serveCatalog(w http.ResponseWriter, req *http.Request) {
	n, last, perr := pageParams(req.URL.Query())
	if perr != nil {
		writeError(w, req, perr)
		return
	}
	if n < 0 || n > maxPage {
		n = maxPage
	}
	repos, err := r.store.Repositories(req.Context())
	if err != nil {
		r.writeStorageError(w, req, err)
		return
	}
	out, more := page(repos, last, n)
	if more {
		setLink(w, "/v2/_catalog", out, n)
	}
	if out == nil {
		out = []string{}
	}
	writeJSON(w, http.StatusOK, "application/json", struct {
		Repositories []string `json:"repositories"`
	}{out})
}

func (r *Registry) serveReferrers(w http.ResponseWriter, req *http.Request, name, ref string) {
	dg, derr := parseDigestParam(ref)
	if derr != nil {
		writeError(w, req, derr)
		return
	}
	raw, err := r.store.Referrers(req.Context(), name, dg)
	if err != nil {
		r.writeStorageError(w, req, err)
		return
	}
	filter := req.URL.Query().Get("artifactType")
	descs := make([]json.RawMessage, 0, len(raw))
	for _, b := range raw {
		if filter != "" {
			var d struct {
				ArtifactType string `json:"artifactType"`
			}
			if json.Unmarshal(b, &d) != nil || d.ArtifactType != filter {
				continue
			}
		}
		descs = append(descs, json.RawMessage(b))
	}
	if filter != "" {
		w.Header().Set("OCI-Filters-Applied", "artifactType")
	}
	writeJSON(w, http.StatusOK, manifest.MediaTypeOCIIndex, struct {
		SchemaVersion int               `json:"schemaVersion"`
		MediaType     string            `json:"mediaType"`
		Manifests     []json.RawMessage `json:"manifests"`
	}{2, manifest.MediaTypeOCIIndex, descs})
}

func writeJSON(w http.ResponseWriter, status int, contentType string, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeError(w, nil, toError(err))
		return
	}
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
