package registry_test

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berth-dev/berth/registry"
)

// immutableHooks keep the tags matching re immutable.
type immutableHooks struct {
	registry.NopHooks
	re *regexp.Regexp
}

func (h immutableHooks) TagImmutable(_ context.Context, _, tag string) (bool, error) {
	return h.re.MatchString(tag), nil
}

func TestImmutableTags(t *testing.T) {
	s := startServer(t, defaultAuthz(), immutableHooks{re: regexp.MustCompile(`^v\d+$`)})
	tok := s.token("alice", "alice-pw", "repository:ns/app:pull,push,delete")
	ct := withHeader("Content-Type", "application/vnd.oci.image.manifest.v1+json")

	dg1, m1 := s.pushImage(tok, "ns/app", "v1", "a")
	_, m2 := s.pushImage(tok, "ns/app", "latest", "b")
	// Another digest to the immutable tag: refused; the same digest again: fine.
	resp, b := s.do("PUT", "/v2/ns/app/manifests/v1", m2, withBearer(tok), ct)
	expect(t, resp, b, 403, "DENIED")
	if !strings.Contains(string(b), "tag v1 is immutable in ns/app") {
		t.Fatalf("message: %s", b)
	}
	resp, b = s.do("PUT", "/v2/ns/app/manifests/v1", m1, withBearer(tok), ct)
	expect(t, resp, b, 201, "")
	// A push by digest with ?tag= is refused the same way.
	resp, b = s.do("PUT", "/v2/ns/app/manifests/"+sha256Digest(m2)+"?tag=v1", m2, withBearer(tok), ct)
	expect(t, resp, b, 403, "DENIED")
	// A mutable tag moves.
	resp, b = s.do("PUT", "/v2/ns/app/manifests/latest", m1, withBearer(tok), ct)
	expect(t, resp, b, 201, "")

	// Deletions: the tag, and the manifest it points at.
	resp, b = s.do("DELETE", "/v2/ns/app/manifests/v1", nil, withBearer(tok))
	expect(t, resp, b, 403, "DENIED")
	resp, b = s.do("DELETE", "/v2/ns/app/manifests/"+dg1, nil, withBearer(tok))
	expect(t, resp, b, 403, "DENIED")
	err := s.reg.DeleteTag(context.Background(), "ns/app", "v1")
	if !registry.IsTagImmutable(err) {
		t.Fatalf("Go API DeleteTag: %v", err)
	}
	if got, err := s.reg.ResolveTag(context.Background(), "ns/app", "v1"); err != nil || got != dg1 {
		t.Fatalf("v1 -> %s, %v; want %s", got, err, dg1)
	}
	// Deleting a tag that does not exist is still MANIFEST_UNKNOWN; a mutable one goes.
	resp, b = s.do("DELETE", "/v2/ns/app/manifests/v9", nil, withBearer(tok))
	expect(t, resp, b, 404, "MANIFEST_UNKNOWN")
	resp, b = s.do("DELETE", "/v2/ns/app/manifests/latest", nil, withBearer(tok))
	expect(t, resp, b, 202, "")
}

// sharedLocker is one Locker for several registries, as Redis is for replicas.
type sharedLocker struct{ locks sync.Map }

func (l *sharedLocker) Lock(_ context.Context, key string, _ time.Duration) (func(), error) {
	m, _ := l.locks.LoadOrStore(key, &sync.Mutex{})
	m.(*sync.Mutex).Lock()
	return m.(*sync.Mutex).Unlock, nil
}

// TestImmutableTagFirstPushRace: many pushes of different digests race to create one immutable tag through
// two registries on one storage sharing a Locker; exactly one wins and the tag keeps its digest.
func TestImmutableTagFirstPushRace(t *testing.T) {
	hooks := immutableHooks{re: regexp.MustCompile(`.*`)}
	locker := &sharedLocker{}
	withLocker := func(c *registry.Config) { c.TagLocker = locker }
	a := startServer(t, defaultAuthz(), hooks, withLocker)
	b := startServerAt(t, a.root, defaultAuthz(), hooks, withLocker)
	tok := a.token("alice", "alice-pw", "repository:ns/race:pull,push")
	const n = 12
	manifests := make([][]byte, n)
	for i := range manifests {
		config := []byte(fmt.Sprintf(`{"architecture":"amd64","os":"linux","seed":"%d"}`, i))
		a.pushBlob(tok, "ns/race", config)
		manifests[i] = imageManifest(config)
	}
	codes := make([]int, n)
	var wg sync.WaitGroup
	for i := range manifests {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := a
			if i%2 == 1 {
				s = b
			}
			tokS := s.token("alice", "alice-pw", "repository:ns/race:pull,push")
			resp, _ := s.do("PUT", "/v2/ns/race/manifests/stable", manifests[i], withBearer(tokS),
				withHeader("Content-Type", "application/vnd.oci.image.manifest.v1+json"))
			codes[i] = resp.StatusCode
		}()
	}
	wg.Wait()
	won := -1
	for i, c := range codes {
		switch c {
		case 201:
			if won >= 0 {
				t.Fatalf("two pushes won: %d and %d (%v)", won, i, codes)
			}
			won = i
		case 403:
		default:
			t.Fatalf("push %d: %d", i, c)
		}
	}
	if won < 0 {
		t.Fatalf("no push won: %v", codes)
	}
	for _, s := range []*testServer{a, b} {
		if got, err := s.reg.ResolveTag(context.Background(), "ns/race", "stable"); err != nil || got != sha256Digest(manifests[won]) {
			t.Fatalf("stable -> %s, %v; want the winner's %s", got, err, sha256Digest(manifests[won]))
		}
	}
}
