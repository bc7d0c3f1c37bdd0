package registry

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/berth-dev/berth/registry/reference"
	"github.com/berth-dev/berth/registry/storage"
)

// TagGuard is implemented by Hooks that keep some tags immutable (SPEC §14): an existing tag that
// TagImmutable reports is never moved to another digest nor deleted, by the HTTP API or the Go API.
type TagGuard interface {
	TagImmutable(ctx context.Context, name, tag string) (bool, error)
}

// Locker keeps a critical section to one holder at a time across every registry sharing the storage
// (lease.Redis): the first push of an immutable tag, so two replicas racing to create it do not both win.
type Locker interface {
	Lock(ctx context.Context, key string, ttl time.Duration) (unlock func(), err error)
}

// tagLockTTL bounds how long a crashed holder keeps an immutable tag's first push waiting; the guarded work
// (one read and one small write of the storage) is far shorter.
const tagLockTTL = 30 * time.Second

// ErrTagImmutable is the refusal to move or delete an immutable tag: 403 DENIED.
func ErrTagImmutable(name, tag string) *Error {
	return newErr(CodeDenied, http.StatusForbidden, fmt.Sprintf("tag %s is immutable in %s", tag, name)).
		WithDetail(map[string]string{"reason": "TAG_IMMUTABLE", "repository": name, "tag": tag})
}

// IsTagImmutable reports whether err is an ErrTagImmutable refusal.
func IsTagImmutable(err error) bool {
	var e *Error
	if !errors.As(err, &e) || e.Code != CodeDenied {
		return false
	}
	d, ok := e.Detail.(map[string]string)
	return ok && d["reason"] == "TAG_IMMUTABLE"
}

func (r *Registry) lockTag(ctx context.Context, name, tag string) (func(), error) {
	key := "berth:registry:tag:" + name + ":" + tag
	if r.cfg.TagLocker != nil {
		wctx, cancel := context.WithTimeout(ctx, tagLockTTL+5*time.Second)
		defer cancel()
		return r.cfg.TagLocker.Lock(wctx, key, tagLockTTL)
	}
	m, _ := r.tagLocks.LoadOrStore(key, &sync.Mutex{})
	mu := m.(*sync.Mutex)
	mu.Lock()
	return mu.Unlock, nil
}

func (r *Registry) immutable(ctx context.Context, name, tag string) (bool, error) {
	g, ok := r.hooks.(TagGuard)
	if !ok {
		return false, nil
	}
	return g.TagImmutable(ctx, name, tag)
}

// guardTags is called before tags are pointed at dg: it refuses (ErrTagImmutable) when an immutable one
// already points elsewhere. The returned release must be called after the tags are written: until then the
// immutable tags are locked, across replicas with a TagLocker, so of two pushes racing to create one only
// the first writes it and the second sees it.
func (r *Registry) guardTags(ctx context.Context, name string, tags []string, dg reference.Digest) (release func(), err error) {
	var unlocks []func()
	release = func() {
		for i := len(unlocks) - 1; i >= 0; i-- {
			unlocks[i]()
		}
	}
	sorted := slices.Clone(tags)
	slices.Sort(sorted) // one lock order for every push
	for _, t := range sorted {
		imm, err := r.immutable(ctx, name, t)
		if err != nil {
			release()
			return nil, err
		}
		if !imm {
			continue
		}
		unlock, err := r.lockTag(ctx, name, t)
		if err != nil {
			release()
			return nil, fmt.Errorf("lock the immutable tag %s:%s: %w", name, t, err)
		}
		unlocks = append(unlocks, unlock)
		// The storage, not the cache: another replica may have written the tag a moment ago.
		cur, err := r.store.ResolveTag(ctx, name, t)
		switch {
		case err == nil && cur != dg:
			release()
			return nil, ErrTagImmutable(name, t)
		case err != nil && !errors.Is(err, storage.ErrTagUnknown) && !errors.Is(err, storage.ErrRepoUnknown):
			release()
			return nil, err
		}
	}
	return release, nil
}

// guardDelete refuses to delete tag when it exists and is immutable.
func (r *Registry) guardDelete(ctx context.Context, name, tag string) error {
	imm, err := r.immutable(ctx, name, tag)
	if err != nil || !imm {
		return err
	}
	if _, err := r.store.ResolveTag(ctx, name, tag); err != nil {
		return nil // nothing to keep: the deletion answers MANIFEST_UNKNOWN
	}
	return ErrTagImmutable(name, tag)
}
