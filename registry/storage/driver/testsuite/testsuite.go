// Package testsuite is the one conformance suite every storage driver passes.
//
//	func TestFilesystem(t *testing.T) {
//		testsuite.Run(t, func(t *testing.T) driver.StorageDriver { d, _ := filesystem.New(t.TempDir()); return d })
//	}
package testsuite

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"testing"

	"github.com/berth-dev/berth/registry/storage/driver"
)

// Factory returns a fresh, empty driver for one test.
type Factory func(t *testing.T) driver.StorageDriver

// Run runs every driver test against drivers made by newDriver.
func Run(t *testing.T, newDriver Factory) {
	tests := []struct {
		name string
		fn   func(t *testing.T, d driver.StorageDriver)
	}{
		{"InvalidPaths", testInvalidPaths},
		{"PutGetContent", testPutGetContent},
		{"PutContentOverwrite", testPutContentOverwrite},
		{"GetContentMissing", testGetContentMissing},
		{"PutContentUnderFile", testPutContentUnderFile},
		{"ReaderOffsets", testReaderOffsets},
		{"WriterCreateAppend", testWriterCreateAppend},
		{"WriterTruncate", testWriterTruncate},
		{"WriterAppendMissing", testWriterAppendMissing},
		{"WriterCancel", testWriterCancel},
		{"Stat", testStat},
		{"List", testList},
		{"Move", testMove},
		{"Delete", testDelete},
		{"Walk", testWalk},
		{"Concurrent", testConcurrent},
		{"ReadWhileAppending", testReadWhileAppending},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, newDriver(t))
		})
	}
}

func randBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

func mustPut(t *testing.T, d driver.StorageDriver, p string, b []byte) {
	t.Helper()
	if err := d.PutContent(context.Background(), p, b); err != nil {
		t.Fatalf("PutContent(%s): %v", p, err)
	}
}

func mustGet(t *testing.T, d driver.StorageDriver, p string) []byte {
	t.Helper()
	b, err := d.GetContent(context.Background(), p)
	if err != nil {
		t.Fatalf("GetContent(%s): %v", p, err)
	}
	return b
}

func expectNotFound(t *testing.T, what string, err error) {
	t.Helper()
	if !driver.IsNotFound(err) {
		t.Fatalf("%s: want PathNotFoundError, got %v", what, err)
	}
}

func testInvalidPaths(t *testing.T, d driver.StorageDriver) {
	ctx := context.Background()
	bad := []string{"", "a", "/a/", "//a", "/a//b", "/../a", "/a/../b", "/a/./b", "/.hidden", "/a/.tmp/x", "/a b", "/a\x00", `/a\b`, "/%2e%2e", "/a:b"}
	for _, p := range bad {
		var ip driver.InvalidPathError
		if err := d.PutContent(ctx, p, []byte("x")); !errors.As(err, &ip) {
			t.Errorf("PutContent(%q) = %v, want InvalidPathError", p, err)
		}
		if _, err := d.GetContent(ctx, p); !errors.As(err, &ip) {
			t.Errorf("GetContent(%q) = %v, want InvalidPathError", p, err)
		}
		if _, err := d.Reader(ctx, p, 0); !errors.As(err, &ip) {
			t.Errorf("Reader(%q) = %v, want InvalidPathError", p, err)
		}
		if _, err := d.Writer(ctx, p, false); !errors.As(err, &ip) {
			t.Errorf("Writer(%q) = %v, want InvalidPathError", p, err)
		}
		if _, err := d.Stat(ctx, p); !errors.As(err, &ip) {
			t.Errorf("Stat(%q) = %v, want InvalidPathError", p, err)
		}
		if _, err := d.List(ctx, p); !errors.As(err, &ip) {
			t.Errorf("List(%q) = %v, want InvalidPathError", p, err)
		}
		if err := d.Delete(ctx, p); !errors.As(err, &ip) {
			t.Errorf("Delete(%q) = %v, want InvalidPathError", p, err)
		}
		if err := d.Move(ctx, "/ok", p); !errors.As(err, &ip) {
			t.Errorf("Move(/ok, %q) = %v, want InvalidPathError", p, err)
		}
	}
	if err := d.PutContent(ctx, "/", nil); err == nil {
		t.Error("PutContent(/) accepted")
	}
	// nothing was created by any of the refused calls
	l, err := d.List(ctx, "/")
	if err != nil {
		t.Fatalf("List(/): %v", err)
	}
	if len(l) != 0 {
		t.Fatalf("refused calls left files: %v", l)
	}
}

