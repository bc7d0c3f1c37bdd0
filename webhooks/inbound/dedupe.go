package inbound

import (
	"container/list"
	"crypto/sha256"
	"encoding/hex"
	"sync"
	"time"
)

// Defaults of a Deduper.
const (
	DefaultDedupeSize   = 10000
	DefaultDedupeWindow = 24 * time.Hour
)

// maxDedupeID bounds the memory one id takes; longer ids are kept as hashes.
const maxDedupeID = 160

// Deduper remembers recent delivery ids so a redelivered webhook does not
// start a second build. It keeps at most Size ids, each for at most Window
// after it was first seen, dropping the oldest first; its memory is bounded
// by Size × ~250 bytes. It is safe for concurrent use. The zero value uses
// DefaultDedupeSize and DefaultDedupeWindow.
//
// It is per process: an id seen by another replica or before a restart is
// not known here, which is why the HTTP layer may also persist ids. Ids are
// compared as given, so prefix them with the repository when several
// repositories share one Deduper and their providers' ids could collide.
type Deduper struct {
	// Size is the most ids remembered; 0 means DefaultDedupeSize.
	Size int
	// Window is how long an id is remembered; 0 means DefaultDedupeWindow.
	Window time.Duration

	mu    sync.Mutex
	now   func() time.Time // for tests
	order *list.List       // of *seenID, oldest at the back
	ids   map[string]*list.Element
}

type seenID struct {
	id string
	at time.Time
}

// NewDeduper returns a Deduper keeping up to size ids for window each.
func NewDeduper(size int, window time.Duration) *Deduper {
	return &Deduper{Size: size, Window: window}
}

// Seen reports whether id was seen within the window, and records it if not.
// An empty id is never recorded and never reported as seen.
func (d *Deduper) Seen(id string) bool {
	if id == "" {
		return false
	}
	id = dedupeKey(id)
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.ids == nil {
		d.ids = make(map[string]*list.Element)
		d.order = list.New()
	}
	now := time.Now()
	if d.now != nil {
		now = d.now()
	}
	window, size := d.Window, d.Size
	if window <= 0 {
		window = DefaultDedupeWindow
	}
	if size <= 0 {
		size = DefaultDedupeSize
	}
	// Entries are in first-seen order, so expired ones are all at the back.
	for e := d.order.Back(); e != nil; e = d.order.Back() {
		s := e.Value.(*seenID)
		if now.Sub(s.at) < window {
			break
		}
		d.order.Remove(e)
		delete(d.ids, s.id)
	}
	if _, ok := d.ids[id]; ok {
		return true
	}
	d.ids[id] = d.order.PushFront(&seenID{id: id, at: now})
	for d.order.Len() > size {
		e := d.order.Back()
		d.order.Remove(e)
		delete(d.ids, e.Value.(*seenID).id)
	}
	return false
}

// Has reports whether id was seen within the window, without recording it.
func (d *Deduper) Has(id string) bool {
	id = dedupeKey(id)
	window := d.Window
	if window <= 0 {
		window = DefaultDedupeWindow
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	e, ok := d.ids[id]
	if !ok {
		return false
	}
	now := time.Now()
	if d.now != nil {
		now = d.now()
	}
	return now.Sub(e.Value.(*seenID).at) < window
}

// Forget drops id, so that Seen reports it new again.
func (d *Deduper) Forget(id string) {
	id = dedupeKey(id)
	d.mu.Lock()
	defer d.mu.Unlock()
	if e, ok := d.ids[id]; ok {
		d.order.Remove(e)
		delete(d.ids, id)
	}
}

// dedupeKey is id as the Deduper keeps it: long ids by their hash.
func dedupeKey(id string) string {
	if len(id) > maxDedupeID {
		sum := sha256.Sum256([]byte(id))
		return "sha256:" + hex.EncodeToString(sum[:])
	}
	return id
}

// Len returns the number of ids remembered now (expired ones may still be
// counted until the next Seen).
func (d *Deduper) Len() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.order == nil {
		return 0
	}
	return d.order.Len()
}
