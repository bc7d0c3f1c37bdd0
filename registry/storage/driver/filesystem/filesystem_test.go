package filesystem

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/berth-dev/berth/registry/storage/driver"
	"github.com/berth-dev/berth/registry/storage/driver/testsuite"
)

func TestFilesystemDriver(t *testing.T) {
	testsuite.Run(t, func(t *testing.T) driver.StorageDriver {
		d, err := New(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return d
	})
}

// syncEvent is one fsync: what was synced and whether the watched name was
// visible at that moment.
type syncEvent struct {
	name    string
	visible bool
}

// watchSyncs records every fsync the driver makes while the test runs, with
// whether watch existed at that moment.
func watchSyncs(t *testing.T, watch *string) *[]syncEvent {
	var events []syncEvent
	old := syncFile
	syncFile = func(f *os.File) error {
		_, err := os.Stat(*watch)
		events = append(events, syncEvent{name: f.Name(), visible: err == nil})
		return f.Sync()
	}
	t.Cleanup(func() { syncFile = old })
	return &events
}

// TestDurableCommit checks the order that makes a blob survive a power loss:
// the data is synced while its final name does not exist yet, then, once the
// rename made it visible, the directory holding the name, and the parents of
// every directory created for it, before the call returns.
func TestDurableCommit(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	d, err := New(root)
	if err != nil {
		t.Fatal(err)
	}
	var watch string
	events := watchSyncs(t, &watch)

	t.Run("upload moved into place", func(t *testing.T) {
		*events = nil
		watch = filepath.Join(root, "blobs", "sha256", "ab", "abcd", "data")
		w, err := d.Writer(ctx, "/uploads/u1/data", false)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write([]byte("layer bytes")); err != nil {
			t.Fatal(err)
		}
		if err := w.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		w.Close()
		if len(*events) != 1 || (*events)[0].name != filepath.Join(root, "uploads", "u1", "data") {
			t.Fatalf("writer Commit synced %+v, want the upload data", *events)
		}
		*events = nil
		if err := d.Move(ctx, "/uploads/u1/data", "/blobs/sha256/ab/abcd/data"); err != nil {
			t.Fatal(err)
		}
		want := []syncEvent{
			{filepath.Join(root, "uploads", "u1", "data"), false}, // data, before the name exists
			{filepath.Join(root, "blobs", "sha256", "ab", "abcd"), true},
			// the directories created for the blob: each parent's new entry
			{filepath.Join(root, "blobs", "sha256", "ab"), true},
			{filepath.Join(root, "blobs", "sha256"), true},
			{filepath.Join(root, "blobs"), true},
			{root, true},
		}
		if !slices.Equal(*events, want) {
			t.Fatalf("syncs:\n got %+v\nwant %+v", *events, want)
		}
	})

	t.Run("link written over an existing directory", func(t *testing.T) {
		*events = nil
		watch = filepath.Join(root, "blobs", "sha256", "ab", "abcd", "link")
		if err := d.PutContent(ctx, "/blobs/sha256/ab/abcd/link", []byte("x")); err != nil {
			t.Fatal(err)
		}
		got := *events
		if len(got) != 2 || !strings.HasPrefix(got[0].name, filepath.Join(root, ".tmp")+"/") || got[0].visible ||
			got[1] != (syncEvent{filepath.Join(root, "blobs", "sha256", "ab", "abcd"), true}) {
			t.Fatalf("PutContent syncs %+v: want the temporary file before the rename, then the directory", got)
		}
	})
}

// pieceWriter records the length of every Write and fails the one numbered
// failAt (counting from 1) after taking half of it.
type pieceWriter struct {
	got    []byte
	pieces []int
	failAt int
}

var errPiece = errors.New("disk full")

func (w *pieceWriter) Write(p []byte) (int, error) {
	w.pieces = append(w.pieces, len(p))
	if len(w.pieces) == w.failAt {
		w.got = append(w.got, p[:len(p)/2]...)
		return len(p) / 2, errPiece
	}
	w.got = append(w.got, p...)
	return len(p), nil
}

// TestWriteBounded checks that large writes reach the file in pieces of at
// most maxWrite bytes, in order and whole, and that a failing piece stops the
// write with the bytes written so far.
func TestWriteBounded(t *testing.T) {
	p := make([]byte, 4*maxWrite+5)
	for i := range p {
		p[i] = byte(i * 7)
	}
	w := &pieceWriter{}
	n, err := writeBounded(w, p)
	if err != nil || n != len(p) || !bytes.Equal(w.got, p) {
		t.Fatalf("writeBounded = %d, %v; content equal %v", n, err, bytes.Equal(w.got, p))
	}
	if want := []int{maxWrite, maxWrite, maxWrite, maxWrite, 5}; !slices.Equal(w.pieces, want) {
		t.Fatalf("pieces %v, want %v", w.pieces, want)
	}

	w = &pieceWriter{failAt: 2}
	n, err = writeBounded(w, p)
	if !errors.Is(err, errPiece) || n != maxWrite+maxWrite/2 || len(w.pieces) != 2 {
		t.Fatalf("failing write = %d, %v after %d pieces; want %d, %v after 2", n, err, len(w.pieces), maxWrite+maxWrite/2, errPiece)
	}

	// Through the driver: a large Write and PutContent land whole.
	ctx := context.Background()
	d, err := New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	fw, err := d.Writer(ctx, "/uploads/u2/data", false)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := fw.Write(p); err != nil || n != len(p) || fw.Size() != int64(len(p)) {
		t.Fatalf("Write = %d, %v, size %d", n, err, fw.Size())
	}
	if err := fw.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	fw.Close()
	if err := d.PutContent(ctx, "/blobs/big", p); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/uploads/u2/data", "/blobs/big"} {
		got, err := d.GetContent(ctx, path)
		if err != nil || !bytes.Equal(got, p) {
			t.Fatalf("%s: %d bytes, %v; want the %d written", path, len(got), err, len(p))
		}
	}
}