func testPutGetContent(t *testing.T, d driver.StorageDriver) {
	for _, size := range []int{0, 1, 4096, 3<<20 + 17} {
		p := fmt.Sprintf("/content/a-b_c.d/%d", size)
		b := randBytes(size)
		mustPut(t, d, p, b)
		if got := mustGet(t, d, p); !bytes.Equal(got, b) {
			t.Fatalf("size %d: content mismatch", size)
		}
	}
}

func testPutContentOverwrite(t *testing.T, d driver.StorageDriver) {
	mustPut(t, d, "/x/y", []byte("first content, long"))
	mustPut(t, d, "/x/y", []byte("second"))
	if got := string(mustGet(t, d, "/x/y")); got != "second" {
		t.Fatalf("got %q", got)
	}
}

func testGetContentMissing(t *testing.T, d driver.StorageDriver) {
	_, err := d.GetContent(context.Background(), "/no/such/file")
	expectNotFound(t, "GetContent", err)
	mustPut(t, d, "/dir/file", []byte("x"))
	_, err = d.GetContent(context.Background(), "/dir")
	expectNotFound(t, "GetContent(dir)", err)
	_, err = d.GetContent(context.Background(), "/dir/file/below")
	expectNotFound(t, "GetContent(below file)", err)
}

func testPutContentUnderFile(t *testing.T, d driver.StorageDriver) {
	mustPut(t, d, "/f", []byte("x"))
	if err := d.PutContent(context.Background(), "/f/child", []byte("y")); err == nil {
		t.Fatal("PutContent below a file succeeded")
	}
	if got := string(mustGet(t, d, "/f")); got != "x" {
		t.Fatalf("file changed: %q", got)
	}
}

