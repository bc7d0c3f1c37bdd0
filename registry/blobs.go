package registry

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/berth-dev/berth/registry/reference"
	"github.com/berth-dev/berth/registry/storage"
)

func parseDigestParam(s string) (reference.Digest, *Error) {
	dg, err := reference.Parse(s)
	if err != nil {
		if errors.Is(err, reference.ErrDigestUnsupported) {
			return dg, ErrDigestInvalid("unsupported digest algorithm (sha256 and sha512 are)")
		}
		return dg, ErrDigestInvalid("invalid digest")
	}
	return dg, nil
}

// serveBlobGet answers GET and HEAD on a blob, with single-range support.
// The body is copied from the storage reader straight into the connection
// (sendfile for the filesystem driver).
func (r *Registry) serveBlobGet(ctx context.Context, w http.ResponseWriter, req *http.Request, name, ref string) {
	dg, derr := parseDigestParam(ref)
	if derr != nil {
		writeError(w, req, derr)
		return
	}
	size, err := r.store.RepoBlobStat(ctx, name, dg)
	if err != nil {
		r.writeStorageError(w, req, err)
		return
	}
	h := w.Header()
	ds := dg.String()
	h.Set("Docker-Content-Digest", ds)
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Accept-Ranges", "bytes")
	h.Set("ETag", `"`+ds+`"`)
	h.Set("Cache-Control", "max-age=31536000")
	start, length := int64(0), size
	status := http.StatusOK
	if rng := req.Header.Get("Range"); rng != "" && req.Method == http.MethodGet {
		s, l, ok, satisfiable := parseRange(rng, size)
		if ok && !satisfiable {
			h.Set("Content-Range", "bytes */"+strconv.FormatInt(size, 10))
			writeError(w, req, ErrRangeInvalid("requested range not satisfiable"))
			return
		}
		if ok {
			start, length, status = s, l, http.StatusPartialContent
			h.Set("Content-Range", "bytes "+strconv.FormatInt(s, 10)+"-"+strconv.FormatInt(s+l-1, 10)+"/"+strconv.FormatInt(size, 10))
		}
	}
	h.Set("Content-Length", strconv.FormatInt(length, 10))
	if req.Method == http.MethodHead {
		w.WriteHeader(status)
		return
	}
	if r.cfg.BlobRedirect {
		if u, err := r.store.BlobURL(ctx, dg); err != nil {
			r.log.Warn("registry: no redirect URL for a blob; serving it", "digest", ds, "err", err)
		} else if u != "" {
			h.Del("Content-Length")
			h.Del("Content-Range")
			http.Redirect(w, req, u, http.StatusTemporaryRedirect)
			return
		}
	}
	rc, err := r.store.BlobReader(ctx, dg, start)
	if err != nil {
		h.Del("Content-Range")
		r.writeStorageError(w, req, err)
		return
	}
	defer rc.Close()
	w.WriteHeader(status)
	if length == 0 {
		return
	}
	// CopyN wraps rc in an io.LimitedReader; the ResponseWriter's ReadFrom
	// hands an *os.File under it to sendfile.
	n, err := io.CopyN(w, rc, length)
	if r.metrics != nil {
		r.metrics.bytesOut.Add(float64(n))
	}
	if err != nil && ctx.Err() == nil {
		r.log.Warn("registry: blob download interrupted", "repository", name, "digest", ds, "sent", n, "err", err)
	}
}

// parseRange parses a single "bytes=" range. ok is false when the header is
// not a single byte range we understand (the whole blob is served);
// satisfiable is false for a well-formed range outside the blob (416).
func parseRange(h string, size int64) (start, length int64, ok, satisfiable bool) {
	spec, found := strings.CutPrefix(strings.TrimSpace(h), "bytes=")
	if !found || strings.Contains(spec, ",") {
		return 0, 0, false, false
	}
	a, b, found := strings.Cut(strings.TrimSpace(spec), "-")
	if !found {
		return 0, 0, false, false
	}
	a, b = strings.TrimSpace(a), strings.TrimSpace(b)
	if a == "" { // suffix range: last b bytes
		n, err := strconv.ParseInt(b, 10, 64)
		if err != nil || n < 0 {
			return 0, 0, false, false
		}
		if n == 0 || size == 0 {
			return 0, 0, true, false
		}
		n = min(n, size)
		return size - n, n, true, true
	}
	s, err := strconv.ParseInt(a, 10, 64)
	if err != nil || s < 0 {
		return 0, 0, false, false
	}
	e := size - 1
	if b != "" {
		e, err = strconv.ParseInt(b, 10, 64)
		if err != nil {
			return 0, 0, false, false
		}
		if e < s {
			return 0, 0, true, false
		}
		e = min(e, size-1)
	}
	if s >= size {
		return 0, 0, true, false
	}
	return s, e - s + 1, true, true
}

