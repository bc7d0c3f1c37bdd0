package filesystem

import (
	"context"
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
