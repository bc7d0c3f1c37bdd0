package server_test

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/berth-dev/berth/registry/storage/driver/s3/s3test"
	"github.com/berth-dev/berth/server/app"
	"github.com/berth-dev/berth/server/app/apptest"
	"github.com/berth-dev/berth/store"
)

// waitRetention waits until the namespace's run id is finished and returns it.
func waitRetention(t *testing.T, in *apptest.Instance, ns, id string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		r := in.Admin(t, "GET", "/api/v1/namespaces/"+ns+"/retention-runs/"+id, nil)
		if r.Status != 200 {
			t.Fatalf("get retention run: %d %s", r.Status, r.Body)
		}
		if r.JSON["finished_at"] != nil {
			return r.JSON
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("retention run %s did not finish in 60s", id)
	return nil
}

func startRetention(t *testing.T, in *apptest.Instance, ns string, dry bool) string {
	t.Helper()
	r := in.Admin(t, "POST", "/api/v1/namespaces/"+ns+"/retention-runs", map[string]any{"dry_run": dry})
	if r.Status != 202 || r.JSON["dry_run"] != dry || r.JSON["trigger"] != "api" {
		t.Fatalf("start retention: %d %s", r.Status, r.Body)
	}
	return r.JSON["id"].(string)
}

// deletedTags lists a run's deletions as repo:tag, sorted, and checks their digests against want.
func deletedTags(t *testing.T, run map[string]any, digests map[string]string) []string {
	t.Helper()
	var out []string
	for _, d := range run["deleted"].([]any) {
		m := d.(map[string]any)
		key := m["repository"].(string) + ":" + m["tag"].(string)
		if m["digest"] != digests[key] {
			t.Errorf("deletion %s names digest %v, pushed %s", key, m["digest"], digests[key])
		}
		out = append(out, key)
	}
	sort.Strings(out)
	return out
}

// setPushedAt moves a version's push time (what retention judges by) to at.
func setPushedAt(t *testing.T, in *apptest.Instance, repo, tag string, at time.Time) {
	t.Helper()
	ctx := context.Background()
	v, err := in.App.Store.GetImageVersion(ctx, repo, tag)
	if err != nil {
		t.Fatalf("version %s:%s: %v", repo, tag, err)
	}
	v.PushedAt = at.UTC().Truncate(time.Millisecond)
	if err := in.App.Store.PutImageVersion(ctx, v); err != nil {
		t.Fatal(err)
	}
}

// TestRetention: 30 versions of ret/app under two rules, the 5 most recent v* and the release-* pushed within a
// day; a dry run lists exactly the tags to go and deletes nothing; the real run deletes exactly those (an
// immutable one stays, as do tags no rule matches and a repository the rules' pattern does not name), pulls
// by their tags fail after; then a garbage collection frees their bytes, counted in the storage (the
// filesystem, or S3).
func TestRetention(t *testing.T) {
	t.Run("filesystem", func(t *testing.T) {
		in := apptest.Start(t, apptest.Options{Configure: func(c *app.Config) { c.GCInterval, c.RetentionInterval = 0, 0 }})
		testRetention(t, in, func(t *testing.T) map[string]int64 { return objectsOnDisk(t, in) })
	})
	t.Run("s3", func(t *testing.T) {
		srv := s3test.Start(t)
		bucket := srv.NewBucket(t)
		in := apptest.Start(t, apptest.Options{Configure: func(c *app.Config) {
			c.GCInterval, c.RetentionInterval = 0, 0
			c.S3 = app.S3Config{Endpoint: srv.Endpoint, Bucket: bucket, Region: "us-east-1", PathStyle: true,
				AccessKey: s3test.AccessKey, SecretKey: s3test.SecretKey}
		}})
		testRetention(t, in, func(t *testing.T) map[string]int64 { return objectsInBucket(t, srv, bucket) })
	})
}

func testRetention(t *testing.T, in *apptest.Instance, stored func(*testing.T) map[string]int64) {
	const ns = "ret"
	if r := in.Admin(t, "POST", "/api/v1/namespaces", map[string]any{"name": ns}); r.Status != 201 {
		t.Fatalf("namespace: %d %s", r.Status, r.Body)
	}
	// ret/app: v1..v20, release-1..release-8, latest, dev (30); ret/app2: v1..v4, outside the v rule's pattern.
	var tags []string
	for i := 1; i <= 20; i++ {
		tags = append(tags, fmt.Sprintf("v%d", i))
	}
	for i := 1; i <= 8; i++ {
		tags = append(tags, fmt.Sprintf("release-%d", i))
	}
	tags = append(tags, "latest", "dev")
	images := map[string]v1.Image{}
	digests := map[string]string{}
	push := func(repo, tag string) {
		img := imageWith(t)
		key := strings.TrimPrefix(repo, ns+"/") + ":" + tag
		images[key] = img
		digests[key] = pushImg(t, in, repo+":"+tag, img)
	}
	for _, tag := range tags {
		push(ns+"/app", tag)
	}
	for i := 1; i <= 4; i++ {
		push(ns+"/app2", fmt.Sprintf("v%d", i))
	}
	// Push times: v<i> i minutes after an hour ago (v20 newest); release-1..4 two to three days old, release-5..8
	// an hour old; app2's a week old.
	now := time.Now()
	for i := 1; i <= 20; i++ {
		setPushedAt(t, in, ns+"/app", fmt.Sprintf("v%d", i), now.Add(-time.Hour+time.Duration(i)*time.Minute))
	}
	for i := 1; i <= 8; i++ {
		at := now.Add(-time.Hour)
		if i <= 4 {
			at = now.Add(-48*time.Hour - time.Duration(i)*time.Hour)
		}
		setPushedAt(t, in, ns+"/app", fmt.Sprintf("release-%d", i), at)
	}
	for i := 1; i <= 4; i++ {
		setPushedAt(t, in, ns+"/app2", fmt.Sprintf("v%d", i), now.Add(-7*24*time.Hour))
	}
	// v1 is immutable: retention leaves it.
	if r := in.Admin(t, "PATCH", "/api/v1/repositories/ret/app", map[string]any{"immutable_tags": "v1"}); r.Status != 200 || r.JSON["immutable_tags"] != "v1" {
		t.Fatalf("immutable_tags: %d %s", r.Status, r.Body)
	}

	// Rules: validation, the limit, CRUD.
	base := "/api/v1/namespaces/" + ns + "/retention-rules"
	for _, bad := range []map[string]any{
		{"tag_pattern": "v(", "keep_last": 1},
		{"tag_pattern": strings.Repeat("a", 300), "keep_last": 1},
		{"tag_pattern": "v.*"},
		{"tag_pattern": "v.*", "keep_last": -1},
		{"tag_pattern": "v.*", "keep_last": 1, "extra": true},
	} {
		if r := in.Admin(t, "POST", base, bad); r.Status != 400 {
			t.Fatalf("rule %v: %d %s", bad, r.Status, r.Body)
		}
	}
	var ids []string
	for i := range store.MaxRetentionRules {
		r := in.Admin(t, "POST", base, map[string]any{"tag_pattern": "zz", "keep_last": i + 1})
		if r.Status != 201 || r.JSON["enabled"] != true || r.JSON["keep_last"] != float64(i+1) {
			t.Fatalf("rule %d: %d %s", i, r.Status, r.Body)
		}
		ids = append(ids, r.JSON["id"].(string))
	}
	if r := in.Admin(t, "POST", base, map[string]any{"tag_pattern": "zz", "keep_last": 1}); r.Status != 409 {
		t.Fatalf("16th rule: %d %s", r.Status, r.Body)
	}
	for _, id := range ids {
		if r := in.Admin(t, "DELETE", base+"/"+id, nil); r.Status != 204 {
			t.Fatalf("delete rule: %d %s", r.Status, r.Body)
		}
	}
	if r := in.Admin(t, "DELETE", base+"/"+ids[0], nil); r.Status != 404 {
		t.Fatalf("delete a deleted rule: %d %s", r.Status, r.Body)
	}
	r := in.Admin(t, "POST", base, map[string]any{"repository_pattern": "app", "tag_pattern": "v.*", "keep_last": 3})
	if r.Status != 201 {
		t.Fatalf("rule: %d %s", r.Status, r.Body)
	}
	vRule := r.JSON["id"].(string)
	if r := in.Admin(t, "PATCH", base+"/"+vRule, map[string]any{"keep_last": 5}); r.Status != 200 || r.JSON["keep_last"] != float64(5) || r.JSON["tag_pattern"] != "v.*" {
		t.Fatalf("patch rule: %d %s", r.Status, r.Body)
	}
	if r := in.Admin(t, "POST", base, map[string]any{"tag_pattern": "release-.*", "keep_days": 1}); r.Status != 201 {
		t.Fatalf("rule: %d %s", r.Status, r.Body)
	}
	// A disabled rule that would delete everything changes nothing.
	if r := in.Admin(t, "POST", base, map[string]any{"keep_last": 1, "enabled": false}); r.Status != 201 || r.JSON["enabled"] != false {
		t.Fatalf("disabled rule: %d %s", r.Status, r.Body)
	}
	if r := in.Admin(t, "GET", base, nil); r.Status != 200 || len(r.Items()) != 3 {
		t.Fatalf("list rules: %d %s", r.Status, r.Body)
	}
	if r := in.Admin(t, "GET", base+"/"+vRule, nil); r.Status != 200 || r.JSON["repository_pattern"] != "app" {
		t.Fatalf("get rule: %d %s", r.Status, r.Body)
	}

	var want []string // v2..v15, release-1..4
	for i := 2; i <= 15; i++ {
		want = append(want, fmt.Sprintf("app:v%d", i))
	}
	for i := 1; i <= 4; i++ {
		want = append(want, fmt.Sprintf("app:release-%d", i))
	}
	sort.Strings(want)
	const wantKept = 12 + 4 // v1, v16..v20, release-5..8, latest, dev; app2's four

	time.Sleep(1200 * time.Millisecond) // older than the collector's clock slack
	before := blobsIn(t, stored(t))

	dry := waitRetention(t, in, ns, startRetention(t, in, ns, true))
	if got := deletedTags(t, dry, digests); !slices.Equal(got, want) || dry["kept_count"] != float64(wantKept) ||
		dry["deleted_count"] != float64(len(want)) || dry["error"] != "" || dry["dry_run"] != true {
		t.Fatalf("dry run deleted %v (kept %v, error %v)\nwant %v", got, dry["kept_count"], dry["error"], want)
	}
	if after := blobsIn(t, stored(t)); !maps.Equal(after, before) {
		t.Fatalf("the dry run changed the storage")
	}
	if r := in.Admin(t, "GET", "/api/v1/repositories/ret/app/tags?page_size=100", nil); r.JSON["total"] != float64(30) {
		t.Fatalf("the dry run deleted versions: %s", r.Body)
	}

	run := waitRetention(t, in, ns, startRetention(t, in, ns, false))
	if got := deletedTags(t, run, digests); !slices.Equal(got, want) || run["kept_count"] != float64(wantKept) || run["error"] != "" {
		t.Fatalf("run deleted %v (kept %v, error %v)\nwant %v", got, run["kept_count"], run["error"], want)
	}
	if r := in.Admin(t, "GET", "/api/v1/namespaces/"+ns+"/retention-runs", nil); r.Status != 200 || len(r.Items()) != 2 ||
		r.Items()[0]["id"] != run["id"] || r.JSON["total"] != float64(2) {
		t.Fatalf("list runs: %d %s", r.Status, r.Body)
	}
	if r := in.Admin(t, "GET", "/api/v1/repositories/ret/app/tags?page_size=100", nil); r.JSON["total"] != float64(30-len(want)) {
		t.Fatalf("versions after the run: %s", r.Body)
	}
	for key := range digests {
		ref := ns + "/" + key
		gone := slices.Contains(want, key)
		if err := pull(t, in, ref); (err != nil) != gone {
			t.Errorf("pull %s after the run: %v (deleted: %v)", ref, err, gone)
		}
	}

	// The collection frees exactly the deleted images' manifests, configs and layers.
	gc := waitGC(t, in, startGC(t, in, map[string]any{"untagged_grace": "0s", "blob_grace": "0s"}))
	var freed []string
	var wantBytes int64
	for _, key := range want {
		for _, d := range digestsOf(images[key]) {
			size, ok := before[d]
			if !ok {
				t.Fatalf("%s of %s not in the storage before", d, key)
			}
			freed = append(freed, d)
			wantBytes += size
		}
	}
	after := blobsIn(t, stored(t))
	wantAfter := maps.Clone(before)
	for _, d := range freed {
		delete(wantAfter, d)
	}
	if !maps.Equal(after, wantAfter) || gc["blobs_deleted"] != float64(len(freed)) || gc["bytes_freed"] != float64(wantBytes) ||
		gc["manifests_deleted"] != float64(len(want)) {
		t.Fatalf("gc %v; the storage holds %d blobs (%d bytes), want %d (%d bytes): %d blobs and %d bytes freed",
			gc, len(after), sumSizes(after), len(wantAfter), sumSizes(wantAfter), len(freed), wantBytes)
	}
	if got := sumSizes(before) - sumSizes(after); got != wantBytes {
		t.Fatalf("the storage holds %d bytes less, want %d", got, wantBytes)
	}

	// RAM: the five actions on the namespace.
	if r := in.Admin(t, "POST", "/api/v1/policies", map[string]any{"name": "ret-read", "document": map[string]any{
		"Version": "1", "Statement": []any{map[string]any{"Effect": "Allow", "Action": "cr:ListRetentionRule",
			"Resource": "acs:cr:*:*:repository/ret"}}}}); r.Status != 201 {
		t.Fatalf("policy: %d %s", r.Status, r.Body)
	}
	if r := in.Admin(t, "POST", "/api/v1/users", map[string]any{"name": "auditor", "password": "auditor-password-1",
		"policies": []string{"ret-read"}}); r.Status != 201 {
		t.Fatalf("user: %d %s", r.Status, r.Body)
	}
	if r := in.Call(t, "auditor", "auditor-password-1", "GET", "/api/v1/namespaces/ret/retention-runs/"+run["id"].(string), nil); r.Status != 200 {
		t.Fatalf("read a run with cr:ListRetentionRule: %d %s", r.Status, r.Body)
	}
	if r := in.Call(t, "auditor", "auditor-password-1", "POST", "/api/v1/namespaces/ret/retention-runs", map[string]any{}); r.Status != 403 {
		t.Fatalf("start a run without cr:StartRetentionRun: %d %s", r.Status, r.Body)
	}
}

// TestImmutableTags: an immutable tag survives every way of moving or deleting it: a registry push of another
// digest, a registry DELETE of the tag or of its manifest, the REST deletes, retention and a build to it;
// pushing the same digest again works. Two replicas racing to create it: one push wins, and the tag keeps
// its digest.
func TestImmutableTags(t *testing.T) {
	bk := buildkitAddr(t)
	a, b := twoReplicas(t, func(c *app.Config) { c.GCInterval, c.RetentionInterval, c.BuildkitAddr = 0, 0, bk })
	if r := a.Admin(t, "POST", "/api/v1/namespaces", map[string]any{"name": "imm"}); r.Status != 201 {
		t.Fatalf("namespace: %d %s", r.Status, r.Body)
	}
	if r := a.Admin(t, "POST", "/api/v1/namespaces/imm/repositories", map[string]any{"name": "app"}); r.Status != 201 {
		t.Fatalf("repository: %d %s", r.Status, r.Body)
	}
	if r := a.Admin(t, "PATCH", "/api/v1/repositories/imm/app", map[string]any{"immutable_tags": "v("}); r.Status != 400 {
		t.Fatalf("a bad pattern: %d %s", r.Status, r.Body)
	}
	if r := a.Admin(t, "PATCH", "/api/v1/repositories/imm/app", map[string]any{"immutable_tags": `v\d+|stable`}); r.Status != 200 {
		t.Fatalf("immutable_tags: %d %s", r.Status, r.Body)
	}
	if r := b.Admin(t, "GET", "/api/v1/repositories/imm/app", nil); r.JSON["immutable_tags"] != `v\d+|stable` {
		t.Fatalf("GET repository: %s", r.Body)
	}
	first, other := imageWith(t), imageWith(t)
	dg := pushImg(t, a, "imm/app:v1", first)
	pushImg(t, a, "imm/app:scratch", other)
	otherDigest, _ := other.Digest()

	// The registry: another digest refused, the same one fine.
	ref, _ := name.ParseReference(b.Host+"/imm/app:v1", name.Insecure)
	err := remote.Write(ref, other, adminAuth)
	if err == nil || !strings.Contains(err.Error(), "DENIED") || !strings.Contains(err.Error(), "tag v1 is immutable in imm/app") {
		t.Fatalf("push another digest to v1: %v", err)
	}
	pushImg(t, b, "imm/app:v1", first)
	// The registry's DELETE, of the tag and of its manifest.
	if err := remote.Delete(ref, adminAuth); err == nil || !strings.Contains(err.Error(), "immutable") {
		t.Fatalf("registry DELETE of v1: %v", err)
	}
	dref, _ := name.ParseReference(a.Host+"/imm/app@"+dg, name.Insecure)
	if err := remote.Delete(dref, adminAuth); err == nil || !strings.Contains(err.Error(), "immutable") {
		t.Fatalf("registry DELETE of v1's manifest: %v", err)
	}
	// REST.
	if r := a.Admin(t, "DELETE", "/api/v1/repositories/imm/app/tags/v1", nil); r.Status != 409 || r.Code() != "TAG_IMMUTABLE" ||
		!strings.Contains(r.JSON["message"].(string), "tag v1 is immutable in imm/app") {
		t.Fatalf("REST delete of v1: %d %s", r.Status, r.Body)
	}
	if r := a.Admin(t, "DELETE", "/api/v1/repositories/imm/app/manifests/"+dg, nil); r.Status != 409 || r.Code() != "TAG_IMMUTABLE" {
		t.Fatalf("REST delete of v1's manifest: %d %s", r.Status, r.Body)
	}
	// Retention: a rule that keeps nothing but the newest v tag.
	pushImg(t, a, "imm/app:v2", imageWith(t))
	setPushedAt(t, a, "imm/app", "v1", time.Now().Add(-time.Hour))
	if r := a.Admin(t, "POST", "/api/v1/namespaces/imm/retention-rules", map[string]any{"tag_pattern": "v.*", "keep_last": 1}); r.Status != 201 {
		t.Fatalf("rule: %d %s", r.Status, r.Body)
	}
	run := waitRetention(t, b, "imm", startRetention(t, b, "imm", false))
	if len(run["deleted"].([]any)) != 0 || run["kept_count"] != float64(3) || run["error"] != "" {
		t.Fatalf("retention: %v", run)
	}
	// A build to v1 fails before it builds.
	g := newGitRepo(t)
	g.commit(t, map[string]string{"Dockerfile": "FROM scratch\nCOPY a /a\n", "a": "a\n"}, "first")
	if r := a.Admin(t, "PUT", "/api/v1/repositories/imm/app/source", map[string]any{"provider": "github", "url": g.URL}); r.Status != 201 {
		t.Fatalf("source: %d %s", r.Status, r.Body)
	}
	rule := a.Admin(t, "POST", "/api/v1/repositories/imm/app/build-rules", map[string]any{"source_type": "BRANCH", "source_ref": "main", "image_tag": "v1"})
	if rule.Status != 201 {
		t.Fatalf("build rule: %d %s", rule.Status, rule.Body)
	}
	br := a.Admin(t, "POST", "/api/v1/repositories/imm/app/build-rules/"+rule.JSON["id"].(string)+"/builds", nil)
	if br.Status != 202 && br.Status != 201 {
		t.Fatalf("build now: %d %s", br.Status, br.Body)
	}
	build := waitBuild(t, a, "imm/app", br.JSON["id"].(string), buildTimeout)
	if build["status"] != "FAILED" || !strings.Contains(fmt.Sprint(build["error"]), "tag v1 is immutable in imm/app") {
		t.Fatalf("build to v1: %v %v", build["status"], build["error"])
	}
	for _, st := range build["stages"].([]any) {
		if n := st.(map[string]any)["name"]; n == "BUILDING" || n == "PUSHING" {
			t.Fatalf("the build reached %v: %v", n, build["stages"])
		}
	}
	// After all of it, v1 is the first digest, on both replicas.
	for _, in := range []*apptest.Instance{a, b} {
		if r := in.Admin(t, "GET", "/api/v1/repositories/imm/app/tags/v1", nil); r.Status != 200 || r.JSON["digest"] != dg {
			t.Fatalf("v1 after all: %d %s", r.Status, r.Body)
		}
		if err := pull(t, in, "imm/app:v1"); err != nil {
			t.Fatalf("pull v1: %v", err)
		}
	}
	// A mutable tag still moves and goes.
	pushImg(t, a, "imm/app:scratch", first)
	if r := a.Admin(t, "DELETE", "/api/v1/repositories/imm/app/tags/scratch", nil); r.Status != 204 {
		t.Fatalf("delete a mutable tag: %d %s", r.Status, r.Body)
	}
	_ = otherDigest

	// The race: pushes of different digests to the new immutable tag "stable" through both replicas.
	const n = 8
	imgs := make([]v1.Image, n)
	for i := range imgs {
		imgs[i] = imageWith(t)
		// The blobs first, so the manifests race alone.
		pushImg(t, a, fmt.Sprintf("imm/app@%s", mustDigest(t, imgs[i])), imgs[i])
	}
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range imgs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			in := a
			if i%2 == 1 {
				in = b
			}
			r, _ := name.ParseReference(in.Host+"/imm/app:stable", name.Insecure)
			errs[i] = remote.Write(r, imgs[i], adminAuth)
		}()
	}
	wg.Wait()
	won := -1
	for i, err := range errs {
		switch {
		case err == nil && won >= 0:
			t.Fatalf("two pushes to the immutable tag won: %d and %d", won, i)
		case err == nil:
			won = i
		case !strings.Contains(err.Error(), "immutable"):
			t.Fatalf("push %d: %v", i, err)
		}
	}
	if won < 0 {
		t.Fatalf("no push won: %v", errs)
	}
	for _, in := range []*apptest.Instance{a, b} {
		st, _, body := registryGet(t, in, "imm/app", "manifests/stable")
		if st != 200 || string(body) != string(mustManifest(t, imgs[won])) {
			t.Fatalf("stable on %s: %d, not the winner's manifest", in.Host, st)
		}
	}
}

