package app

import (
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"

	"github.com/berth-dev/berth/pipeline"
	"github.com/berth-dev/berth/policies/signature"
	"github.com/berth-dev/berth/store"
	"github.com/berth-dev/berth/store/secretbox"
	"github.com/berth-dev/berth/store/sqlite"
)

// TestImageSigningKeyShared: processes starting together on one store end up with one image signing key
// (ECDSA P-256), kept sealed: the store holds no key in the clear, and another master key cannot open it.
func TestImageSigningKeyShared(t *testing.T) {
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "berth.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close(ctx) })
	master := make([]byte, 32)
	_, _ = rand.Read(master)
	box, err := secretbox.New(master)
	if err != nil {
		t.Fatal(err)
	}
	const n = 8
	keys := make([]*pipeline.SigningKey, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a := &App{Store: db, Box: box, Logger: slog.New(slog.DiscardHandler)}
			keys[i], errs[i] = a.imageSigningKey(ctx)
		}()
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("replica %d: %v", i, errs[i])
		}
		pub, ok := keys[i].Public().(*ecdsa.PublicKey)
		if !ok || pub.Curve.Params().Name != "P-256" {
			t.Fatalf("replica %d: key %T", i, keys[i].Public())
		}
		if !pub.Equal(keys[0].Public()) {
			t.Fatalf("replica %d signs with another key than replica 0", i)
		}
	}
	// What one signs, the other's public key verifies.
	sig, err := keys[3].Sign([]byte("payload"))
	if err != nil {
		t.Fatal(err)
	}
	if err := signature.Verify(keys[5].Public(), []byte("payload"), sig); err != nil {
		t.Fatal(err)
	}

	k, err := db.GetInstanceKey(ctx, store.KeyImageSigning)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := signature.ParsePrivateKey([]byte(k.Sealed)); err == nil {
		t.Fatal("the signing key is stored in the clear")
	}
	otherKey := make([]byte, 32)
	_, _ = rand.Read(otherKey)
	other, _ := secretbox.New(otherKey)
	if _, err := (&App{Store: db, Box: other, Logger: slog.New(slog.DiscardHandler)}).imageSigningKey(ctx); err == nil {
		t.Fatal("another master key opened the signing key")
	}
}
