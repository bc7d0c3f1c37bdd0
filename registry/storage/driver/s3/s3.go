// Package s3 is the blob-store driver for S3-compatible object storage (AWS S3, versitygw, Ceph RGW, …),
// behind the same driver.StorageDriver interface as the filesystem, and passing the same shared suite.
//
// S3 objects cannot be appended to, yet an upload grows PATCH by PATCH, and the next PATCH may reach
// another replica. So a file is one of two shapes, both kept entirely in the bucket:
//   - plain: one object at the file's key (PutContent, and every Move destination: blobs, manifests, links);
//   - segmented: objects "KEY~OFFSET" (OFFSET as 20 decimal digits), each holding the bytes written from
//     that offset by one flush of a Writer; the file is their concatenation. An upload's data is this shape:
//     each PATCH adds a segment, whatever its size, and any replica finds the upload by listing them.
//
// A plain object wins over segments of the same key (a PutContent over a segmented file is atomic; the
// segments left are garbage a later Writer or Delete removes). Move of a segmented file concatenates its
// segments into one plain object at the destination inside the bucket: a multipart upload whose parts are
// server-side copies (UploadPartCopy) of the large segments, with small segments read and joined into
// parts of at least 5 MiB (S3's minimum for every part but the last). The object appears at once, complete,
// when the multipart upload completes. "~" cannot appear in a valid path, so segment keys never collide
// with files.
//
// Durability: every acknowledged S3 PUT (and completed multipart upload) is durable, so a Writer's Commit
// returns only after its data is an object.
package s3

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"github.com/berth-dev/berth/registry/storage/driver"
)

const driverName = "s3"

const (
	// minPart is S3's smallest multipart part but the last.
	minPart = 5 << 20
	// writePart is the part size a Writer buffers and uploads; a flush smaller than it is one PutObject.
	writePart = 8 << 20
	// copyPart bounds one UploadPartCopy (S3 allows up to 5 GiB).
	copyPart = 1 << 30
	// maxCopyObject is the largest object one CopyObject copies.
	maxCopyObject = 5 << 30
	segSep        = "~"
	offsetDigits  = 20
)

// Config says where the bucket is and how to sign requests.
type Config struct {
	Endpoint  string // e.g. http://127.0.0.1:7070; "" for AWS
	Region    string // default us-east-1
	Bucket    string
	PathStyle bool // bucket in the path, not the host name (most self-hosted servers)
	AccessKey string
	SecretKey string
	// Prefix puts every key under this folder of the bucket ("" for its root).
	Prefix string
	// RedirectExpiry is how long presigned GET URLs stay valid; default 20 minutes.
	RedirectExpiry time.Duration
	// HTTPClient, when set, sends the requests.
	HTTPClient *http.Client
}

// Driver stores files in one bucket.
type Driver struct {
	c       *s3.Client
	presign *s3.PresignClient
	bucket  string
	prefix  string
	expiry  time.Duration

	// dirs remembers ancestors found not to be files, so a PutContent deep in a known tree costs no HEADs.
	// A stale entry could only let a file be written below a file created since by another process; the
	// registry's typed paths never do that.
	dirsMu sync.Mutex
	dirs   map[string]bool
}

var _ driver.StorageDriver = (*Driver)(nil)