func mustDigest(t *testing.T, img v1.Image) string {
	t.Helper()
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

func mustManifest(t *testing.T, img v1.Image) []byte {
	t.Helper()
	b, err := img.RawManifest()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestRetentionSchedule: with --retention-interval, the rules run by themselves (trigger "schedule").
func TestRetentionSchedule(t *testing.T) {
	in := apptest.Start(t, apptest.Options{Configure: func(c *app.Config) { c.GCInterval, c.RetentionInterval = 0, 2*time.Second }})
	if r := in.Admin(t, "POST", "/api/v1/namespaces", map[string]any{"name": "sched"}); r.Status != 201 {
		t.Fatalf("namespace: %d %s", r.Status, r.Body)
	}
	pushImg(t, in, "sched/app:t1", imageWith(t))
	pushImg(t, in, "sched/app:t2", imageWith(t))
	setPushedAt(t, in, "sched/app", "t1", time.Now().Add(-time.Hour))
	if r := in.Admin(t, "POST", "/api/v1/namespaces/sched/retention-rules", map[string]any{"tag_pattern": "t.*", "keep_last": 1}); r.Status != 201 {
		t.Fatalf("rule: %d %s", r.Status, r.Body)
	}
	within(t, 20*time.Second, "a scheduled retention run", func() bool {
		r := in.Admin(t, "GET", "/api/v1/namespaces/sched/retention-runs", nil)
		for _, run := range r.Items() {
			if run["trigger"] == "schedule" && run["error"] != nil && run["error"] != "" {
				t.Fatalf("scheduled run: %v", run)
			}
			if run["trigger"] == "schedule" && run["finished_at"] != nil && run["deleted_count"] == float64(1) {
				return true
			}
		}
		return false
	})
	if err := pull(t, in, "sched/app:t1"); err == nil {
		t.Fatal("t1 still pulls after the scheduled run")
	}
}
