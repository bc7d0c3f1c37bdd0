package secretbox

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestSealOpenAndPersistence(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys", "master.key")
	b, err := LoadOrCreate(path)
	if err != nil {
		t.Fatal(err)
	}
	sealed := b.Seal([]byte("ghp_secret-token"))
	if strings.Contains(sealed, "ghp_secret") {
		t.Fatal("sealed value leaks the plaintext")
	}
	if b.Seal([]byte("ghp_secret-token")) == sealed {
		t.Fatal("two seals of one plaintext are equal: nonce reuse")
	}
	b2, err := LoadOrCreate(path) // reopened from the file
	if err != nil {
		t.Fatal(err)
	}
	pt, err := b2.Open(sealed)
	if err != nil || string(pt) != "ghp_secret-token" {
		t.Fatalf("open: %q %v", pt, err)
	}
	other, _ := New(make([]byte, 32))
	if _, err := other.Open(sealed); err == nil {
		t.Fatal("a different key opened the value")
	}
	if _, err := b2.Open(sealed[:len(sealed)-2] + "AA"); err == nil {
		t.Fatal("tampered value opened")
	}
	if string(b.Derive("a")) == string(b.Derive("b")) {
		t.Fatal("derived keys for two labels are equal")
	}
}
