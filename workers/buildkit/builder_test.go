package buildkit

import (
	"context"
	"errors"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

func build(t *testing.T, b *Builder, req BuildRequest) (BuildResult, string, time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	log := newLogWriter(t)
	start := time.Now()
	res, err := b.Build(ctx, req, log)
	took := time.Since(start)
	if err != nil {
		t.Fatalf("Build %s: %v\n%s", req.ImageRef, err, log.String())
	}
	t.Logf("built %s in %v: %s, %d/%d steps cached", req.ImageRef, took.Round(time.Millisecond), res.Digest, res.CachedSteps, res.TotalSteps)
	return res, log.String(), took
}

// cachedInLog returns the names of the build steps a plain progress log
// shows as CACHED ("#6 [2/3] COPY …" then "#6 CACHED"), FROM excluded.
func cachedInLog(log string) []string {
	names := map[string]string{}
	var cached []string
	for _, line := range strings.Split(log, "\n") {
		id, rest, ok := strings.Cut(line, " ")
		if !ok || !strings.HasPrefix(id, "#") {
			continue
		}
		if strings.HasPrefix(rest, "[") {
			names[id] = rest
		}
		if rest == "CACHED" && isStep(names[id]) {
			cached = append(cached, names[id])
		}
	}
	return cached
}

func TestBuildCopyRunAndCache(t *testing.T) {
	b := testBuilder(t)
	host := newTestRegistry(t)
	base := pushBusybox(t, host, nil)
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"Dockerfile": "FROM " + base + "\n" +
			"COPY hello.txt /app/hello.txt\n" +
			"RUN echo built > /app/built.txt && cat /app/hello.txt /app/hello.txt > /app/twice.txt\n",
		"hello.txt": "hello berth\n",
	})
	req := BuildRequest{ContextDir: dir, ImageRef: host + "/team/app:v1", Insecure: true}

	res, log, took := build(t, b, req)
	t.Logf("MEASURE FROM busybox + COPY + RUN: %v", took.Round(time.Millisecond))
	files, digest := imageFiles(t, req.ImageRef, nil)
	if res.Digest != digest {
		t.Errorf("result digest %s, registry has %s", res.Digest, digest)
	}
	want := map[string]string{
		"app/hello.txt": "hello berth\n",
		"app/built.txt": "built\n",
		"app/twice.txt": "hello berth\nhello berth\n",
	}
	for p, c := range want {
		if files[p] != c {
			t.Errorf("%s = %q, want %q", p, files[p], c)
		}
	}
	if res.TotalSteps != 2 {
		t.Errorf("TotalSteps = %d, want 2 (COPY, RUN)", res.TotalSteps)
	}
	if !strings.Contains(log, "RUN echo built") || !strings.Contains(log, "DONE") {
		t.Errorf("the build log lacks the RUN step:\n%s", log)
	}

	t.Run("rebuild is cached", func(t *testing.T) {
		res2, log, took := build(t, b, req)
		t.Logf("MEASURE cached rebuild: %v", took.Round(time.Millisecond))
		if res2.CachedSteps != res2.TotalSteps || res2.TotalSteps != 2 {
			t.Errorf("cached %d of %d steps, want all 2\n%s", res2.CachedSteps, res2.TotalSteps, log)
		}
		if c := cachedInLog(log); len(c) != 2 {
			t.Errorf("log shows %d CACHED steps %q, want COPY and RUN:\n%s", len(c), c, log)
		}
		if res2.Digest != res.Digest {
			t.Errorf("cached rebuild digest %s, first build %s", res2.Digest, res.Digest)
		}
	})

	t.Run("no cache", func(t *testing.T) {
		nc := req
		nc.NoCache = true
		res3, log, took := build(t, b, nc)
		t.Logf("MEASURE no-cache rebuild: %v", took.Round(time.Millisecond))
		if res3.CachedSteps != 0 || res3.TotalSteps != 2 {
			t.Errorf("cached %d of %d steps, want 0 of 2\n%s", res3.CachedSteps, res3.TotalSteps, log)
		}
		if c := cachedInLog(log); len(c) != 0 {
			t.Errorf("no-cache log has CACHED steps %q:\n%s", c, log)
		}
	})
}

