package storage

import (
	"context"
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/berth-dev/berth/registry/reference"
	"github.com/berth-dev/berth/registry/storage/driver"
)

// UploadInfo describes an upload session.
type UploadInfo struct {
	ID         string    `json:"id"`
	Repository string    `json:"repository"`
	StartedAt  time.Time `json:"startedAt"`
}

// uploadAlg is the algorithm hashed while bytes stream in. A commit with
// another algorithm rehashes the data once.
const uploadAlg = reference.SHA256

type uploadState struct {
	mu        sync.Mutex // held by the one request working on the upload
	info      UploadInfo
	hasher    hash.Hash // nil: rebuild from storage before use
	size      int64     // bytes hashed, equal to the data file size when hasher != nil
	lastSaved int64     // offset of the persisted hash state, -1 if none
	gone      bool      // committed, cancelled or purged
}

type uploadSessions struct {
	mu sync.Mutex
	m  map[string]*uploadState
}

func newUploadSessions() *uploadSessions { return &uploadSessions{m: map[string]*uploadState{}} }

// Upload is an upload session held by one request; Close releases it.
type Upload struct {
	s  *Store
	st *uploadState
}

// StartUpload creates an empty upload session for the repository.
func (s *Store) StartUpload(ctx context.Context, name string) (UploadInfo, error) {
	if !reference.ValidName(name) {
		return UploadInfo{}, fmt.Errorf("storage: invalid repository name %q", name)
	}
	info := UploadInfo{ID: uuid.NewString(), Repository: name, StartedAt: time.Now().UTC()}
	b, _ := json.Marshal(info)
	ip, err := mustPath(uploadInfoPathSpec{id: info.ID})
	if err != nil {
		return UploadInfo{}, err
	}
	dp, _ := mustPath(uploadDataPathSpec{id: info.ID})
	if err := s.d.PutContent(ctx, ip, b); err != nil {
		return UploadInfo{}, err
	}
	w, err := s.d.Writer(ctx, dp, false)
	if err != nil {
		return UploadInfo{}, err
	}
	if err := w.Close(); err != nil {
		return UploadInfo{}, err
	}
	st := &uploadState{info: info, hasher: uploadAlg.New(), lastSaved: -1}
	s.uploads.mu.Lock()
	s.uploads.m[info.ID] = st
	s.uploads.mu.Unlock()
	return info, nil
}

// OpenUpload locks the session id of repository name for this request. It
// works after a restart (or on another node) by reloading the state from
// storage. The caller must Close the upload.
func (s *Store) OpenUpload(ctx context.Context, name, id string) (*Upload, error) {
	if !ValidUploadID(id) {
		return nil, ErrUploadUnknown
	}
	for {
		s.uploads.mu.Lock()
		st, ok := s.uploads.m[id]
		if !ok {
			st = &uploadState{lastSaved: -1}
			st.mu.Lock()
			s.uploads.m[id] = st
			s.uploads.mu.Unlock()
			ip, _ := mustPath(uploadInfoPathSpec{id: id})
			b, err := s.d.GetContent(ctx, ip)
			if err == nil {
				err = json.Unmarshal(b, &st.info)
			}
			if err != nil || st.info.ID != id {
				st.gone = true
				s.dropSession(id, st)
				st.mu.Unlock()
				if err != nil && !driver.IsNotFound(err) {
					return nil, err
				}
				return nil, ErrUploadUnknown
			}
		} else {
			s.uploads.mu.Unlock()
			st.mu.Lock()
			if st.gone {
				st.mu.Unlock()
				continue // replaced or removed meanwhile; look again
			}
		}
		if st.info.Repository != name {
			st.mu.Unlock()
			return nil, ErrUploadUnknown
		}
		return &Upload{s: s, st: st}, nil
	}
}

func (s *Store) dropSession(id string, st *uploadState) {
	s.uploads.mu.Lock()
	if s.uploads.m[id] == st {
		delete(s.uploads.m, id)
	}
	s.uploads.mu.Unlock()
}

// Close releases the session for other requests.
func (u *Upload) Close() {
	if u.st != nil {
		u.st.mu.Unlock()
		u.st = nil
	}
}

// Info describes the session.
func (u *Upload) Info() UploadInfo { return u.st.info }

func (u *Upload) dataPath() string {
	p, _ := mustPath(uploadDataPathSpec{id: u.st.info.ID})
	return p
}

// Size returns the number of bytes received so far.
func (u *Upload) Size(ctx context.Context) (int64, error) {
	if err := u.sync(ctx); err != nil {
		return 0, err
	}
	return u.st.size, nil
}

