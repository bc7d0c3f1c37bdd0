package buildkit

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// TestCacheNamespace: a cache mount id is shared within one CacheNamespace and not across two, and a RUN
// step's result that read a cache mount is not reused by another namespace.
func TestCacheNamespace(t *testing.T) {
	b := testBuilder(t)
	host := newTestRegistry(t)
	base := pushBusybox(t, host, nil)
	const mount = "RUN --mount=type=cache,target=/c,id=shared "
	plant, read := t.TempDir(), t.TempDir()
	writeFiles(t, plant, map[string]string{"Dockerfile": "FROM " + base + "\n" + mount + "echo planted > /c/planted\n"})
	writeFiles(t, read, map[string]string{"Dockerfile": "FROM " + base + "\n" + mount + "(cat /c/planted || echo nothing) > /seen.txt\n"})
	nsA := CacheNamespace("team-a/app", time.UnixMilli(1))
	nsB := CacheNamespace("team-b/app", time.UnixMilli(1))
	if nsA == nsB || nsA == CacheNamespace("team-a/app", time.UnixMilli(2)) {
		t.Fatalf("namespaces collide: %s %s", nsA, nsB)
	}
	build(t, b, BuildRequest{ContextDir: plant, ImageRef: host + "/team-a/app:plant", Insecure: true, CacheNamespace: nsA})
	for _, tt := range []struct{ ns, tag, want string }{{nsA, "a", "planted\n"}, {nsB, "b", "nothing\n"}} {
		ref := host + "/x/app:" + tt.tag
		res, _, _ := build(t, b, BuildRequest{ContextDir: read, ImageRef: ref, Insecure: true, CacheNamespace: tt.ns})
		if files, _ := imageFiles(t, ref, nil); files["seen.txt"] != tt.want || res.CachedSteps != 0 {
			t.Errorf("namespace %s sees %q (%d steps cached), want %q", tt.tag, files["seen.txt"], res.CachedSteps, tt.want)
		}
	}

	_, err := b.Build(t.Context(), BuildRequest{ContextDir: read, ImageRef: host + "/x/app:c",
		BuildArgs: map[string]string{"BuildKit_Cache_Mount_NS": nsA}}, nil)
	if !errors.Is(err, ErrReservedBuildArg) || err.Error() != "build: build args named BUILDKIT_* are reserved: BuildKit_Cache_Mount_NS configures BuildKit itself (cache-mount namespace, inline cache, frontend), which Berth sets; rename the argument" {
		t.Fatalf("err = %v", err)
	}
}

// TestSyntaxLineIgnored: a "# syntax=" line does not hand the build to a frontend image (which would choose its
// cache mount ids itself): BuildKit's own Dockerfile frontend builds it. The named frontend does not exist, so
// the build fails if it is asked for.
func TestSyntaxLineIgnored(t *testing.T) {
	b := testBuilder(t)
	host := newTestRegistry(t)
	base := pushBusybox(t, host, nil)
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"Dockerfile": "# syntax=" + host + "/evil/frontend:latest\nFROM " + base + "\nRUN echo built > /built.txt\n"})
	ref := host + "/team/syntax:v1"
	_, log, _ := build(t, b, BuildRequest{ContextDir: dir, ImageRef: ref, Insecure: true, CacheNamespace: "berth-test"})
	if files, _ := imageFiles(t, ref, nil); files["built.txt"] != "built\n" {
		t.Errorf("built.txt = %q", files["built.txt"])
	}
	if strings.Contains(log, "evil/frontend") {
		t.Errorf("the build asked for the frontend image:\n%s", log)
	}
}