// New returns a driver for cfg's bucket (which must exist).
func New(cfg Config) (*Driver, error) {
	if cfg.Bucket == "" {
		return nil, errors.New("s3: a bucket is required (--s3-bucket)")
	}
	if cfg.AccessKey == "" || cfg.SecretKey == "" {
		return nil, errors.New("s3: access and secret keys are required (BERTH_S3_ACCESS_KEY, BERTH_S3_SECRET_KEY or storage.s3 in the config file)")
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	if cfg.RedirectExpiry <= 0 {
		cfg.RedirectExpiry = 20 * time.Minute
	}
	opts := s3.Options{
		Region:                     cfg.Region,
		Credentials:                credentials.NewStaticCredentialsProvider(cfg.AccessKey, cfg.SecretKey, ""),
		UsePathStyle:               cfg.PathStyle,
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
		RetryMaxAttempts:           5,
	}
	if cfg.Endpoint != "" {
		opts.BaseEndpoint = aws.String(strings.TrimRight(cfg.Endpoint, "/"))
	}
	if cfg.HTTPClient != nil {
		opts.HTTPClient = cfg.HTTPClient
	}
	c := s3.New(opts)
	prefix := strings.Trim(cfg.Prefix, "/")
	if prefix != "" {
		prefix += "/"
	}
	return &Driver{c: c, presign: s3.NewPresignClient(c), bucket: cfg.Bucket, prefix: prefix,
		expiry: cfg.RedirectExpiry, dirs: map[string]bool{}}, nil
}

// Client is the S3 client (tests create buckets with it).
func (d *Driver) Client() *s3.Client { return d.c }

// Name implements driver.StorageDriver.
func (d *Driver) Name() string { return driverName }

func (d *Driver) key(p string) string {
	if p == "/" {
		return d.prefix
	}
	return d.prefix + p[1:]
}

func (d *Driver) pathOf(key string) string { return "/" + strings.TrimPrefix(key, d.prefix) }

func segKey(key string, off int64) string {
	return fmt.Sprintf("%s%s%0*d", key, segSep, offsetDigits, off)
}

func (d *Driver) check(p string, root bool) error {
	if !driver.ValidPath(p, root) {
		return driver.InvalidPathError{Path: p, DriverName: driverName}
	}
	return nil
}

func (d *Driver) notFound(p string) error {
	return driver.PathNotFoundError{Path: p, DriverName: driverName}
}

func isNotFound(err error) bool {
	var nsk *types.NoSuchKey
	var nf *types.NotFound
	if errors.As(err, &nsk) || errors.As(err, &nf) {
		return true
	}
	var ae smithy.APIError
	return errors.As(err, &ae) && (ae.ErrorCode() == "NotFound" || ae.ErrorCode() == "NoSuchKey")
}

func isInvalidRange(err error) bool {
	var ae smithy.APIError
	return errors.As(err, &ae) && ae.ErrorCode() == "InvalidRange"
}

// object is one stored piece of a file.
type object struct {
	key     string
	size    int64
	modTime time.Time
}

// pieces returns the objects that make file p, in order: its plain object, or its segments.
// None: p is no file.
func (d *Driver) pieces(ctx context.Context, p string) ([]object, error) {
	k := d.key(p)
	h, err := d.c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &d.bucket, Key: &k})
	if err == nil {
		return []object{{key: k, size: aws.ToInt64(h.ContentLength), modTime: aws.ToTime(h.LastModified)}}, nil
	}
	if !isNotFound(err) {
		return nil, err
	}
	return d.segments(ctx, k)
}

// segments lists the segments of key in offset order.
func (d *Driver) segments(ctx context.Context, key string) ([]object, error) {
	var out []object
	err := d.list(ctx, key+segSep, "", func(o types.Object) error {
		out = append(out, object{key: aws.ToString(o.Key), size: aws.ToInt64(o.Size), modTime: aws.ToTime(o.LastModified)})
		return nil
	}, nil)
	return out, err
}

