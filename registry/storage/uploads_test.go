package storage

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berth-dev/berth/registry/reference"
	"github.com/berth-dev/berth/registry/storage/driver/inmemory"
)

func TestUploadLifecycle(t *testing.T) {
	ctx := context.Background()
	s := New(inmemory.New())
	info, err := s.StartUpload(ctx, "ns/app")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.OpenUpload(ctx, "ns/other", info.ID); !errors.Is(err, ErrUploadUnknown) {
		t.Fatalf("upload opened from another repository: %v", err)
	}
	body := bytes.Repeat([]byte("x"), 3<<20+5) // several pipeline chunks
	u, err := s.OpenUpload(ctx, "ns/app", info.ID)
	if err != nil {
		t.Fatal(err)
	}
	n, err := u.Append(ctx, bytes.NewReader(body[:2<<20]))
	if err != nil || n != 2<<20 {
		t.Fatalf("Append %d %v", n, err)
	}
	if err := u.SaveState(ctx); err != nil {
		t.Fatal(err)
	}
	u.Close()

	// concurrent appends serialize on the session
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			u, err := s.OpenUpload(ctx, "ns/app", info.ID)
			if err != nil {
				t.Error(err)
				return
			}
			defer u.Close()
			size, _ := u.Size(ctx)
			if size == 2<<20 {
				u.Append(ctx, bytes.NewReader(body[2<<20:]))
			}
		}()
	}
	wg.Wait()

	u, err = s.OpenUpload(ctx, "ns/app", info.ID)
	if err != nil {
		t.Fatal(err)
	}
	if size, _ := u.Size(ctx); size != int64(len(body)) {
		t.Fatalf("size %d", size)
	}
	wrong := reference.FromBytes(reference.SHA256, []byte("other"))
	if _, err := u.Commit(ctx, wrong); !errors.Is(err, ErrDigestMismatch) {
		t.Fatalf("commit with a wrong digest: %v", err)
	}
	if _, _, err := s.BlobStat(ctx, wrong); !errors.Is(err, ErrBlobUnknown) {
		t.Fatal("wrong digest became visible")
	}
	want512 := reference.FromBytes(reference.SHA512, body)
	size, err := u.Commit(ctx, want512) // another algorithm: rehashed
	if err != nil || size != int64(len(body)) {
		t.Fatalf("commit sha512: %d %v", size, err)
	}
	u.Close()
	got, err := s.BlobContent(ctx, want512)
	if err != nil || !bytes.Equal(got, body) {
		t.Fatalf("blob content: %v", err)
	}
	if _, err := s.OpenUpload(ctx, "ns/app", info.ID); !errors.Is(err, ErrUploadUnknown) {
		t.Fatalf("committed upload still open: %v", err)
	}
}

func TestPurgeUploads(t *testing.T) {
	ctx := context.Background()
	s := New(inmemory.New())
	idle, _ := s.StartUpload(ctx, "ns/app")
	busy, _ := s.StartUpload(ctx, "ns/app")
	u, err := s.OpenUpload(ctx, "ns/app", busy.ID)
	if err != nil {
		t.Fatal(err)
	}
	n, err := s.PurgeUploads(ctx, time.Now().Add(time.Second))
	if err != nil || n != 1 {
		t.Fatalf("purged %d, %v (the busy upload must be skipped)", n, err)
	}
	u.Close()
	if _, err := s.OpenUpload(ctx, "ns/app", idle.ID); !errors.Is(err, ErrUploadUnknown) {
		t.Fatalf("idle upload survived: %v", err)
	}
	if n, _ := s.PurgeUploads(ctx, time.Now().Add(-time.Hour)); n != 0 {
		t.Fatalf("fresh upload purged")
	}
	if _, err := s.OpenUpload(ctx, "ns/app", strings.Repeat("0", 36)); !errors.Is(err, ErrUploadUnknown) {
		t.Fatal("malformed id accepted")
	}
}