func testReaderOffsets(t *testing.T, d driver.StorageDriver) {
	ctx := context.Background()
	b := randBytes(10000)
	mustPut(t, d, "/r/blob", b)
	for _, off := range []int64{0, 1, 5000, 9999, 10000} {
		rc, err := d.Reader(ctx, "/r/blob", off)
		if err != nil {
			t.Fatalf("Reader(%d): %v", off, err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || !bytes.Equal(got, b[off:]) {
			t.Fatalf("Reader(%d): %d bytes, err %v", off, len(got), err)
		}
	}
	for _, off := range []int64{-1, 10001} {
		var io driver.InvalidOffsetError
		if _, err := d.Reader(ctx, "/r/blob", off); !errors.As(err, &io) {
			t.Fatalf("Reader(%d) = %v, want InvalidOffsetError", off, err)
		}
	}
	_, err := d.Reader(ctx, "/r/missing", 0)
	expectNotFound(t, "Reader", err)
}

func writeAll(t *testing.T, w driver.FileWriter, chunks ...[]byte) {
	t.Helper()
	for _, c := range chunks {
		n, err := w.Write(c)
		if err != nil || n != len(c) {
			t.Fatalf("Write: %d, %v", n, err)
		}
	}
}

func testWriterCreateAppend(t *testing.T, d driver.StorageDriver) {
	ctx := context.Background()
	a, b, c := randBytes(1000), randBytes(70000), randBytes(5)
	w, err := d.Writer(ctx, "/w/upload/data", false)
	if err != nil {
		t.Fatal(err)
	}
	if w.Size() != 0 {
		t.Fatalf("new writer size %d", w.Size())
	}
	writeAll(t, w, a, b)
	if w.Size() != int64(len(a)+len(b)) {
		t.Fatalf("size %d", w.Size())
	}
	if err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	// resume, as after a restart
	w, err = d.Writer(ctx, "/w/upload/data", true)
	if err != nil {
		t.Fatal(err)
	}
	if w.Size() != int64(len(a)+len(b)) {
		t.Fatalf("append writer size %d", w.Size())
	}
	writeAll(t, w, c)
	if err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	w.Close()
	want := slices.Concat(a, b, c)
	if got := mustGet(t, d, "/w/upload/data"); !bytes.Equal(got, want) {
		t.Fatal("appended content mismatch")
	}
	fi, err := d.Stat(ctx, "/w/upload/data")
	if err != nil || fi.Size() != int64(len(want)) {
		t.Fatalf("Stat: %v %v", fi, err)
	}
}

func testWriterTruncate(t *testing.T, d driver.StorageDriver) {
	ctx := context.Background()
	mustPut(t, d, "/t", []byte("old content here"))
	w, err := d.Writer(ctx, "/t", false)
	if err != nil {
		t.Fatal(err)
	}
	writeAll(t, w, []byte("new"))
	w.Commit(ctx)
	w.Close()
	if got := string(mustGet(t, d, "/t")); got != "new" {
		t.Fatalf("got %q", got)
	}
}

func testWriterAppendMissing(t *testing.T, d driver.StorageDriver) {
	_, err := d.Writer(context.Background(), "/missing/file", true)
	expectNotFound(t, "Writer(append, missing)", err)
}

func testWriterCancel(t *testing.T, d driver.StorageDriver) {
	ctx := context.Background()
	w, err := d.Writer(ctx, "/c/file", false)
	if err != nil {
		t.Fatal(err)
	}
	writeAll(t, w, randBytes(100))
	if err := w.Cancel(ctx); err != nil {
		t.Fatal(err)
	}
	_, err = d.Stat(ctx, "/c/file")
	expectNotFound(t, "Stat after Cancel", err)
}

func testStat(t *testing.T, d driver.StorageDriver) {
	ctx := context.Background()
	mustPut(t, d, "/s/dir/file", randBytes(123))
	fi, err := d.Stat(ctx, "/s/dir/file")
	if err != nil {
		t.Fatal(err)
	}
	if fi.IsDir() || fi.Size() != 123 || fi.Path() != "/s/dir/file" || fi.ModTime().IsZero() {
		t.Fatalf("file info %+v", fi)
	}
	fi, err = d.Stat(ctx, "/s/dir")
	if err != nil || !fi.IsDir() || fi.Path() != "/s/dir" {
		t.Fatalf("dir info %+v %v", fi, err)
	}
	_, err = d.Stat(ctx, "/s/nope")
	expectNotFound(t, "Stat", err)
	// a name that is only a prefix of an existing one does not exist
	_, err = d.Stat(ctx, "/s/di")
	expectNotFound(t, "Stat(prefix)", err)
}

func testList(t *testing.T, d driver.StorageDriver) {
	ctx := context.Background()
	for _, p := range []string{"/l/b/1", "/l/a", "/l/c/d/e", "/l/c/f", "/lx/z"} {
		mustPut(t, d, p, []byte(p))
	}
	got, err := d.List(ctx, "/l")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"/l/a", "/l/b", "/l/c"}
	if !slices.Equal(got, want) {
		t.Fatalf("List(/l) = %v, want %v", got, want)
	}
	got, err = d.List(ctx, "/")
	if err != nil || !slices.Equal(got, []string{"/l", "/lx"}) {
		t.Fatalf("List(/) = %v, %v", got, err)
	}
	_, err = d.List(ctx, "/nothing")
	expectNotFound(t, "List", err)
	_, err = d.List(ctx, "/l/a")
	expectNotFound(t, "List(file)", err)
}

func testMove(t *testing.T, d driver.StorageDriver) {
	ctx := context.Background()
	b := randBytes(5000)
	mustPut(t, d, "/m/src", b)
	mustPut(t, d, "/m/dst/existing", []byte("old"))
	if err := d.Move(ctx, "/m/src", "/m/dst/existing"); err != nil {
		t.Fatal(err)
	}
	if got := mustGet(t, d, "/m/dst/existing"); !bytes.Equal(got, b) {
		t.Fatal("moved content mismatch")
	}
	_, err := d.Stat(ctx, "/m/src")
	expectNotFound(t, "Stat(src after move)", err)
	mustPut(t, d, "/m/two", []byte("2"))
	if err := d.Move(ctx, "/m/two", "/m/new/parent/dirs/two"); err != nil {
		t.Fatal(err)
	}
	if string(mustGet(t, d, "/m/new/parent/dirs/two")) != "2" {
		t.Fatal("move into new dirs")
	}
	expectNotFound(t, "Move(missing)", d.Move(ctx, "/m/missing", "/m/x"))
}

func testDelete(t *testing.T, d driver.StorageDriver) {
	ctx := context.Background()
	for _, p := range []string{"/d/a/1", "/d/a/2/3", "/d/ab", "/d/b"} {
		mustPut(t, d, p, []byte(p))
	}
	if err := d.Delete(ctx, "/d/a"); err != nil {
		t.Fatal(err)
	}
	_, err := d.Stat(ctx, "/d/a/2/3")
	expectNotFound(t, "Stat(deleted tree)", err)
	// siblings sharing a name prefix survive
	if string(mustGet(t, d, "/d/ab")) != "/d/ab" {
		t.Fatal("sibling /d/ab deleted")
	}
	if err := d.Delete(ctx, "/d/b"); err != nil {
		t.Fatal(err)
	}
	expectNotFound(t, "Delete(missing)", d.Delete(ctx, "/d/b"))
	got, err := d.List(ctx, "/d")
	if err != nil || !slices.Equal(got, []string{"/d/ab"}) {
		t.Fatalf("List after delete = %v, %v", got, err)
	}
}

func testWalk(t *testing.T, d driver.StorageDriver) {
	ctx := context.Background()
	for _, p := range []string{"/w/b/x", "/w/a", "/w/c/skip/me", "/w/c/z"} {
		mustPut(t, d, p, []byte("1"))
	}
	var seen []string
	err := d.Walk(ctx, "/w", func(fi driver.FileInfo) error {
		seen = append(seen, fi.Path())
		if fi.Path() == "/w/c/skip" {
			if !fi.IsDir() {
				t.Errorf("/w/c/skip should be a dir")
			}
			return driver.ErrSkipDir
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"/w/a", "/w/b", "/w/b/x", "/w/c", "/w/c/skip", "/w/c/z"}
	if !slices.Equal(seen, want) {
		t.Fatalf("Walk = %v, want %v", seen, want)
	}
	stop := errors.New("stop")
	if err := d.Walk(ctx, "/w", func(driver.FileInfo) error { return stop }); !errors.Is(err, stop) {
		t.Fatalf("Walk error not returned: %v", err)
	}
	expectNotFound(t, "Walk(missing)", d.Walk(ctx, "/nowhere", func(driver.FileInfo) error { return nil }))
}

func testConcurrent(t *testing.T, d driver.StorageDriver) {
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := fmt.Sprintf("/conc/%d/file", i)
			b := randBytes(1000 + i)
			for range 20 {
				if err := d.PutContent(ctx, p, b); err != nil {
					errs <- err
					return
				}
				got, err := d.GetContent(ctx, p)
				if err != nil || !bytes.Equal(got, b) {
					errs <- fmt.Errorf("%s: %v", p, err)
					return
				}
			}
		}()
	}
	// concurrent overwrites of one path never expose a torn file
	a, b := bytes.Repeat([]byte("a"), 1<<16), bytes.Repeat([]byte("b"), 1<<16)
	mustPut(t, d, "/conc/shared", a)
	wg.Add(2)
	go func() {
		defer wg.Done()
		for i := range 50 {
			v := a
			if i%2 == 1 {
				v = b
			}
			if err := d.PutContent(ctx, "/conc/shared", v); err != nil {
				errs <- err
				return
			}
		}
	}()
	go func() {
		defer wg.Done()
		for range 50 {
			got, err := d.GetContent(ctx, "/conc/shared")
			if err != nil {
				errs <- err
				return
			}
			if !bytes.Equal(got, a) && !bytes.Equal(got, b) {
				errs <- errors.New("torn read of /conc/shared")
				return
			}
		}
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func testReadWhileAppending(t *testing.T, d driver.StorageDriver) {
	ctx := context.Background()
	first := randBytes(4096)
	w, err := d.Writer(ctx, "/rw/data", false)
	if err != nil {
		t.Fatal(err)
	}
	writeAll(t, w, first)
	w.Commit(ctx)
	rc, err := d.Reader(ctx, "/rw/data", 0)
	if err != nil {
		t.Fatal(err)
	}
	head := make([]byte, 4096)
	if _, err := io.ReadFull(rc, head); err != nil || !bytes.Equal(head, first) {
		t.Fatalf("prefix read: %v", err)
	}
	writeAll(t, w, randBytes(4096))
	rc.Close()
	w.Close()
	fi, err := d.Stat(ctx, "/rw/data")
	if err != nil || fi.Size() != 8192 {
		t.Fatalf("Stat: %v %v", fi, err)
	}
}