func (d *Driver) list(ctx context.Context, prefix, delim string, obj func(types.Object) error, dir func(string) error) error {
	in := &s3.ListObjectsV2Input{Bucket: &d.bucket, Prefix: &prefix}
	if delim != "" {
		in.Delimiter = &delim
	}
	pg := s3.NewListObjectsV2Paginator(d.c, in)
	for pg.HasMorePages() {
		out, err := pg.NextPage(ctx)
		if err != nil {
			return err
		}
		for _, o := range out.Contents {
			if err := obj(o); err != nil {
				return err
			}
		}
		if dir != nil {
			for _, cp := range out.CommonPrefixes {
				if err := dir(aws.ToString(cp.Prefix)); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func total(ps []object) (size int64, mod time.Time) {
	for _, o := range ps {
		size += o.size
		if o.modTime.After(mod) {
			mod = o.modTime
		}
	}
	return size, mod
}

// GetContent implements driver.StorageDriver.
func (d *Driver) GetContent(ctx context.Context, p string) ([]byte, error) {
	rc, err := d.Reader(ctx, p, 0)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

// PutContent implements driver.StorageDriver: one PutObject, atomic for readers.
func (d *Driver) PutContent(ctx context.Context, p string, content []byte) error {
	if err := d.check(p, false); err != nil {
		return err
	}
	if err := d.noFileAbove(ctx, p); err != nil {
		return err
	}
	return d.put(ctx, d.key(p), content)
}

func (d *Driver) put(ctx context.Context, key string, b []byte) error {
	_, err := d.c.PutObject(ctx, &s3.PutObjectInput{Bucket: &d.bucket, Key: &key, Body: bytes.NewReader(b),
		ContentLength: aws.Int64(int64(len(b)))})
	return err
}

// noFileAbove refuses p when one of its parent directories is a file.
func (d *Driver) noFileAbove(ctx context.Context, p string) error {
	for i := strings.LastIndexByte(p, '/'); i > 0; i = strings.LastIndexByte(p[:i], '/') {
		parent := p[:i]
		d.dirsMu.Lock()
		known := d.dirs[parent]
		d.dirsMu.Unlock()
		if known {
			return nil // its own parents were checked with it
		}
		ps, err := d.pieces(ctx, parent)
		if err != nil {
			return err
		}
		if len(ps) > 0 {
			return fmt.Errorf("%s: cannot write %s: %s is a file", driverName, p, parent)
		}
	}
	d.dirsMu.Lock()
	if len(d.dirs) > 100000 {
		clear(d.dirs)
	}
	for i := strings.LastIndexByte(p, '/'); i > 0; i = strings.LastIndexByte(p[:i], '/') {
		d.dirs[p[:i]] = true
	}
	d.dirsMu.Unlock()
	return nil
}

// Reader implements driver.StorageDriver.
func (d *Driver) Reader(ctx context.Context, p string, offset int64) (io.ReadCloser, error) {
	if err := d.check(p, false); err != nil {
		return nil, err
	}
	if offset < 0 {
		return nil, driver.InvalidOffsetError{Path: p, Offset: offset, DriverName: driverName}
	}
	k := d.key(p)
	if offset == 0 { // the common case, one request: a whole plain object
		out, err := d.c.GetObject(ctx, &s3.GetObjectInput{Bucket: &d.bucket, Key: &k})
		if err == nil {
			return out.Body, nil
		}
		if !isNotFound(err) {
			return nil, err
		}
	}
	ps, err := d.pieces(ctx, p)
	if err != nil {
		return nil, err
	}
	if len(ps) == 0 {
		return nil, d.notFound(p)
	}
	if size, _ := total(ps); offset > size {
		return nil, driver.InvalidOffsetError{Path: p, Offset: offset, DriverName: driverName}
	}
	return &multiReader{ctx: ctx, d: d, pieces: ps, skip: offset}, nil
}

// multiReader reads pieces one after the other, opening each when it is reached.
type multiReader struct {
	ctx    context.Context
	d      *Driver
	pieces []object
	skip   int64
	cur    io.ReadCloser
}

func (r *multiReader) Read(b []byte) (int, error) {
	for {
		if r.cur == nil {
			for len(r.pieces) > 0 && r.skip >= r.pieces[0].size {
				r.skip -= r.pieces[0].size
				r.pieces = r.pieces[1:]
			}
			if len(r.pieces) == 0 {
				return 0, io.EOF
			}
			o := r.pieces[0]
			in := &s3.GetObjectInput{Bucket: &r.d.bucket, Key: &o.key}
			if r.skip > 0 {
				in.Range = aws.String("bytes=" + strconv.FormatInt(r.skip, 10) + "-")
			}
			out, err := r.d.c.GetObject(r.ctx, in)
			if err != nil {
				return 0, err
			}
			r.cur, r.skip, r.pieces = out.Body, 0, r.pieces[1:]
		}
		n, err := r.cur.Read(b)
		if err == io.EOF {
			r.cur.Close()
			r.cur = nil
			if n > 0 {
				return n, nil
			}
			continue
		}
		return n, err
	}
}

func (r *multiReader) Close() error {
	if r.cur != nil {
		return r.cur.Close()
	}
	return nil
}

// Stat implements driver.StorageDriver.
func (d *Driver) Stat(ctx context.Context, p string) (driver.FileInfo, error) {
	if err := d.check(p, true); err != nil {
		return nil, err
	}
	if p != "/" {
		ps, err := d.pieces(ctx, p)
		if err != nil {
			return nil, err
		}
		if len(ps) > 0 {
			size, mod := total(ps)
			return driver.BasicFileInfo{FPath: p, FSize: size, FModTime: mod}, nil
		}
	}
	prefix := d.dirPrefix(p)
	out, err := d.c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: &d.bucket, Prefix: &prefix, MaxKeys: aws.Int32(1)})
	if err != nil {
		return nil, err
	}
	if len(out.Contents) == 0 && p != "/" {
		return nil, d.notFound(p)
	}
	return driver.BasicFileInfo{FPath: p, FIsDir: true}, nil
}

func (d *Driver) dirPrefix(p string) string {
	if p == "/" {
		return d.prefix
	}
	return d.key(p) + "/"
}

// List implements driver.StorageDriver.
func (d *Driver) List(ctx context.Context, p string) ([]string, error) {
	if err := d.check(p, true); err != nil {
		return nil, err
	}
	prefix := d.dirPrefix(p)
	seen := map[string]bool{}
	add := func(key string) {
		name := strings.TrimSuffix(strings.TrimPrefix(key, prefix), "/")
		name, _, _ = strings.Cut(name, segSep)
		if name != "" {
			seen[strings.TrimSuffix(d.pathOf(prefix), "/")+"/"+name] = true
		}
	}
	err := d.list(ctx, prefix, "/", func(o types.Object) error { add(aws.ToString(o.Key)); return nil },
		func(cp string) error { add(cp); return nil })
	if err != nil {
		return nil, err
	}
	if len(seen) == 0 && p != "/" {
		return nil, d.notFound(p)
	}
	out := make([]string, 0, len(seen))
	for k := range seen {
		out = append(out, k)
	}
	slices.Sort(out)
	return out, nil
}

// Move implements driver.StorageDriver: the destination appears whole (a copy, or a completed multipart
// upload), then the source goes.
func (d *Driver) Move(ctx context.Context, src, dst string) error {
	if err := d.check(src, false); err != nil {
		return err
	}
	if err := d.check(dst, false); err != nil {
		return err
	}
	ps, err := d.pieces(ctx, src)
	if err != nil {
		return err
	}
	if len(ps) == 0 {
		return d.notFound(src)
	}
	if err := d.concat(ctx, ps, d.key(dst)); err != nil {
		return fmt.Errorf("%s: move %s to %s: %w", driverName, src, dst, err)
	}
	return d.deleteKeys(ctx, keysOf(ps))
}

func keysOf(ps []object) []string {
	ks := make([]string, len(ps))
	for i, o := range ps {
		ks[i] = o.key
	}
	return ks
}

func (d *Driver) copySource(key string) *string { return aws.String(d.bucket + "/" + key) }

// concat writes the concatenation of ps to dst.
func (d *Driver) concat(ctx context.Context, ps []object, dst string) error {
	size, _ := total(ps)
	if len(ps) == 1 && size <= maxCopyObject {
		_, err := d.c.CopyObject(ctx, &s3.CopyObjectInput{Bucket: &d.bucket, Key: &dst, CopySource: d.copySource(ps[0].key)})
		return err
	}
	if size < minPart {
		var buf bytes.Buffer
		for _, o := range ps {
			if err := d.readRange(ctx, o.key, 0, o.size, &buf); err != nil {
				return err
			}
		}
		return d.put(ctx, dst, buf.Bytes())
	}
	mp, err := d.startMultipart(ctx, dst)
	if err != nil {
		return err
	}
	var buf bytes.Buffer // small pieces joined until a part is big enough
	err = func() error {
		for _, o := range ps {
			start := int64(0)
			if buf.Len() > 0 || o.size < minPart {
				take := min(int64(minPart-buf.Len()), o.size)
				if err := d.readRange(ctx, o.key, 0, take, &buf); err != nil {
					return err
				}
				start = take
				if buf.Len() >= minPart {
					if err := mp.upload(ctx, buf.Bytes()); err != nil {
						return err
					}
					buf.Reset()
				}
			}
			for start < o.size {
				rest := o.size - start
				if rest < minPart { // too small for a part of its own: joined with what follows
					if err := d.readRange(ctx, o.key, start, rest, &buf); err != nil {
						return err
					}
					break
				}
				n := min(rest, copyPart)
				if rest-n < minPart {
					n = rest
				}
				if err := mp.copy(ctx, o.key, start, n); err != nil {
					return err
				}
				start += n
			}
		}
		if buf.Len() > 0 {
			return mp.upload(ctx, buf.Bytes())
		}
		return nil
	}()
	if err != nil {
		mp.abort()
		return err
	}
	return mp.complete(ctx)
}

func (d *Driver) readRange(ctx context.Context, key string, start, n int64, w io.Writer) error {
	if n == 0 {
		return nil
	}
	out, err := d.c.GetObject(ctx, &s3.GetObjectInput{Bucket: &d.bucket, Key: &key,
		Range: aws.String(fmt.Sprintf("bytes=%d-%d", start, start+n-1))})
	if err != nil {
		return err
	}
	defer out.Body.Close()
	got, err := io.Copy(w, out.Body)
	if err == nil && got != n {
		err = fmt.Errorf("%s: read %d bytes of %s at %d, want %d", driverName, got, key, start, n)
	}
	return err
}

// multipart is one multipart upload in progress.
type multipart struct {
	d     *Driver
	key   string
	id    string
	parts []types.CompletedPart
}

func (d *Driver) startMultipart(ctx context.Context, key string) (*multipart, error) {
	out, err := d.c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: &d.bucket, Key: &key})
	if err != nil {
		return nil, err
	}
	return &multipart{d: d, key: key, id: aws.ToString(out.UploadId)}, nil
}

func (m *multipart) upload(ctx context.Context, b []byte) error {
	n := int32(len(m.parts) + 1)
	out, err := m.d.c.UploadPart(ctx, &s3.UploadPartInput{Bucket: &m.d.bucket, Key: &m.key, UploadId: &m.id,
		PartNumber: &n, Body: bytes.NewReader(b), ContentLength: aws.Int64(int64(len(b)))})
	if err != nil {
		return err
	}
	m.parts = append(m.parts, types.CompletedPart{ETag: out.ETag, PartNumber: &n})
	return nil
}

func (m *multipart) copy(ctx context.Context, src string, start, n int64) error {
	pn := int32(len(m.parts) + 1)
	out, err := m.d.c.UploadPartCopy(ctx, &s3.UploadPartCopyInput{Bucket: &m.d.bucket, Key: &m.key, UploadId: &m.id,
		PartNumber: &pn, CopySource: m.d.copySource(src),
		CopySourceRange: aws.String(fmt.Sprintf("bytes=%d-%d", start, start+n-1))})
	if err != nil {
		return err
	}
	m.parts = append(m.parts, types.CompletedPart{ETag: out.CopyPartResult.ETag, PartNumber: &pn})
	return nil
}

func (m *multipart) complete(ctx context.Context) error {
	_, err := m.d.c.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: &m.d.bucket, Key: &m.key,
		UploadId: &m.id, MultipartUpload: &types.CompletedMultipartUpload{Parts: m.parts}})
	if err != nil {
		m.abort()
	}
	return err
}

