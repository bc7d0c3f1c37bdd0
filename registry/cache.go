package registry

import (
	"sync"
	"time"

	"github.com/berth-dev/berth/registry/reference"
)

// lru is a bounded least-recently-used map, optionally bounded by a byte
// budget too. It is safe for concurrent use.
type lru[K comparable, V any] struct {
	mu       sync.Mutex
	items    map[K]*lruNode[K, V]
	head     lruNode[K, V] // sentinel: head.next is the most recent
	maxItems int
	maxBytes int64
	bytes    int64
}

type lruNode[K comparable, V any] struct {
	key        K
	val        V
	size       int64
	prev, next *lruNode[K, V]
}

func newLRU[K comparable, V any](maxItems int, maxBytes int64) *lru[K, V] {
	c := &lru[K, V]{items: make(map[K]*lruNode[K, V]), maxItems: maxItems, maxBytes: maxBytes}
	c.head.next, c.head.prev = &c.head, &c.head
	return c
}

func (c *lru[K, V]) unlink(n *lruNode[K, V]) {
	n.prev.next, n.next.prev = n.next, n.prev
}

func (c *lru[K, V]) pushFront(n *lruNode[K, V]) {
	n.prev, n.next = &c.head, c.head.next
	c.head.next.prev = n
	c.head.next = n
}

func (c *lru[K, V]) get(k K) (V, bool) {
	c.mu.Lock()
	n, ok := c.items[k]
	if !ok {
		c.mu.Unlock()
		var zero V
		return zero, false
	}
	if c.head.next != n {
		c.unlink(n)
		c.pushFront(n)
	}
	v := n.val
	c.mu.Unlock()
	return v, true
}

// add stores k; size counts against the byte budget (entries larger than an
// eighth of the budget are not cached).
func (c *lru[K, V]) add(k K, v V, size int64) {
	if c.maxBytes > 0 && size > c.maxBytes/8 {
		c.remove(k)
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if n, ok := c.items[k]; ok {
		c.bytes += size - n.size
		n.val, n.size = v, size
		c.unlink(n)
		c.pushFront(n)
	} else {
		n := &lruNode[K, V]{key: k, val: v, size: size}
		c.items[k] = n
		c.pushFront(n)
		c.bytes += size
	}
	for len(c.items) > c.maxItems || (c.maxBytes > 0 && c.bytes > c.maxBytes) {
		last := c.head.prev
		if last == &c.head {
			break
		}
		c.unlink(last)
		delete(c.items, last.key)
		c.bytes -= last.size
	}
}

func (c *lru[K, V]) remove(k K) {
	c.mu.Lock()
	if n, ok := c.items[k]; ok {
		c.unlink(n)
		delete(c.items, k)
		c.bytes -= n.size
	}
	c.mu.Unlock()
}

// removeIf drops every entry matching fn.
func (c *lru[K, V]) removeIf(fn func(K, V) bool) {
	c.mu.Lock()
	for k, n := range c.items {
		if fn(k, n.val) {
			c.unlink(n)
			delete(c.items, k)
			c.bytes -= n.size
		}
	}
	c.mu.Unlock()
}

type tagKey struct{ name, tag string }

type tagEntry struct {
	dg reference.Digest
	at time.Time
}

type manifestKey struct {
	name string
	dg   reference.Digest
}

type cachedManifest struct {
	mediaType string
	payload   []byte
	size      string // len(payload) formatted once for Content-Length
	at        time.Time
}