func (r *Registry) serveBlobDelete(ctx context.Context, w http.ResponseWriter, req *http.Request, name, ref string) {
	dg, derr := parseDigestParam(ref)
	if derr != nil {
		writeError(w, req, derr)
		return
	}
	if err := r.store.UnlinkBlob(ctx, name, dg); err != nil {
		r.writeStorageError(w, req, err)
		return
	}
	w.Header().Set("Docker-Content-Digest", dg.String())
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusAccepted)
}

func (r *Registry) writeStorageError(w http.ResponseWriter, req *http.Request, err error) {
	e := storageErr(err)
	var re *Error
	if !errors.As(e, &re) {
		if req.Context().Err() == nil {
			r.log.Error("registry: storage error", "method", req.Method, "path", req.URL.Path, "err", err)
		}
		re = toError(e)
	}
	writeError(w, req, re)
}

func (r *Registry) ensureRepository(ctx context.Context, w http.ResponseWriter, req *http.Request, subj Subject, name string) bool {
	if err := r.hooks.EnsureRepository(ctx, subj, name); err != nil {
		var e *Error
		if !errors.As(err, &e) {
			r.log.Error("registry: EnsureRepository failed", "repository", name, "err", err)
		}
		writeError(w, req, toError(err))
		return false
	}
	return true
}

func uploadLocation(name, id string) string { return "/v2/" + name + "/blobs/uploads/" + id }

func blobLocation(name string, dg reference.Digest) string {
	return "/v2/" + name + "/blobs/" + dg.String()
}

func setUploadHeaders(w http.ResponseWriter, name, id string, size int64) {
	h := w.Header()
	h.Set("Location", uploadLocation(name, id))
	h.Set("Docker-Upload-UUID", id)
	end := size - 1
	if end < 0 {
		end = 0 // Docker clients parse "0-0" for an empty upload
	}
	h.Set("Range", "0-"+strconv.FormatInt(end, 10))
	h.Set("Content-Length", "0")
}

func (r *Registry) serveUploadStart(ctx context.Context, w http.ResponseWriter, req *http.Request, subj Subject, grants grantSet, name string) {
	q := req.URL.Query()
	if mount := q.Get("mount"); mount != "" {
		dg, derr := parseDigestParam(mount)
		if derr != nil {
			writeError(w, req, derr)
			return
		}
		if !r.ensureRepository(ctx, w, req, subj, name) {
			return
		}
		if r.tryMount(ctx, subj, grants, name, q.Get("from"), dg) {
			w.Header().Set("Location", blobLocation(name, dg))
			w.Header().Set("Docker-Content-Digest", dg.String())
			w.Header().Set("Content-Length", "0")
			w.WriteHeader(http.StatusCreated)
			return
		}
		// not mountable: fall back to a regular upload session (202)
	} else if !r.ensureRepository(ctx, w, req, subj, name) {
		return
	}
	info, err := r.store.StartUpload(ctx, name)
	if err != nil {
		r.writeStorageError(w, req, err)
		return
	}
	if ds := q.Get("digest"); ds != "" && q.Get("mount") == "" {
		r.monolithicUpload(ctx, w, req, name, info.ID, ds)
		return
	}
	setUploadHeaders(w, name, info.ID, 0)
	w.WriteHeader(http.StatusAccepted)
}

// tryMount links dg into name from the repository from, when the request may
// pull from and from has the blob. Without from, the repositories recorded as
// holding the blob are tried, each only if the subject may pull it (the
// token's grants, else the Authorizer is asked): a digest alone never gives
// access to a blob.
func (r *Registry) tryMount(ctx context.Context, subj Subject, grants grantSet, name, from string, dg reference.Digest) bool {
	if _, err := r.store.RepoBlobStat(ctx, name, dg); err == nil {
		return true // already here
	}
	if from != "" {
		if from == name || !reference.ValidName(from) || !grants.allows(Access{Type: "repository", Name: from, Actions: []string{ActionPull}}) {
			return false
		}
		return r.mountFrom(ctx, name, from, dg)
	}
	candidates, err := r.store.BlobRepositories(ctx, dg, maxMountCandidates)
	if err != nil {
		r.log.Warn("registry: listing blob repositories", "digest", dg.String(), "err", err)
		return false
	}
	var ask []Access
	for _, c := range candidates {
		if c == name {
			continue
		}
		pull := Access{Type: "repository", Name: c, Actions: []string{ActionPull}}
		if grants.allows(pull) {
			if r.mountFrom(ctx, name, c, dg) {
				return true
			}
			continue
		}
		ask = append(ask, pull)
	}
	if len(ask) == 0 {
		return false
	}
	granted, err := r.authz.Grant(ctx, subj, ask)
	if err != nil {
		r.log.Warn("registry: grant for anonymous mount", "err", err)
		return false
	}
	g := newGrantSet(granted, nil)
	for _, a := range ask {
		if g.allows(a) && r.mountFrom(ctx, name, a.Name, dg) {
			return true
		}
	}
	return false
}