// abort drops the parts; it runs even when the request's context ended, so no parts are left behind.
func (m *multipart) abort() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, _ = m.d.c.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: &m.d.bucket, Key: &m.key, UploadId: &m.id})
}

// Delete implements driver.StorageDriver: the file (plain or segmented) or the whole tree at p.
func (d *Driver) Delete(ctx context.Context, p string) error {
	if err := d.check(p, false); err != nil {
		return err
	}
	k := d.key(p)
	ps, err := d.pieces(ctx, p)
	if err != nil {
		return err
	}
	keys := keysOf(ps)
	if len(ps) == 1 && ps[0].key == k { // a plain file may have stale segments under it
		segs, err := d.segments(ctx, k)
		if err != nil {
			return err
		}
		keys = append(keys, keysOf(segs)...)
	}
	err = d.list(ctx, k+"/", "", func(o types.Object) error { keys = append(keys, aws.ToString(o.Key)); return nil }, nil)
	if err != nil {
		return err
	}
	if len(keys) == 0 {
		return d.notFound(p)
	}
	d.dirsMu.Lock()
	clear(d.dirs) // a deleted tree may come back as a file
	d.dirsMu.Unlock()
	return d.deleteKeys(ctx, keys)
}

func (d *Driver) deleteKeys(ctx context.Context, keys []string) error {
	var errs []error
	for _, k := range keys {
		if _, err := d.c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &d.bucket, Key: &k}); err != nil && !isNotFound(err) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Walk implements driver.StorageDriver from one listing of the tree.
