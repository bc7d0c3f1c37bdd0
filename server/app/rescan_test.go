package app

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/berth-dev/berth/store"
)

// TestRescanBounds: when the vulnerability DB changes, Berth rescans the images pushed in the last 7 days, at
// most 500 of them, newest first (the README's bounds): of 502 recent images the 2 oldest wait, and an image
// pushed 8 days ago is not rescanned. The tasks stay on the queue (no workers run here), so the scan records
// show exactly which were started.
func TestRescanBounds(t *testing.T) {
	if rescanWindow != 7*24*time.Hour || rescanMax != 500 {
		t.Fatalf("rescan bounds %s / %d; the README says 7 days / 500 images", rescanWindow, rescanMax)
	}
	cfg, err := ParseConfig("serve", []string{"--data-dir", t.TempDir(), "--addr", "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Logger = slog.New(slog.DiscardHandler)
	t.Setenv("BERTH_ADMIN_PASSWORD", "rescan-test-password")
	ctx := context.Background()
	a, err := Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()

	now := time.Now().UTC()
	digest := func(i int) string { return fmt.Sprintf("sha256:%064x", i) }
	put := func(i int, at time.Time) {
		if err := a.Store.PutImageVersion(ctx, &store.ImageVersion{ID: fmt.Sprintf("ns/app:t%d", i), Repository: "ns/app",
			Tag: fmt.Sprintf("t%d", i), Digest: digest(i), PushedAt: at}); err != nil {
			t.Fatal(err)
		}
	}
	put(0, now.Add(-8*24*time.Hour)) // outside the window
	const recent = rescanMax + 2
	for i := 1; i <= recent; i++ {
		put(i, now.Add(-time.Duration(recent-i+1)*time.Minute)) // image i is newer than image i-1
	}
	start := time.Now()
	n, err := a.scan.runner.RescanRecent(ctx, "db-v2", time.Now().Add(-rescanWindow), rescanMax)
	if err != nil || n != rescanMax {
		t.Fatalf("RescanRecent: %d, %v; want %d", n, err, rescanMax)
	}
	t.Logf("rescan of %d images queued in %v", n, time.Since(start).Round(time.Millisecond))
	for i := 0; i <= recent; i++ {
		sc, err := a.Store.GetScan(ctx, digest(i))
		started := err == nil && sc.Status == store.ScanScanning
		if want := i >= 3; started != want {
			t.Errorf("image %d (pushed %s ago): rescan started %v, want %v (%v)", i, now.Sub(mustPushed(t, a, i)).Round(time.Minute), started, want, err)
		}
	}
}

func mustPushed(t *testing.T, a *App, i int) time.Time {
	v, err := a.Store.GetImageVersion(context.Background(), "ns/app", fmt.Sprintf("t%d", i))
	if err != nil {
		t.Fatal(err)
	}
	return v.PushedAt
}
