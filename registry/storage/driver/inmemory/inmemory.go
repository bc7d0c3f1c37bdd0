// Package inmemory is a storage driver that keeps everything in process
// memory: for tests and throwaway registries.
package inmemory

import (
	"bytes"
	"context"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/berth-dev/berth/registry/storage/driver"
)

const name = "inmemory"

type file struct {
	data    []byte
	modTime time.Time
}

// Driver is an in-memory driver. Directories exist implicitly while they hold
// files.
type Driver struct {
	mu    sync.RWMutex
	files map[string]*file
}

var _ driver.StorageDriver = (*Driver)(nil)

// New returns an empty in-memory driver.
func New() *Driver { return &Driver{files: map[string]*file{}} }

// Name implements driver.StorageDriver.
func (d *Driver) Name() string { return name }

func (d *Driver) check(p string, allowRoot bool) error {
	if !driver.ValidPath(p, allowRoot) {
		return driver.InvalidPathError{Path: p, DriverName: name}
	}
	return nil
}

func (d *Driver) notFound(p string) error { return driver.PathNotFoundError{Path: p, DriverName: name} }

func dirPrefix(p string) string {
	if p == "/" {
		return "/"
	}
	return p + "/"
}

// isDirLocked reports whether any file lives under p.
func (d *Driver) isDirLocked(p string) bool {
	pre := dirPrefix(p)
	for k := range d.files {
		if strings.HasPrefix(k, pre) {
			return true
		}
	}
	return false
}

// parentIsFileLocked reports whether some ancestor of p is a file.
func (d *Driver) parentIsFileLocked(p string) bool {
	for i := len(p) - 1; i > 0; i-- {
		if p[i] == '/' {
			if _, ok := d.files[p[:i]]; ok {
				return true
			}
		}
	}
	return false
}

// GetContent implements driver.StorageDriver.
func (d *Driver) GetContent(ctx context.Context, p string) ([]byte, error) {
	if err := d.check(p, false); err != nil {
		return nil, err
	}
	d.mu.RLock()
	defer d.mu.RUnlock()
	f, ok := d.files[p]
	if !ok {
		return nil, d.notFound(p)
	}
	return bytes.Clone(f.data), nil
}

// PutContent implements driver.StorageDriver.
func (d *Driver) PutContent(ctx context.Context, p string, content []byte) error {
	if err := d.check(p, false); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.isDirLocked(p) || d.parentIsFileLocked(p) {
		return driver.InvalidPathError{Path: p, DriverName: name}
	}
	d.files[p] = &file{data: bytes.Clone(content), modTime: time.Now()}
	return nil
}

// Reader implements driver.StorageDriver.
func (d *Driver) Reader(ctx context.Context, p string, offset int64) (io.ReadCloser, error) {
	if err := d.check(p, false); err != nil {
		return nil, err
	}
	if offset < 0 {
		return nil, driver.InvalidOffsetError{Path: p, Offset: offset, DriverName: name}
	}
	d.mu.RLock()
	defer d.mu.RUnlock()
	f, ok := d.files[p]
	if !ok {
		return nil, d.notFound(p)
	}
	if offset > int64(len(f.data)) {
		return nil, driver.InvalidOffsetError{Path: p, Offset: offset, DriverName: name}
	}
	// The slice is never mutated in place (writers append or replace), so
	// sharing it is safe.
	return io.NopCloser(bytes.NewReader(f.data[offset:len(f.data):len(f.data)])), nil
}

// Writer implements driver.StorageDriver.
func (d *Driver) Writer(ctx context.Context, p string, append bool) (driver.FileWriter, error) {
	if err := d.check(p, false); err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	f, ok := d.files[p]
	if append {
		if !ok {
			return nil, d.notFound(p)
		}
	} else {
		if d.isDirLocked(p) || d.parentIsFileLocked(p) {
			return nil, driver.InvalidPathError{Path: p, DriverName: name}
		}
		f = &file{modTime: time.Now()}
		d.files[p] = f
	}
	return &writer{d: d, path: p, f: f}, nil
}

type writer struct {
	d      *Driver
	path   string
	f      *file
	closed bool
}

func (w *writer) Write(p []byte) (int, error) {
	if w.closed {
		return 0, io.ErrClosedPipe
	}
	w.d.mu.Lock()
	defer w.d.mu.Unlock()
	// Appending never changes bytes below the old length, and readers hold
	// length-capped slices, so they keep seeing a consistent prefix.
	w.f.data = append(w.f.data, p...)
	w.f.modTime = time.Now()
	return len(p), nil
}

