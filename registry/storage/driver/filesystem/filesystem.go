// Package filesystem is the local-disk storage driver. Files live under a root
// directory; temporary files for atomic writes go to root/.tmp, which no valid
// driver path can reach. Readers are *os.File so blob downloads use sendfile.
//
// Durability: a file is fsynced before it is renamed into place, and the
// directory that received the new name (and every directory created for it) is
// fsynced after, as distribution's driver does. Once PutContent, Move or a
// writer's Commit returns, what was written survives a power loss: a digest
// never names a truncated or missing file because the rename reached the disk
// before the data did.
package filesystem

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"github.com/berth-dev/berth/registry/storage/driver"
)

const name = "filesystem"

// Driver stores files under a root directory.
type Driver struct {
	root string
	tmp  string
}

var _ driver.StorageDriver = (*Driver)(nil)

// New creates the root directory if needed and returns a driver for it.
func New(root string) (*Driver, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, err
	}
	d := &Driver{root: abs, tmp: filepath.Join(abs, ".tmp")}
	if err := os.MkdirAll(d.tmp, 0o755); err != nil {
		return nil, fmt.Errorf("filesystem driver: %w", err)
	}
	return d, nil
}

// Name implements driver.StorageDriver.
func (d *Driver) Name() string { return name }

func (d *Driver) full(p string, allowRoot bool) (string, error) {
	if !driver.ValidPath(p, allowRoot) {
		return "", driver.InvalidPathError{Path: p, DriverName: name}
	}
	return filepath.Join(d.root, filepath.FromSlash(p)), nil
}

func (d *Driver) notFound(p string, err error) error {
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return driver.PathNotFoundError{Path: p, DriverName: name}
	}
	return err
}

// syncFile flushes a file or directory to stable storage. Tests replace it to
// watch the order of syncs and renames.
var syncFile = func(f *os.File) error { return f.Sync() }

