package gitclone

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Checkouts keeps the most recent checkouts of exact commits so that a build of a commit already checked out
// here (a rebuild, a retry, a second rule matching the same push, a branch and a tag on one commit) reads it
// again instead of cloning. Entries are read-only while in use: builds only read their context. Unused entries
// beyond Max, or older than MaxAge, are deleted.
//
// The key must name everything that decides what a clone may see — the Berth repository, the URL, the
// credentials, the commit — so that no build reads a checkout it could not have cloned itself.
type Checkouts struct {
	// Dir holds the checkouts of this process.
	Dir string
	// Max is how many unused checkouts are kept (default 8); MaxAge how long (default 1 h).
	Max    int
	MaxAge time.Duration

	mu      sync.Mutex
	entries map[string]*checkout
}

type checkout struct {
	dir  string
	used int // builds reading it now
	last time.Time
}

// OpenCheckouts returns a cache of checkouts in a directory of its own inside parent, which processes sharing a
// data directory may share. It deletes what processes of this host that have stopped left there: what they held
// is unknown after a restart.
func OpenCheckouts(parent string, max int, maxAge time.Duration) (*Checkouts, error) {
	host, _ := os.Hostname()
	host = strings.NewReplacer("/", "_", "-", "_").Replace(host)
	if old, err := os.ReadDir(parent); err == nil {
		for _, e := range old { // HOST-PID-RANDOM
			parts := strings.Split(e.Name(), "-")
			if len(parts) != 3 || parts[0] != host {
				continue
			}
			if pid, err := strconv.Atoi(parts[1]); err == nil && !alive(pid) {
				_ = os.RemoveAll(filepath.Join(parent, e.Name()))
			}
		}
	}
	if err := os.MkdirAll(parent, 0o700); err != nil {
		return nil, fmt.Errorf("create the checkout cache: %w", err)
	}
	dir, err := os.MkdirTemp(parent, fmt.Sprintf("%s-%d-", host, os.Getpid()))
	if err != nil {
		return nil, fmt.Errorf("create the checkout cache: %w", err)
	}
	if max <= 0 {
		max = 8
	}
	if maxAge <= 0 {
		maxAge = time.Hour
	}
	return &Checkouts{Dir: dir, Max: max, MaxAge: maxAge, entries: map[string]*checkout{}}, nil
}

// Get returns the checkout stored under key, held until release is called; ok is false when there is none.
func (c *Checkouts) Get(key string) (dir string, release func(), ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.entries[key]
	if e == nil || time.Since(e.last) > c.MaxAge {
		return "", nil, false
	}
	if _, err := os.Stat(e.dir); err != nil { // removed behind our back
		if e.used == 0 {
			delete(c.entries, key)
		}
		return "", nil, false
	}
	e.used++
	e.last = time.Now()
	return e.dir, c.releaser(e), true
}

// NewDir returns a fresh directory inside the cache for a clone that may then be kept with Put.
func (c *Checkouts) NewDir() (string, error) { return os.MkdirTemp(c.Dir, "") }

// Put keeps dir (from NewDir, holding a complete checkout) under key, held until release is called. When key is
// stored already, dir stays this caller's alone and release deletes it.
func (c *Checkouts) Put(key, dir string) (release func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.entries[key]; ok {
		return func() { _ = os.RemoveAll(dir) }
	}
	e := &checkout{dir: dir, used: 1, last: time.Now()}
	c.entries[key] = e
	c.evictLocked()
	return c.releaser(e)
}

func (c *Checkouts) releaser(e *checkout) func() {
	var once sync.Once
	return func() {
		once.Do(func() {
			c.mu.Lock()
			defer c.mu.Unlock()
			e.used--
			e.last = time.Now()
			c.evictLocked()
		})
	}
}

// evictLocked deletes unused checkouts that are too old, then the least recently used ones beyond Max.
func (c *Checkouts) evictLocked() {
	var unused []string
	for k, e := range c.entries {
		if e.used > 0 {
			continue
		}
		if time.Since(e.last) > c.MaxAge {
			c.dropLocked(k)
			continue
		}
		unused = append(unused, k)
	}
	for len(unused) > c.Max {
		oldest := 0
		for i, k := range unused {
			if c.entries[k].last.Before(c.entries[unused[oldest]].last) {
				oldest = i
			}
		}
		c.dropLocked(unused[oldest])
		unused = append(unused[:oldest], unused[oldest+1:]...)
	}
}

func (c *Checkouts) dropLocked(key string) {
	_ = os.RemoveAll(c.entries[key].dir)
	delete(c.entries, key)
}

// alive reports whether process pid runs on this host.
func alive(pid int) bool {
	if pid == os.Getpid() {
		return true
	}
	return syscall.Kill(pid, 0) == nil || errors.Is(syscall.Kill(pid, 0), syscall.EPERM)
}

// Len is the number of checkouts kept.
func (c *Checkouts) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}
