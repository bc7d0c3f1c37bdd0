package gitclone

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func putCheckout(t *testing.T, c *Checkouts, key string) (string, func()) {
	t.Helper()
	dir, err := c.NewDir()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM scratch\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir, c.Put(key, dir)
}

// TestCheckouts: a kept checkout is found by its key until evicted; one in use is never deleted; beyond Max
// unused ones the least recently used goes; a second Put of a key keeps the first and deletes the second on
// release.
func TestCheckouts(t *testing.T) {
	parent := t.TempDir()
	c, err := OpenCheckouts(parent, 1, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, ok := c.Get("a"); ok {
		t.Fatal("an empty cache found a checkout")
	}
	dirA, releaseA := putCheckout(t, c, "a")
	dirB, releaseB := putCheckout(t, c, "b")
	dirC, releaseC := putCheckout(t, c, "c")
	// Three in use with Max 1: none may go.
	for _, d := range []string{dirA, dirB, dirC} {
		if _, err := os.Stat(filepath.Join(d, "Dockerfile")); err != nil {
			t.Fatalf("a checkout in use was deleted: %v", err)
		}
	}
	got, release, ok := c.Get("a")
	if !ok || got != dirA {
		t.Fatalf("get a: %q %v", got, ok)
	}
	releaseA()
	releaseA() // a second call does nothing
	releaseB()
	releaseC()
	// a is still held by the Get; of the unused b and c, b (the least recently used) went.
	if c.Len() != 2 {
		t.Fatalf("kept %d checkouts, want a (in use) and c", c.Len())
	}
	if got, r, ok := c.Get("c"); !ok || got != dirC {
		t.Fatalf("get c: %q %v", got, ok)
	} else {
		r()
	}
	if _, _, ok := c.Get("b"); ok {
		t.Fatal("b should have been evicted")
	}
	if _, err := os.Stat(dirB); !os.IsNotExist(err) {
		t.Fatalf("evicted checkout still on disk: %v", err)
	}
	release()

	// A second clone of a kept key stays its caller's and is deleted on release.
	dup, releaseDup := putCheckout(t, c, "a")
	if got, r, ok := c.Get("a"); !ok || got != dirA {
		t.Fatalf("get a after a duplicate put: %q %v", got, ok)
	} else {
		r()
	}
	releaseDup()
	if _, err := os.Stat(dup); !os.IsNotExist(err) {
		t.Fatalf("duplicate checkout not deleted: %v", err)
	}

	// A checkout deleted behind the cache's back is a miss, not a broken build.
	os.RemoveAll(dirC)
	if _, _, ok := c.Get("c"); ok {
		t.Fatal("found a checkout whose directory is gone")
	}
}

// TestCheckoutsMaxAge: an unused checkout older than MaxAge is not used again and is deleted.
func TestCheckoutsMaxAge(t *testing.T) {
	c, err := OpenCheckouts(t.TempDir(), 8, 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	dir, release := putCheckout(t, c, "old")
	release()
	time.Sleep(60 * time.Millisecond)
	if _, _, ok := c.Get("old"); ok {
		t.Fatal("an expired checkout was used")
	}
	_, r := putCheckout(t, c, "new") // evicts on the way
	r()
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("expired checkout still on disk: %v", err)
	}
}

// TestCheckoutsLeftByStoppedProcesses: opening a cache deletes the directories that stopped processes of this
// host left, and keeps those of running ones, its own process's included.
func TestCheckoutsLeftByStoppedProcesses(t *testing.T) {
	parent := t.TempDir()
	c1, err := OpenCheckouts(parent, 8, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	host := strings.Split(filepath.Base(c1.Dir), "-")[0]
	dead := filepath.Join(parent, fmt.Sprintf("%s-%d-abc", host, 1<<22+12345)) // above the largest pid_max
	alive := filepath.Join(parent, fmt.Sprintf("%s-%d-abc", host, 1))          // init
	other := filepath.Join(parent, "otherhost-12345-abc")
	for _, d := range []string{dead, alive, other} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	dir, release := putCheckout(t, c1, "k")
	defer release()
	c2, err := OpenCheckouts(parent, 8, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if c2.Dir == c1.Dir {
		t.Fatal("two caches of one process share a directory")
	}
	if _, err := os.Stat(dead); !os.IsNotExist(err) {
		t.Fatalf("a stopped process's checkouts were kept: %v", err)
	}
	for _, d := range []string{alive, other, dir} {
		if _, err := os.Stat(d); err != nil {
			t.Fatalf("%s was deleted: %v", d, err)
		}
	}
}