func TestBuildMultiStageArgsTarget(t *testing.T) {
	b := testBuilder(t)
	host := newTestRegistry(t)
	base := pushBusybox(t, host, nil)
	dir := t.TempDir()
	// The Dockerfile lives outside the context, under another name.
	dfDir := t.TempDir()
	writeFiles(t, dfDir, map[string]string{"build.Dockerfile": "" +
		"FROM " + base + " AS build\n" +
		"ARG GREETING=hello\n" +
		"COPY name.txt /src/name.txt\n" +
		`RUN echo "$GREETING $(cat /src/name.txt)" > /out.txt` + "\n" +
		"FROM " + base + " AS final\n" +
		"COPY --from=build /out.txt /result/out.txt\n" +
		"FROM " + base + " AS other\n" +
		"RUN echo other > /other.txt\n",
	})
	writeFiles(t, dir, map[string]string{"name.txt": "berth"})

	tests := []struct {
		name   string
		args   map[string]string
		target string
		want   map[string]string
		absent string
	}{
		{name: "target final with arg", args: map[string]string{"GREETING": "hi"}, target: "final",
			want: map[string]string{"result/out.txt": "hi berth\n"}, absent: "other.txt"},
		{name: "target final default arg", target: "final",
			want: map[string]string{"result/out.txt": "hello berth\n"}, absent: "other.txt"},
		{name: "last stage", want: map[string]string{"other.txt": "other\n"}, absent: "result/out.txt"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ref := host + "/team/multi:" + strings.ReplaceAll(tt.name, " ", "-")
			build(t, b, BuildRequest{
				ContextDir: dir, DockerfileDir: dfDir, DockerfileName: "build.Dockerfile",
				BuildArgs: tt.args, Target: tt.target, Platforms: []string{"linux/amd64"},
				ImageRef: ref, Insecure: true,
			})
			files, _ := imageFiles(t, ref, nil)
			for p, c := range tt.want {
				if files[p] != c {
					t.Errorf("%s = %q, want %q", p, files[p], c)
				}
			}
			if _, ok := files[tt.absent]; ok {
				t.Errorf("%s should not be in the image", tt.absent)
			}
		})
	}
}

func TestBuildRegistryCache(t *testing.T) {
	b := testBuilder(t)
	host := newTestRegistry(t)
	base := pushBusybox(t, host, nil)
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"Dockerfile": "FROM " + base + "\n" +
			"COPY data.txt /data.txt\n" +
			// A step worth caching: about a second of work.
			"RUN sleep 1 && wc -c /data.txt > /size.txt && date > /built-at.txt\n",
		"data.txt": strings.Repeat("cache me\n", 1000),
	})
	req := BuildRequest{
		ContextDir: dir,
		ImageRef:   host + "/team/cached:v1",
		CacheRef:   host + "/team/cached:buildcache",
		Insecure:   true,
	}
	first, _, took := build(t, b, req)
	t.Logf("MEASURE cold build with cache export: %v", took.Round(time.Millisecond))
	if first.CachedSteps != 0 {
		t.Errorf("first build cached %d steps, want 0", first.CachedSteps)
	}
	firstFiles, digest := imageFiles(t, req.ImageRef, nil)
	if digest != first.Digest {
		t.Fatalf("pushed digest %s, result %s", digest, first.Digest)
	}

	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	freed, err := b.Prune(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("pruned %d bytes of local cache", freed)

	// Local cache is gone: every step must come from the registry cache, so
	// the RUN step's output is the same (the image config's timestamps are
	// not: the manifest digest differs).
	req.ImageRef = host + "/team/cached:v2"
	second, log, took := build(t, b, req)
	t.Logf("MEASURE rebuild after prune with cache import: %v", took.Round(time.Millisecond))
	if second.CachedSteps < 2 {
		t.Errorf("cache import: %d of %d steps cached, want COPY and RUN cached\n%s", second.CachedSteps, second.TotalSteps, log)
	}
	secondFiles, _ := imageFiles(t, req.ImageRef, nil)
	if secondFiles["built-at.txt"] != firstFiles["built-at.txt"] || firstFiles["built-at.txt"] == "" {
		t.Errorf("RUN ran again: built-at %q, first build %q", secondFiles["built-at.txt"], firstFiles["built-at.txt"])
	}
	if !strings.Contains(log, "importing cache manifest from "+req.CacheRef) {
		t.Errorf("log does not show the cache import:\n%s", log)
	}

	// NoCache neither imports nor exports the registry cache.
	if _, err := b.Prune(ctx); err != nil {
		t.Fatal(err)
	}
	nc := req
	nc.NoCache = true
	nc.ImageRef = host + "/team/cached:v3"
	third, log, _ := build(t, b, nc)
	if third.CachedSteps != 0 || strings.Contains(log, "importing cache") || strings.Contains(log, "exporting cache") {
		t.Errorf("NoCache build used the registry cache (%d cached)\n%s", third.CachedSteps, log)
	}
}