// maxMountCandidates bounds the repositories tried for a mount without from.
const maxMountCandidates = 16

func (r *Registry) mountFrom(ctx context.Context, name, from string, dg reference.Digest) bool {
	if _, err := r.store.RepoBlobStat(ctx, from, dg); err != nil {
		return false
	}
	if err := r.store.LinkBlob(ctx, name, dg); err != nil {
		r.log.Error("registry: mount link failed", "repository", name, "digest", dg.String(), "err", err)
		return false
	}
	return true
}

// monolithicUpload handles POST ?digest= with the whole blob as body.
func (r *Registry) monolithicUpload(ctx context.Context, w http.ResponseWriter, req *http.Request, name, id, ds string) {
	dg, derr := parseDigestParam(ds)
	if derr != nil {
		r.cancelUpload(ctx, name, id)
		writeError(w, req, derr)
		return
	}
	u, err := r.store.OpenUpload(ctx, name, id)
	if err != nil {
		r.writeStorageError(w, req, err)
		return
	}
	defer u.Close()
	if !r.appendBody(ctx, w, req, u, 0, false) {
		_ = u.Cancel(ctx)
		return
	}
	r.commitUpload(ctx, w, req, u, name, dg)
}

func (r *Registry) cancelUpload(ctx context.Context, name, id string) {
	if u, err := r.store.OpenUpload(ctx, name, id); err == nil {
		_ = u.Cancel(ctx)
		u.Close()
	}
}

// contentRange parses an upload Content-Range: "start-end", "bytes start-end"
// or "bytes start-end/total".
func contentRange(s string) (start, end int64, ok bool) {
	s = strings.TrimSpace(s)
	s = strings.TrimPrefix(s, "bytes ")
	s = strings.TrimPrefix(s, "bytes=")
	if i := strings.IndexByte(s, '/'); i >= 0 {
		s = s[:i]
	}
	a, b, found := strings.Cut(s, "-")
	if !found {
		return 0, 0, false
	}
	start, err1 := strconv.ParseInt(strings.TrimSpace(a), 10, 64)
	end, err2 := strconv.ParseInt(strings.TrimSpace(b), 10, 64)
	if err1 != nil || err2 != nil || start < 0 || end < start {
		return 0, 0, false
	}
	return start, end, true
}

// errBodyTooLong reports a chunk longer than its Content-Range.
var errBodyTooLong = errors.New("body longer than Content-Range")

// exactReader passes through at most n bytes and fails if more arrive.
type exactReader struct {
	r io.Reader
	n int64
}

func (e *exactReader) Read(p []byte) (int, error) {
	if e.n <= 0 {
		var one [1]byte
		k, err := e.r.Read(one[:])
		if k > 0 {
			return 0, errBodyTooLong
		}
		if err == nil {
			err = io.EOF // treat a zero-byte read as the end
		}
		return 0, err
	}
	if int64(len(p)) > e.n {
		p = p[:e.n]
	}
	k, err := e.r.Read(p)
	e.n -= int64(k)
	return k, err
}