func (w *writer) Size() int64 {
	w.d.mu.RLock()
	defer w.d.mu.RUnlock()
	return int64(len(w.f.data))
}

func (w *writer) Close() error { w.closed = true; return nil }

func (w *writer) Cancel(ctx context.Context) error {
	w.closed = true
	w.d.mu.Lock()
	defer w.d.mu.Unlock()
	if w.d.files[w.path] == w.f {
		delete(w.d.files, w.path)
	}
	return nil
}

func (w *writer) Commit(ctx context.Context) error {
	if w.closed {
		return io.ErrClosedPipe
	}
	return nil
}

// Stat implements driver.StorageDriver.
func (d *Driver) Stat(ctx context.Context, p string) (driver.FileInfo, error) {
	if err := d.check(p, true); err != nil {
		return nil, err
	}
	d.mu.RLock()
	defer d.mu.RUnlock()
	if f, ok := d.files[p]; ok {
		return driver.BasicFileInfo{FPath: p, FSize: int64(len(f.data)), FModTime: f.modTime}, nil
	}
	if p == "/" || d.isDirLocked(p) {
		return driver.BasicFileInfo{FPath: p, FIsDir: true, FModTime: d.dirModTimeLocked(p)}, nil
	}
	return nil, d.notFound(p)
}

func (d *Driver) dirModTimeLocked(p string) time.Time {
	var t time.Time
	pre := dirPrefix(p)
	for k, f := range d.files {
		if strings.HasPrefix(k, pre) && f.modTime.After(t) {
			t = f.modTime
		}
	}
	return t
}

// List implements driver.StorageDriver.
func (d *Driver) List(ctx context.Context, p string) ([]string, error) {
	if err := d.check(p, true); err != nil {
		return nil, err
	}
	d.mu.RLock()
	defer d.mu.RUnlock()
	pre := dirPrefix(p)
	seen := map[string]bool{}
	for k := range d.files {
		if !strings.HasPrefix(k, pre) {
			continue
		}
		rest := k[len(pre):]
		if i := strings.IndexByte(rest, '/'); i >= 0 {
			rest = rest[:i]
		}
		seen[pre+rest] = true
	}
	if len(seen) == 0 && p != "/" {
		return nil, d.notFound(p)
	}
	out := make([]string, 0, len(seen))
	for k := range seen {
		out = append(out, k)
	}
	sort.Strings(out)
	return out, nil
}

// Move implements driver.StorageDriver.
func (d *Driver) Move(ctx context.Context, src, dst string) error {
	if err := d.check(src, false); err != nil {
		return err
	}
	if err := d.check(dst, false); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	f, ok := d.files[src]
	if !ok {
		return d.notFound(src)
	}
	if d.isDirLocked(dst) || d.parentIsFileLocked(dst) {
		return driver.InvalidPathError{Path: dst, DriverName: name}
	}
	delete(d.files, src)
	d.files[dst] = f
	return nil
}

// Delete implements driver.StorageDriver.
func (d *Driver) Delete(ctx context.Context, p string) error {
	if err := d.check(p, false); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	found := false
	if _, ok := d.files[p]; ok {
		delete(d.files, p)
		found = true
	}
	pre := dirPrefix(p)
	for k := range d.files {
		if strings.HasPrefix(k, pre) {
			delete(d.files, k)
			found = true
		}
	}
	if !found {
		return d.notFound(p)
	}
	return nil
}

// Walk implements driver.StorageDriver.
func (d *Driver) Walk(ctx context.Context, p string, fn driver.WalkFn) error {
	if err := d.check(p, true); err != nil {
		return err
	}
	d.mu.RLock()
	_, isFile := d.files[p]
	isDir := p == "/" || d.isDirLocked(p)
	d.mu.RUnlock()
	if isFile {
		return nil
	}
	if !isDir {
		return d.notFound(p)
	}
	return d.walk(ctx, p, fn)
}

func (d *Driver) walk(ctx context.Context, p string, fn driver.WalkFn) error {
	children, err := d.List(ctx, p)
	if err != nil {
		if driver.IsNotFound(err) {
			return nil
		}
		return err
	}
	for _, c := range children {
		fi, err := d.Stat(ctx, c)
		if err != nil {
			if driver.IsNotFound(err) {
				continue
			}
			return err
		}
		err = fn(fi)
		if fi.IsDir() {
			if err == driver.ErrSkipDir {
				continue
			}
			if err != nil {
				return err
			}
			if err := d.walk(ctx, c, fn); err != nil {
				return err
			}
			continue
		}
		if err != nil && err != driver.ErrSkipDir {
			return err
		}
	}
	return nil
}