func TestBuildTokenAuth(t *testing.T) {
	b := testBuilder(t)
	const user, password = "builder", "push-secret"
	host := newTokenRegistry(t, user, password)
	creds := &authn.Basic{Username: user, Password: password}
	base := pushBusybox(t, host, creds)
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"Dockerfile": "FROM " + base + "\nRUN echo private > /private.txt\n",
	})
	var mu sync.Mutex
	var asked []string
	req := BuildRequest{
		ContextDir: dir,
		ImageRef:   host + "/team/private:v1",
		CacheRef:   host + "/team/private:buildcache",
		Insecure:   true,
		Auth: func(h string) (string, string) {
			mu.Lock()
			asked = append(asked, h)
			mu.Unlock()
			if h == host {
				return user, password
			}
			return "", ""
		},
	}
	build(t, b, req)
	files, _ := imageFiles(t, req.ImageRef, creds)
	if files["private.txt"] != "private\n" {
		t.Errorf("private.txt = %q", files["private.txt"])
	}
	if len(asked) == 0 {
		t.Errorf("the Auth func was never called")
	}

	t.Run("wrong credentials", func(t *testing.T) {
		bad := req
		bad.ImageRef = host + "/team/private:v2"
		bad.NoCache = true
		bad.Auth = func(string) (string, string) { return user, "wrong" }
		log := newLogWriter(t)
		_, err := b.Build(t.Context(), bad, log)
		if err == nil {
			t.Fatal("build with wrong credentials succeeded")
		}
		// The base image's pull is refused first, with Berth's registry's own answer; the secret is never shown.
		want := "build " + bad.ImageRef + ": failed to solve: " + base + ": failed to resolve source metadata for " +
			base + ": failed to authorize: failed to fetch oauth token: unauthorized: invalid username or password"
		if err.Error() != want {
			t.Fatalf("err = %v\nwant  %s", err, want)
		}
		// Nothing was pushed under the tag.
		tag, _ := name.NewTag(bad.ImageRef, name.Insecure)
		_, err = remote.Head(tag, remote.WithAuth(creds), remote.WithContext(t.Context()))
		var terr *transport.Error
		if !errors.As(err, &terr) || terr.StatusCode != http.StatusNotFound {
			t.Fatalf("HEAD %s after the refused build: %v, want 404", bad.ImageRef, err)
		}
	})
}

func TestBuildFailure(t *testing.T) {
	b := testBuilder(t)
	host := newTestRegistry(t)
	base := pushBusybox(t, host, nil)
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"Dockerfile": "FROM " + base + "\nRUN echo about to fail && false\n",
	})
	log := newLogWriter(t)
	_, err := b.Build(t.Context(), BuildRequest{ContextDir: dir, ImageRef: host + "/team/broken:v1", Insecure: true}, log)
	if err == nil {
		t.Fatal("want an error")
	}
	t.Logf("error: %v", err)
	if !strings.Contains(err.Error(), "false") || !strings.Contains(log.String(), "about to fail") {
		t.Errorf("error %q / log do not show the failing step:\n%s", err, log.String())
	}

	_, err = b.Build(t.Context(), BuildRequest{ContextDir: filepath.Join(dir, "missing"), ImageRef: host + "/x:y"}, nil)
	if err == nil {
		t.Fatal("want an error for a missing context dir")
	}
}

func TestBuildCancel(t *testing.T) {
	b := testBuilder(t)
	host := newTestRegistry(t)
	base := pushBusybox(t, host, nil)
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		// date makes the step unique, so no cache can satisfy it.
		"Dockerfile": "FROM " + base + "\nRUN date > /now && sleep 60\n",
	})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	log := newLogWriter(t)
	canceled := make(chan time.Time, 1)
	go func() {
		// Cancel once the sleep runs: 2 s after the RUN step started.
		deadline := time.Now().Add(time.Minute)
		for time.Now().Before(deadline) && !strings.Contains(log.String(), "RUN date") {
			time.Sleep(50 * time.Millisecond)
		}
		time.Sleep(2 * time.Second)
		canceled <- time.Now()
		cancel()
	}()
	start := time.Now()
	_, err := b.Build(ctx, BuildRequest{ContextDir: dir, ImageRef: host + "/team/slow:v1", Insecure: true, NoCache: true}, log)
	var took time.Duration
	select {
	case at := <-canceled:
		took = time.Since(at)
	default:
		t.Fatalf("Build returned before it was canceled: %v\n%s", err, log.String())
	}
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled\n%s", err, log.String())
	}
	t.Logf("MEASURE cancel: returned %v after cancel (build ran %v)", took.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	if took > 5*time.Second {
		t.Errorf("Build returned %v after cancel, want a few seconds at most", took)
	}

	// The daemon is still usable afterwards.
	if err := b.Ping(t.Context()); err != nil {
		t.Fatal(err)
	}
}