func (d *Driver) Walk(ctx context.Context, p string, fn driver.WalkFn) error {
	if err := d.check(p, true); err != nil {
		return err
	}
	prefix := d.dirPrefix(p)
	type entry struct {
		size     int64
		mod      time.Time
		dir      bool
		children map[string]bool
	}
	entries := map[string]*entry{}
	get := func(path string) *entry {
		e := entries[path]
		if e == nil {
			e = &entry{children: map[string]bool{}}
			entries[path] = e
		}
		return e
	}
	base := strings.TrimSuffix(d.pathOf(prefix), "/")
	err := d.list(ctx, prefix, "", func(o types.Object) error {
		rel, _, _ := strings.Cut(strings.TrimPrefix(aws.ToString(o.Key), prefix), segSep)
		parent := base
		parts := strings.Split(rel, "/")
		for i, name := range parts {
			full := parent + "/" + name
			get(parent).children[full] = true
			e := get(full)
			if i < len(parts)-1 {
				e.dir = true
			} else {
				e.size += aws.ToInt64(o.Size)
				if t := aws.ToTime(o.LastModified); t.After(e.mod) {
					e.mod = t
				}
			}
			parent = full
		}
		return nil
	}, nil)
	if err != nil {
		return err
	}
	root := entries[base]
	if root == nil {
		if p == "/" {
			return nil
		}
		return d.notFound(p)
	}
	var walk func(e *entry) error
	walk = func(e *entry) error {
		for _, c := range slices.Sorted(func(yield func(string) bool) {
			for k := range e.children {
				if !yield(k) {
					return
				}
			}
		}) {
			ce := entries[c]
			fi := driver.BasicFileInfo{FPath: c, FSize: ce.size, FModTime: ce.mod, FIsDir: ce.dir}
			if err := fn(fi); err != nil {
				if errors.Is(err, driver.ErrSkipDir) && ce.dir {
					continue
				}
				return err
			}
			if ce.dir {
				if err := walk(ce); err != nil {
					return err
				}
			}
		}
		return nil
	}
	return walk(root)
}

// RedirectURL implements driver.Redirector: a presigned GET of the plain object at p (blobs are plain).
func (d *Driver) RedirectURL(ctx context.Context, p string) (string, error) {
	if err := d.check(p, false); err != nil {
		return "", err
	}
	k := d.key(p)
	req, err := d.presign.PresignGetObject(ctx, &s3.GetObjectInput{Bucket: &d.bucket, Key: &k}, s3.WithPresignExpires(d.expiry))
	if err != nil {
		return "", err
	}
	return req.URL, nil
}
