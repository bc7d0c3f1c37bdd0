package inbound

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestDeduperSeen(t *testing.T) {
	var d Deduper // the zero value works
	if d.Seen("a") {
		t.Fatal("first sight reported as seen")
	}
	if !d.Seen("a") || !d.Seen("a") {
		t.Fatal("repeat not reported")
	}
	if d.Seen("b") {
		t.Fatal("b reported as seen")
	}
	if d.Seen("") || d.Seen("") {
		t.Fatal("empty id deduplicated")
	}
	if d.Len() != 2 {
		t.Fatalf("Len = %d", d.Len())
	}
}

func TestDeduperWindow(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	d := NewDeduper(100, time.Hour)
	d.now = func() time.Time { return now }
	d.Seen("a")
	now = now.Add(30 * time.Minute)
	d.Seen("b")
	now = now.Add(29 * time.Minute)
	if !d.Seen("a") {
		t.Fatal("a forgotten within the window")
	}
	now = now.Add(time.Minute) // a is an hour old; b 30 minutes
	if d.Seen("a") {
		t.Fatal("a remembered after the window")
	}
	if !d.Seen("b") {
		t.Fatal("b forgotten within the window")
	}
	now = now.Add(2 * time.Hour)
	d.Seen("c")
	if d.Len() != 1 {
		t.Fatalf("expired ids kept: Len = %d", d.Len())
	}
}

func TestDeduperSizeBound(t *testing.T) {
	d := NewDeduper(3, time.Hour)
	for _, id := range []string{"1", "2", "3", "4"} {
		d.Seen(id)
	}
	if d.Len() != 3 {
		t.Fatalf("Len = %d, want 3", d.Len())
	}
	if d.Seen("1") { // evicted as the oldest; now re-recorded, evicting 2
		t.Error("oldest id not evicted")
	}
	if !d.Seen("4") || !d.Seen("3") {
		t.Error("recent ids evicted")
	}
	long := strings.Repeat("x", 10_000)
	if d.Seen(long) || !d.Seen(long) {
		t.Error("long id not deduplicated")
	}
	for _, e := range d.ids {
		if len(e.Value.(*seenID).id) > maxDedupeID {
			t.Error("long id stored whole")
		}
	}
}

func TestDeduperConcurrent(t *testing.T) {
	d := NewDeduper(DefaultDedupeSize, time.Hour)
	var firsts atomic.Int64
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 500; i++ {
				if !d.Seen(fmt.Sprintf("delivery-%d", i)) {
					firsts.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if firsts.Load() != 500 {
		t.Errorf("%d first sightings of 500 ids", firsts.Load())
	}
}
