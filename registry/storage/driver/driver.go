// Package driver defines the narrow interface every blob-store backend
// implements (filesystem, in-memory, S3), modelled on distribution's
// storagedriver. Every implementation must pass the shared suite in
// driver/testsuite.
//
// Paths are slash-separated, absolute ("/a/b"), made of components of
// [A-Za-z0-9._-] that neither are "." or ".." nor start with "."; drivers reject
// anything else with InvalidPathError. The registry builds all paths through
// the typed path specs of package storage, never from raw user input.
package driver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"
)

// StorageDriver is a backend for the registry's blob store.
type StorageDriver interface {
	// Name of the driver, for logs and errors.
	Name() string
	// GetContent returns the whole content of a (small) file.
	GetContent(ctx context.Context, path string) ([]byte, error)
	// PutContent atomically replaces the content of a file: readers see the old
	// or the new content, never a mix.
	PutContent(ctx context.Context, path string, content []byte) error
	// Reader opens a file for reading from offset. Readers of filesystem files
	// are *os.File so callers can let sendfile work.
	Reader(ctx context.Context, path string, offset int64) (io.ReadCloser, error)
	// Writer opens a file for writing. With append, the file must exist and
	// writing continues at its end; without, the file is created or truncated.
	Writer(ctx context.Context, path string, append bool) (FileWriter, error)
	// Stat describes a file or directory.
	Stat(ctx context.Context, path string) (FileInfo, error)
	// List returns the full paths of the direct children of a directory, sorted.
	List(ctx context.Context, path string) ([]string, error)
	// Move renames a file, replacing the destination atomically where the
	// backend allows it.
	Move(ctx context.Context, sourcePath, destPath string) error
	// Delete removes a file or a directory tree.
	Delete(ctx context.Context, path string) error
	// Walk calls fn for every file and directory under path (not path itself),
	// in lexical order. Returning ErrSkipDir from fn on a directory skips it.
	Walk(ctx context.Context, path string, fn WalkFn) error
}

// Redirector is a driver that can hand out a URL reading a file directly (a presigned S3 GET), so the
// registry can redirect blob downloads there.
type Redirector interface {
	RedirectURL(ctx context.Context, path string) (string, error)
}

// FileWriter writes a file opened with StorageDriver.Writer.
type FileWriter interface {
	io.WriteCloser
	// Size is the number of bytes in the file so far (including what existed
	// before an append).
	Size() int64
	// Cancel stops the write and removes the file.
	Cancel(ctx context.Context) error
	// Commit flushes what was written; the writer must still be closed.
	Commit(ctx context.Context) error
}

// FileInfo describes a file or directory.
type FileInfo interface {
	Path() string
	Size() int64
	ModTime() time.Time
	IsDir() bool
}

// WalkFn is called by Walk for each entry.
type WalkFn func(fi FileInfo) error

// ErrSkipDir tells Walk not to descend into a directory.
var ErrSkipDir = errors.New("skip this directory")

// ErrUnsupportedMethod is returned by a driver that cannot do an operation.
var ErrUnsupportedMethod = errors.New("unsupported method")

// PathNotFoundError is returned when a path does not exist.
type PathNotFoundError struct {
	Path       string
	DriverName string
}

func (e PathNotFoundError) Error() string {
	return fmt.Sprintf("%s: path not found: %s", e.DriverName, e.Path)
}

// InvalidPathError is returned for a path that breaks the path rules.
type InvalidPathError struct {
	Path       string
	DriverName string
}

func (e InvalidPathError) Error() string {
	return fmt.Sprintf("%s: invalid path: %q", e.DriverName, e.Path)
}

// InvalidOffsetError is returned when a read offset is out of range.
type InvalidOffsetError struct {
	Path       string
	Offset     int64
	DriverName string
}

func (e InvalidOffsetError) Error() string {
	return fmt.Sprintf("%s: invalid offset %d for %s", e.DriverName, e.Offset, e.Path)
}

// IsNotFound reports whether err is (or wraps) a PathNotFoundError.
func IsNotFound(err error) bool {
	var nf PathNotFoundError
	return errors.As(err, &nf)
}

// ValidPath reports whether p follows the path rules. "/" is valid only where
// allowRoot is set (List, Walk, Stat).
func ValidPath(p string, allowRoot bool) bool {
	if p == "/" {
		return allowRoot
	}
	if len(p) < 2 || p[0] != '/' || p[len(p)-1] == '/' {
		return false
	}
	start := 1
	for i := 1; i <= len(p); i++ {
		if i < len(p) && p[i] != '/' {
			c := p[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
				return false
			}
			continue
		}
		comp := p[start:i]
		if comp == "" || comp[0] == '.' {
			return false
		}
		start = i + 1
	}
	return true
}

// BasicFileInfo is a plain FileInfo.
type BasicFileInfo struct {
	FPath    string
	FSize    int64
	FModTime time.Time
	FIsDir   bool
}

func (f BasicFileInfo) Path() string       { return f.FPath }
func (f BasicFileInfo) Size() int64        { return f.FSize }
func (f BasicFileInfo) ModTime() time.Time { return f.FModTime }
func (f BasicFileInfo) IsDir() bool        { return f.FIsDir }