// sync makes the in-memory hash agree with the stored data: it keeps the
// running hash when the sizes match, else loads a persisted hash state for the
// stored size, else rehashes the data.
func (u *Upload) sync(ctx context.Context) error {
	st := u.st
	fi, err := u.s.d.Stat(ctx, u.dataPath())
	if err != nil {
		if driver.IsNotFound(err) {
			st.gone = true // purged or finished elsewhere
			u.s.dropSession(st.info.ID, st)
			return ErrUploadUnknown
		}
		return err
	}
	size := fi.Size()
	if st.hasher != nil && st.size == size {
		return nil
	}
	st.hasher = nil
	h := uploadAlg.New()
	hp, _ := mustPath(uploadHashStatePathSpec{id: st.info.ID, alg: uploadAlg, offset: size})
	if b, err := u.s.d.GetContent(ctx, hp); err == nil {
		if um, ok := h.(encoding.BinaryUnmarshaler); ok && um.UnmarshalBinary(b) == nil {
			st.hasher, st.size, st.lastSaved = h, size, size
			return nil
		}
		h = uploadAlg.New()
	}
	n, err := u.hashData(ctx, h)
	if err != nil {
		return err
	}
	st.hasher, st.size = h, n
	return nil
}

func (u *Upload) hashData(ctx context.Context, h hash.Hash) (int64, error) {
	r, err := u.s.d.Reader(ctx, u.dataPath(), 0)
	if err != nil {
		return 0, mapNotFound(err, ErrUploadUnknown)
	}
	defer r.Close()
	buf := getBuf()
	defer putBuf(buf)
	return io.CopyBuffer(h, onlyReader{r}, *buf)
}

// onlyReader hides WriterTo so CopyBuffer uses our buffer.
type onlyReader struct{ io.Reader }

// Append streams r to the end of the upload, hashing as it goes. It returns
// the number of bytes appended; on a read error the bytes received before it
// stay (the client may resume from Size).
func (u *Upload) Append(ctx context.Context, r io.Reader) (int64, error) {
	if err := u.sync(ctx); err != nil {
		return 0, err
	}
	st := u.st
	w, err := u.s.d.Writer(ctx, u.dataPath(), true)
	if err != nil {
		return 0, mapNotFound(err, ErrUploadUnknown)
	}
	if w.Size() != st.size {
		w.Close()
		st.hasher = nil
		return 0, fmt.Errorf("storage: upload %s changed underneath", st.info.ID)
	}
	n, rerr, werr := copyHashed(w, st.hasher, r)
	st.size += n
	if werr == nil {
		werr = w.Commit(ctx)
	}
	if cerr := w.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		st.hasher = nil // data and hash may disagree: rebuild next time
		return n, werr
	}
	return n, rerr
}

// SaveState persists the running hash so a restarted registry resumes
// without rehashing the data.
func (u *Upload) SaveState(ctx context.Context) error {
	st := u.st
	if st.hasher == nil || st.lastSaved == st.size {
		return nil
	}
	m, ok := st.hasher.(encoding.BinaryMarshaler)
	if !ok {
		return nil
	}
	b, err := m.MarshalBinary()
	if err != nil {
		return err
	}
	hp, _ := mustPath(uploadHashStatePathSpec{id: st.info.ID, alg: uploadAlg, offset: st.size})
	if err := u.s.d.PutContent(ctx, hp, b); err != nil {
		return err
	}
	if st.lastSaved >= 0 {
		old, _ := mustPath(uploadHashStatePathSpec{id: st.info.ID, alg: uploadAlg, offset: st.lastSaved})
		_ = u.s.d.Delete(ctx, old)
	}
	st.lastSaved = st.size
	return nil
}

// Commit verifies the upload against want and moves it into the blob store.
// On a mismatch it returns ErrDigestMismatch and nothing becomes visible (the
// session stays; callers usually Cancel it).
func (u *Upload) Commit(ctx context.Context, want reference.Digest) (int64, error) {
	if err := u.sync(ctx); err != nil {
		return 0, err
	}
	st := u.st
	var got reference.Digest
	if want.Algorithm() == uploadAlg {
		got = reference.FromHash(uploadAlg, st.hasher)
	} else {
		h := want.Algorithm().New()
		if _, err := u.hashData(ctx, h); err != nil {
			return 0, err
		}
		got = reference.FromHash(want.Algorithm(), h)
	}
	if got != want {
		return 0, ErrDigestMismatch
	}
	bp, err := mustPath(blobDataPathSpec{digest: want})
	if err != nil {
		return 0, err
	}
	// Always move, even over an existing blob: the rename is atomic and the
	// fresh file restarts the garbage collector's grace period.
	if err := u.s.d.Move(ctx, u.dataPath(), bp); err != nil {
		return 0, err
	}
	size := st.size
	u.remove(ctx)
	return size, nil
}

// Cancel deletes the upload.
func (u *Upload) Cancel(ctx context.Context) error {
	u.remove(ctx)
	return nil
}

func (u *Upload) remove(ctx context.Context) {
	st := u.st
	st.gone = true
	up, _ := mustPath(uploadPathSpec{id: st.info.ID})
	_ = u.s.d.Delete(ctx, up)
	u.s.dropSession(st.info.ID, st)
}