// appendBody streams the request body into the upload. With chunked set, a
// Content-Range must start at the current offset (416 otherwise) and the body
// must match its length. It writes the error response and returns false on
// failure; bytes that arrived before a failure stay in the session so the
// client can resume from the offset GET reports.
func (r *Registry) appendBody(ctx context.Context, w http.ResponseWriter, req *http.Request, u *storage.Upload, offset int64, chunked bool) bool {
	var body io.Reader = req.Body
	expected := int64(-1)
	if cr := req.Header.Get("Content-Range"); cr != "" && chunked {
		start, end, ok := contentRange(cr)
		if !ok {
			setUploadHeaders(w, u.Info().Repository, u.Info().ID, offset)
			writeError(w, req, ErrRangeInvalid("malformed Content-Range"))
			return false
		}
		if start != offset {
			setUploadHeaders(w, u.Info().Repository, u.Info().ID, offset)
			writeError(w, req, ErrRangeInvalid("chunk out of order: upload is at offset "+strconv.FormatInt(offset, 10)))
			return false
		}
		expected = end - start + 1
		if req.ContentLength >= 0 && req.ContentLength != expected {
			writeError(w, req, ErrSizeInvalid("Content-Length does not match Content-Range"))
			return false
		}
		body = &exactReader{r: req.Body, n: expected}
	}
	n, err := u.Append(ctx, body)
	if r.metrics != nil {
		r.metrics.bytesIn.Add(float64(n))
	}
	if err != nil {
		_ = u.SaveState(ctx)
		if errors.Is(err, errBodyTooLong) {
			writeError(w, req, ErrSizeInvalid("chunk longer than its Content-Range"))
			return false
		}
		if ctx.Err() == nil {
			r.log.Info("registry: upload chunk failed", "upload", u.Info().ID, "received", n, "err", err)
		}
		writeError(w, req, ErrBlobUploadInvalid("upload body incomplete: "+err.Error()))
		return false
	}
	if expected >= 0 && n != expected {
		_ = u.SaveState(ctx)
		writeError(w, req, ErrSizeInvalid("chunk shorter than its Content-Range"))
		return false
	}
	return true
}

func (r *Registry) openUpload(ctx context.Context, w http.ResponseWriter, req *http.Request, name, id string) (*storage.Upload, int64, bool) {
	u, err := r.store.OpenUpload(ctx, name, id)
	if err != nil {
		r.writeStorageError(w, req, err)
		return nil, 0, false
	}
	size, err := u.Size(ctx)
	if err != nil {
		u.Close()
		r.writeStorageError(w, req, err)
		return nil, 0, false
	}
	return u, size, true
}

func (r *Registry) serveUploadStatus(ctx context.Context, w http.ResponseWriter, req *http.Request, name, id string) {
	u, size, ok := r.openUpload(ctx, w, req, name, id)
	if !ok {
		return
	}
	u.Close()
	setUploadHeaders(w, name, id, size)
	w.WriteHeader(http.StatusNoContent)
}

func (r *Registry) serveUploadPatch(ctx context.Context, w http.ResponseWriter, req *http.Request, name, id string) {
	u, size, ok := r.openUpload(ctx, w, req, name, id)
	if !ok {
		return
	}
	defer u.Close()
	if !r.appendBody(ctx, w, req, u, size, true) {
		return
	}
	if err := u.SaveState(ctx); err != nil {
		r.log.Warn("registry: saving upload hash state", "upload", id, "err", err)
	}
	size, err := u.Size(ctx)
	if err != nil {
		r.writeStorageError(w, req, err)
		return
	}
	setUploadHeaders(w, name, id, size)
	w.WriteHeader(http.StatusAccepted)
}

func (r *Registry) serveUploadPut(ctx context.Context, w http.ResponseWriter, req *http.Request, name, id string) {
	dg, derr := parseDigestParam(req.URL.Query().Get("digest"))
	if derr != nil {
		writeError(w, req, derr)
		return
	}
	u, size, ok := r.openUpload(ctx, w, req, name, id)
	if !ok {
		return
	}
	defer u.Close()
	if req.ContentLength != 0 {
		if !r.appendBody(ctx, w, req, u, size, true) {
			return
		}
	}
	r.commitUpload(ctx, w, req, u, name, dg)
}

// commitUpload verifies the upload against dg and publishes it. A mismatch
// deletes the session: nothing becomes visible.
func (r *Registry) commitUpload(ctx context.Context, w http.ResponseWriter, req *http.Request, u *storage.Upload, name string, dg reference.Digest) {
	if _, err := u.Commit(ctx, dg); err != nil {
		if errors.Is(err, storage.ErrDigestMismatch) {
			_ = u.Cancel(ctx)
			writeError(w, req, ErrDigestInvalid("provided digest did not match uploaded content").WithDetail(map[string]string{"digest": dg.String()}))
			return
		}
		r.writeStorageError(w, req, err)
		return
	}
	if err := r.store.LinkBlob(ctx, name, dg); err != nil {
		r.writeStorageError(w, req, err)
		return
	}
	h := w.Header()
	h.Set("Location", blobLocation(name, dg))
	h.Set("Docker-Content-Digest", dg.String())
	h.Set("Content-Length", "0")
	w.WriteHeader(http.StatusCreated)
}

func (r *Registry) serveUploadCancel(ctx context.Context, w http.ResponseWriter, req *http.Request, name, id string) {
	u, err := r.store.OpenUpload(ctx, name, id)
	if err != nil {
		r.writeStorageError(w, req, err)
		return
	}
	_ = u.Cancel(ctx)
	u.Close()
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusNoContent)
}
