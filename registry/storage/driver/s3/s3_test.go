package s3_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"io"
	"net/http"
	"testing"

	"github.com/berth-dev/berth/registry/storage/driver"
	s3driver "github.com/berth-dev/berth/registry/storage/driver/s3"
	"github.com/berth-dev/berth/registry/storage/driver/s3/s3test"
	"github.com/berth-dev/berth/registry/storage/driver/testsuite"
)

func TestS3Driver(t *testing.T) {
	srv := s3test.Start(t)
	testsuite.Run(t, func(t *testing.T) driver.StorageDriver { return srv.NewDriver(t) })
}

func randBytes(t *testing.T, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// TestS3ChunkedAcrossDrivers appends chunks of every size class (tiny, under S3's 5 MiB part minimum, and
// over the writer's 8 MiB part) alternately through two drivers, as two replicas would, then moves the file:
// the result is the exact concatenation, and no segment is left.
func TestS3ChunkedAcrossDrivers(t *testing.T) {
	srv := s3test.Start(t)
	ctx := context.Background()
	bucket := srv.NewBucket(t)
	var ds [2]*s3driver.Driver
	for i := range ds {
		d, err := s3driver.New(srv.Config(bucket))
		if err != nil {
			t.Fatal(err)
		}
		ds[i] = d
	}
	chunks := [][]byte{randBytes(t, 10), randBytes(t, 3<<20), randBytes(t, 9<<20), randBytes(t, 100), randBytes(t, 6<<20), randBytes(t, 1)}
	w, err := ds[0].Writer(ctx, "/uploads/u1/data", false)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	var want []byte
	for i, c := range chunks {
		d := ds[i%2]
		w, err := d.Writer(ctx, "/uploads/u1/data", true)
		if err != nil {
			t.Fatalf("chunk %d: %v", i, err)
		}
		if w.Size() != int64(len(want)) {
			t.Fatalf("chunk %d: writer at %d, want %d", i, w.Size(), len(want))
		}
		if _, err := w.Write(c); err != nil {
			t.Fatal(err)
		}
		if err := w.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		w.Close()
		want = append(want, c...)
		fi, err := ds[(i+1)%2].Stat(ctx, "/uploads/u1/data")
		if err != nil || fi.Size() != int64(len(want)) {
			t.Fatalf("chunk %d: the other driver sees %v %v, want size %d", i, fi, err, len(want))
		}
	}
	// A read from the middle crosses segments.
	rc, err := ds[1].Reader(ctx, "/uploads/u1/data", 5)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(got, want[5:]) {
		t.Fatalf("read across segments: %d bytes, %v", len(got), err)
	}
	if err := ds[1].Move(ctx, "/uploads/u1/data", "/blobs/b1/data"); err != nil {
		t.Fatal(err)
	}
	got, err = ds[0].GetContent(ctx, "/blobs/b1/data")
	if err != nil || sha256.Sum256(got) != sha256.Sum256(want) {
		t.Fatalf("moved blob: %d bytes (want %d), %v", len(got), len(want), err)
	}
	if _, err := ds[0].Stat(ctx, "/uploads/u1/data"); !driver.IsNotFound(err) {
		t.Fatalf("source after move: %v", err)
	}
	if l, err := ds[0].List(ctx, "/"); err != nil || len(l) != 1 || l[0] != "/blobs" {
		t.Fatalf("List(/) after move = %v, %v (segments left?)", l, err)
	}

	// A presigned URL serves the blob without credentials.
	u, err := ds[0].RedirectURL(ctx, "/blobs/b1/data")
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.Equal(body, want) {
		t.Fatalf("presigned GET: %d, %d bytes", resp.StatusCode, len(body))
	}
}