// PurgeUploads deletes upload sessions idle since before cutoff (by start
// time and last data write). Sessions in use are skipped.
func (s *Store) PurgeUploads(ctx context.Context, cutoff time.Time) (int, error) {
	ids, err := s.d.List(ctx, uploadsRoot)
	if err != nil {
		if driver.IsNotFound(err) {
			return 0, nil
		}
		return 0, err
	}
	purged := 0
	for _, p := range ids {
		if ctx.Err() != nil {
			return purged, ctx.Err()
		}
		id := p[strings.LastIndexByte(p, '/')+1:]
		if !ValidUploadID(id) {
			continue
		}
		last := time.Time{}
		if fi, err := s.d.Stat(ctx, p); err == nil {
			last = fi.ModTime()
		}
		ip, _ := mustPath(uploadInfoPathSpec{id: id})
		if b, err := s.d.GetContent(ctx, ip); err == nil {
			var info UploadInfo
			if json.Unmarshal(b, &info) == nil && info.StartedAt.After(last) {
				last = info.StartedAt
			}
		}
		dp, _ := mustPath(uploadDataPathSpec{id: id})
		if fi, err := s.d.Stat(ctx, dp); err == nil && fi.ModTime().After(last) {
			last = fi.ModTime()
		}
		if last.After(cutoff) {
			continue
		}
		s.uploads.mu.Lock()
		st, ok := s.uploads.m[id]
		if ok && !st.mu.TryLock() {
			s.uploads.mu.Unlock()
			continue
		}
		if ok {
			st.gone = true
			delete(s.uploads.m, id)
		}
		s.uploads.mu.Unlock()
		err := s.d.Delete(ctx, p)
		if ok {
			st.mu.Unlock()
		}
		if err != nil && !driver.IsNotFound(err) {
			return purged, err
		}
		purged++
	}
	return purged, nil
}

var errShortWrite = errors.New("short write")

// chunkSize is the unit copyHashed reads, hashes and writes: small enough to
// stay in cache and keep the stages overlapping (128 KiB measured best of
// 128 KiB-1 MiB), and bounding memory to about 1 MiB per active upload.
const chunkSize = 128 << 10

var bufPool = sync.Pool{New: func() any { b := make([]byte, chunkSize); return &b }}

func getBuf() *[]byte  { return bufPool.Get().(*[]byte) }
func putBuf(b *[]byte) { bufPool.Put(b) }

// fill reads into b until it is full or the reader fails.
func fill(r io.Reader, b []byte) (int, error) {
	n := 0
	var err error
	for n < len(b) && err == nil {
		var k int
		k, err = r.Read(b[n:])
		n += k
	}
	return n, err
}

// copyHashed copies r to w and h. Large bodies run as a pipeline: the next
// chunk is read while earlier ones are hashed and written, each in its own
// goroutine, so the network, the hash and the disk overlap. It returns the
// bytes written, the read error (other than EOF) and the write error
// separately; after a write error the hash may be ahead of the data.
func copyHashed(w io.Writer, h hash.Hash, r io.Reader) (int64, error, error) {
	first := getBuf()
	nr, rerr := fill(r, *first)
	if rerr != nil || nr < len(*first) {
		// small body: no pipeline
		defer putBuf(first)
		var werr error
		var n int
		if nr > 0 {
			h.Write((*first)[:nr])
			n, werr = w.Write((*first)[:nr])
			if werr == nil && n != nr {
				werr = errShortWrite
			}
		}
		if rerr == io.EOF {
			rerr = nil
		}
		return int64(n), rerr, werr
	}
	type chunk struct {
		buf  *[]byte
		n    int
		refs atomic.Int32
	}
	release := func(c *chunk) {
		if c.refs.Add(-1) == 0 {
			putBuf(c.buf)
		}
	}
	hashCh := make(chan *chunk, 4)
	writeCh := make(chan *chunk, 4)
	var (
		written int64
		werr    error
		wg      sync.WaitGroup
		failed  = make(chan struct{})
	)
	wg.Add(2)
	go func() {
		defer wg.Done()
		for c := range hashCh {
			h.Write((*c.buf)[:c.n])
			release(c)
		}
	}()
	go func() {
		defer wg.Done()
		for c := range writeCh {
			if werr == nil {
				n, err := w.Write((*c.buf)[:c.n])
				written += int64(n)
				if err == nil && n != c.n {
					err = errShortWrite
				}
				if err != nil {
					werr = err
					close(failed)
				}
			}
			release(c)
		}
	}()
	send := func(b *[]byte, n int) bool {
		c := &chunk{buf: b, n: n}
		c.refs.Store(2)
		hashCh <- c
		select {
		case writeCh <- c:
			return true
		case <-failed:
			release(c)
			return false
		}
	}
	ok := send(first, nr)
	for ok {
		b := getBuf()
		nr, rerr = fill(r, *b)
		if nr > 0 {
			ok = send(b, nr)
		} else {
			putBuf(b)
		}
		if rerr != nil {
			break
		}
	}
	close(hashCh)
	close(writeCh)
	wg.Wait()
	if rerr == io.EOF {
		rerr = nil
	}
	return written, rerr, werr
}