// syncDir fsyncs a directory, making the names created in it durable.
func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = syncFile(f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// syncPath fsyncs an existing file by name (data written by an earlier writer).
func syncPath(p string) error {
	f, err := os.OpenFile(p, os.O_RDONLY, 0)
	if err != nil {
		return err
	}
	err = syncFile(f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// mkdirAll creates dir and its missing parents and returns the directories
// whose entries changed (the parent of each directory created), deepest
// first, for syncing once the new file is in place.
func (d *Driver) mkdirAll(dir string) ([]string, error) {
	var created []string
	for p := dir; len(p) > len(d.root); p = filepath.Dir(p) {
		if _, err := os.Stat(p); err == nil {
			break
		}
		created = append(created, p)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	dirs := make([]string, 0, len(created))
	for _, c := range created {
		dirs = append(dirs, filepath.Dir(c))
	}
	return dirs, nil
}

// rename moves a synced file to fp and makes the new name durable: the
// directory holding it, then the parents of directories made for it.
func (d *Driver) rename(src, fp string) error {
	parents, err := d.mkdirAll(filepath.Dir(fp))
	if err != nil {
		return err
	}
	if err := os.Rename(src, fp); err != nil {
		return err
	}
	if err := syncDir(filepath.Dir(fp)); err != nil {
		return err
	}
	for _, p := range parents {
		if err := syncDir(p); err != nil {
			return err
		}
	}
	return nil
}

// GetContent implements driver.StorageDriver.
func (d *Driver) GetContent(ctx context.Context, p string) ([]byte, error) {
	fp, err := d.full(p, false)
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(fp)
	if err != nil {
		if errors.Is(err, syscall.EISDIR) {
			return nil, driver.PathNotFoundError{Path: p, DriverName: name}
		}
		return nil, d.notFound(p, err)
	}
	return b, nil
}

func (d *Driver) tempFile() (*os.File, error) {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return os.OpenFile(filepath.Join(d.tmp, hex.EncodeToString(b[:])), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
}

// PutContent implements driver.StorageDriver: write a temp file, then rename.
func (d *Driver) PutContent(ctx context.Context, p string, content []byte) error {
	fp, err := d.full(p, false)
	if err != nil {
		return err
	}
	f, err := d.tempFile()
	if err != nil {
		return err
	}
	tmp := f.Name()
	if _, err := writeBounded(f, content); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := syncFile(f); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := d.rename(tmp, fp); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

// Reader implements driver.StorageDriver. The returned reader is an *os.File.
func (d *Driver) Reader(ctx context.Context, p string, offset int64) (io.ReadCloser, error) {
	fp, err := d.full(p, false)
	if err != nil {
		return nil, err
	}
	if offset < 0 {
		return nil, driver.InvalidOffsetError{Path: p, Offset: offset, DriverName: name}
	}
	f, err := os.Open(fp)
	if err != nil {
		return nil, d.notFound(p, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if fi.IsDir() {
		f.Close()
		return nil, driver.PathNotFoundError{Path: p, DriverName: name}
	}
	if offset > fi.Size() {
		f.Close()
		return nil, driver.InvalidOffsetError{Path: p, Offset: offset, DriverName: name}
	}
	if offset > 0 {
		if _, err := f.Seek(offset, io.SeekStart); err != nil {
			f.Close()
			return nil, err
		}
	}
	return f, nil
}

// Writer implements driver.StorageDriver.
func (d *Driver) Writer(ctx context.Context, p string, append bool) (driver.FileWriter, error) {
	fp, err := d.full(p, false)
	if err != nil {
		return nil, err
	}
	var f *os.File
	if append {
		f, err = os.OpenFile(fp, os.O_WRONLY, 0o644)
		if err != nil {
			return nil, d.notFound(p, err)
		}
	} else {
		if err := os.MkdirAll(filepath.Dir(fp), 0o755); err != nil {
			return nil, err
		}
		f, err = os.OpenFile(fp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
		if err != nil {
			return nil, err
		}
	}
	off, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		f.Close()
		return nil, err
	}
	return &fileWriter{f: f, size: off}, nil
}

type fileWriter struct {
	f      *os.File
	size   int64
	closed bool
}

func (w *fileWriter) Write(p []byte) (int, error) {
	if w.closed {
		return 0, os.ErrClosed
	}
	n, err := writeBounded(w.f, p)
	w.size += int64(n)
	return n, err
}

// maxWrite bounds the bytes of one write(2). Linux (6.x; ext4 among others)
// gives a file's new page cache folios the size of the write: a 128 KiB write
// at a 128 KiB offset takes a 128 KiB (order-5) folio from the free lists of
// large blocks, not a small page just freed. Under a hypervisor with free page
// reporting (virtio-balloon) large free blocks have been handed back to the
// host, so the copy into such a folio faults on the host for every 4 KiB,
// unseen by the guest's profiler: on the benchmark's VM (page_reporting_order
// 5), writing 256 MiB into a new file took 0.4-1.1 s of kernel CPU in 128 KiB
// or larger writes, 0.08-0.17 s in 32 or 64 KiB writes. 32 KiB is order 3, the
// largest the per-CPU free lists keep, and what distribution writes; it costs
// 8192 write calls per 256 MiB.
const maxWrite = 32 << 10

// writeBounded writes p to w in pieces of at most maxWrite bytes.
func writeBounded(w io.Writer, p []byte) (int, error) {
	n := 0
	for n < len(p) {
		k, err := w.Write(p[n : n+min(len(p)-n, maxWrite)])
		n += k
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// ReadFrom lets io.Copy into the writer use copy_file_range/splice.
func (w *fileWriter) ReadFrom(r io.Reader) (int64, error) {
	if w.closed {
		return 0, os.ErrClosed
	}
	n, err := w.f.ReadFrom(r)
	w.size += n
	return n, err
}

func (w *fileWriter) Size() int64 { return w.size }

func (w *fileWriter) Close() error {
	if w.closed {
		return nil
	}
	w.closed = true
	return w.f.Close()
}

func (w *fileWriter) Cancel(ctx context.Context) error {
	name := w.f.Name()
	w.Close()
	return os.Remove(name)
}

// Commit makes what was written durable (fsync).
func (w *fileWriter) Commit(ctx context.Context) error {
	if w.closed {
		return os.ErrClosed
	}
	return syncFile(w.f)
}

// Stat implements driver.StorageDriver.
func (d *Driver) Stat(ctx context.Context, p string) (driver.FileInfo, error) {
	fp, err := d.full(p, true)
	if err != nil {
		return nil, err
	}
	fi, err := os.Stat(fp)
	if err != nil {
		return nil, d.notFound(p, err)
	}
	return driver.BasicFileInfo{FPath: p, FSize: sizeOf(fi), FModTime: fi.ModTime(), FIsDir: fi.IsDir()}, nil
}

func sizeOf(fi fs.FileInfo) int64 {
	if fi.IsDir() {
		return 0
	}
	return fi.Size()
}

// List implements driver.StorageDriver.
func (d *Driver) List(ctx context.Context, p string) ([]string, error) {
	fp, err := d.full(p, true)
	if err != nil {
		return nil, err
	}
	ents, err := os.ReadDir(fp)
	if err != nil {
		return nil, d.notFound(p, err)
	}
	out := make([]string, 0, len(ents))
	prefix := p
	if prefix != "/" {
		prefix += "/"
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") {
			continue
		}
		out = append(out, prefix+e.Name())
	}
	return out, nil
}

// Move implements driver.StorageDriver.
func (d *Driver) Move(ctx context.Context, src, dst string) error {
	fs, err := d.full(src, false)
	if err != nil {
		return err
	}
	fd, err := d.full(dst, false)
	if err != nil {
		return err
	}
	if _, err := os.Stat(fs); err != nil {
		return d.notFound(src, err)
	}
	// The data first (a no-op when the writer's Commit synced it), so the new
	// name can never reach the disk before the bytes it names.
	if err := syncPath(fs); err != nil {
		return d.notFound(src, err)
	}
	return d.rename(fs, fd)
}

// Delete implements driver.StorageDriver.
func (d *Driver) Delete(ctx context.Context, p string) error {
	fp, err := d.full(p, false)
	if err != nil {
		return err
	}
	if _, err := os.Lstat(fp); err != nil {
		return d.notFound(p, err)
	}
	return os.RemoveAll(fp)
}

// Walk implements driver.StorageDriver.
func (d *Driver) Walk(ctx context.Context, p string, fn driver.WalkFn) error {
	fp, err := d.full(p, true)
	if err != nil {
		return err
	}
	fi, err := os.Stat(fp)
	if err != nil {
		return d.notFound(p, err)
	}
	if !fi.IsDir() {
		return nil
	}
	return d.walk(ctx, p, fp, fn)
}

func (d *Driver) walk(ctx context.Context, p, fp string, fn driver.WalkFn) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	ents, err := os.ReadDir(fp)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil // removed concurrently
		}
		return err
	}
	sort.Slice(ents, func(i, j int) bool { return ents[i].Name() < ents[j].Name() })
	prefix := p
	if prefix != "/" {
		prefix += "/"
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") {
			continue
		}
		info, err := e.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			return err
		}
		child := prefix + e.Name()
		bfi := driver.BasicFileInfo{FPath: child, FSize: sizeOf(info), FModTime: info.ModTime(), FIsDir: info.IsDir()}
		err = fn(bfi)
		if info.IsDir() {
			if errors.Is(err, driver.ErrSkipDir) {
				continue
			}
			if err != nil {
				return err
			}
			if err := d.walk(ctx, child, filepath.Join(fp, e.Name()), fn); err != nil {
				return err
			}
			continue
		}
		if err != nil && !errors.Is(err, driver.ErrSkipDir) {
			return err
		}
	}
	return nil
}
