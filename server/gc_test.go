package server_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/redis/go-redis/v9"

	"github.com/berth-dev/berth/pipeline"
	s3driver "github.com/berth-dev/berth/registry/storage/driver/s3"
	"github.com/berth-dev/berth/registry/storage/driver/s3/s3test"
	"github.com/berth-dev/berth/server/app"
	"github.com/berth-dev/berth/server/app/apptest"
	"github.com/berth-dev/berth/store"
)

// digestsOf lists an image's manifest, config and layer digests.
func digestsOf(img v1.Image) []string {
	d, _ := img.Digest()
	c, _ := img.ConfigName()
	out := []string{d.String(), c.String()}
	layers, _ := img.Layers()
	for _, l := range layers {
		ld, _ := l.Digest()
		out = append(out, ld.String())
	}
	return out
}

// imageWith builds an image of the given layers plus one layer of its own.
func imageWith(t *testing.T, shared ...v1.Layer) v1.Image {
	t.Helper()
	own, err := random.Layer(2048, types.DockerLayer)
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(empty.Image, append(append([]v1.Layer{}, shared...), own)...)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// waitGC waits until the run id is finished and returns it.
func waitGC(t *testing.T, in *apptest.Instance, id string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		r := in.Admin(t, "GET", "/api/v1/system/gc?page_size=100", nil)
		if r.Status != 200 {
			t.Fatalf("list gc runs: %d %s", r.Status, r.Body)
		}
		for _, run := range r.Items() {
			if run["id"] == id && run["finished_at"] != nil {
				return run
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("garbage collection %s did not finish in 30s", id)
	return nil
}

func startGC(t *testing.T, in *apptest.Instance, body any) string {
	t.Helper()
	r := in.Admin(t, "POST", "/api/v1/system/gc", body)
	if r.Status != 202 || r.JSON["finished_at"] != nil {
		t.Fatalf("start gc: %d %s", r.Status, r.Body)
	}
	id, _ := r.JSON["id"].(string)
	return id
}

// objectsOnDisk maps every file of the registry's storage (DATA/registry) to its size, by its path from there
// with slashes: blobs/sha256/xx/hex/data, repositories/ns/repo/_layers/…/link, ….
func objectsOnDisk(t *testing.T, in *apptest.Instance) map[string]int64 {
	t.Helper()
	root := filepath.Join(in.DataDir, "registry")
	out := map[string]int64{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if p == root && errors.Is(err, fs.ErrNotExist) {
			return nil // nothing stored here (S3)
		}
		if err != nil || d.IsDir() {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		out[filepath.ToSlash(rel)] = fi.Size()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// objectsInBucket maps every object of the bucket to its size, as S3 itself lists them (ListObjectsV2), not
// as Berth's driver reads them.
func objectsInBucket(t *testing.T, srv *s3test.Server, bucket string) map[string]int64 {
	t.Helper()
	d, err := s3driver.New(srv.Config(bucket))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	pg := s3.NewListObjectsV2Paginator(d.Client(), &s3.ListObjectsV2Input{Bucket: &bucket})
	for pg.HasMorePages() {
		page, err := pg.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range page.Contents {
			out[aws.ToString(o.Key)] = aws.ToInt64(o.Size)
		}
	}
	return out
}

// blobsIn maps every blob digest among a storage's objects to the size of its data; an object under blobs/
// that is neither a blob's data nor a note of a repository using it fails the test.
func blobsIn(t *testing.T, objects map[string]int64) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	for key, size := range objects {
		parts := strings.Split(key, "/") // blobs/alg/xx/hex/data, or blobs/alg/xx/hex/_repositories/…/link
		switch {
		case parts[0] != "blobs":
		case len(parts) == 5 && parts[4] == "data" && strings.HasPrefix(parts[3], parts[2]):
			out[parts[1]+":"+parts[3]] = size
		case len(parts) > 6 && parts[4] == "_repositories" && parts[len(parts)-1] == "link":
		default:
			t.Fatalf("unexpected object in the blob store: %s (%d bytes)", key, size)
		}
	}
	return out
}

// danglingLinks lists the repositories' blob links and the blob store's notes that name a blob not stored.
func danglingLinks(objects map[string]int64) []string {
	blobs := map[string]bool{}
	for key := range objects {
		if parts := strings.Split(key, "/"); len(parts) == 5 && parts[0] == "blobs" && parts[4] == "data" {
			blobs[parts[1]+":"+parts[3]] = true
		}
	}
	var out []string
	for key := range objects {
		parts := strings.Split(key, "/")
		dg := ""
		if i := strings.Index(key, "/_layers/"); parts[0] == "repositories" && i >= 0 {
			if l := strings.Split(key[i+len("/_layers/"):], "/"); len(l) == 3 {
				dg = l[0] + ":" + l[1]
			}
		} else if parts[0] == "blobs" && len(parts) > 5 {
			dg = parts[1] + ":" + parts[3]
		}
		if dg != "" && !blobs[dg] {
			out = append(out, key)
		}
	}
	return out
}

// blobsOnDisk maps every blob digest in the registry's storage to the size of its data file.
func blobsOnDisk(t *testing.T, in *apptest.Instance) map[string]int64 {
	t.Helper()
	return blobsIn(t, objectsOnDisk(t, in))
}

func sumSizes(m map[string]int64) (n int64) {
	for _, s := range m {
		n += s
	}
	return n
}

// TestGarbageCollection: after a push over a tag, a tag delete and a repository delete, a collection with graces
// 0 frees exactly the blobs nothing references any more (by the files on disk, or the objects in the bucket),
// leaves no link to them, keeps index children and signatures of kept images, and a push running meanwhile that
// shares layers with kept images completes and stays pullable. A dry run first changes nothing and reports the
// same figures. The same test runs on the filesystem, on a real S3 server (versitygw), and on S3 with the
// concurrent pushes going through a second replica.
func TestGarbageCollection(t *testing.T) {
	t.Run("filesystem", func(t *testing.T) {
		in := apptest.Start(t, apptest.Options{Configure: func(c *app.Config) { c.GCInterval = 0 }})
		testGarbageCollection(t, in, in, func(t *testing.T) map[string]int64 { return objectsOnDisk(t, in) })
	})
	onS3 := func(t *testing.T) (func(*app.Config), func(*testing.T) map[string]int64) {
		srv := s3test.Start(t)
		bucket := srv.NewBucket(t)
		return func(c *app.Config) {
				c.GCInterval = 0
				c.S3 = app.S3Config{Endpoint: srv.Endpoint, Bucket: bucket, Region: "us-east-1", PathStyle: true,
					AccessKey: s3test.AccessKey, SecretKey: s3test.SecretKey}
			}, func(t *testing.T) map[string]int64 {
				return objectsInBucket(t, srv, bucket)
			}
	}
	t.Run("s3", func(t *testing.T) {
		configure, stored := onS3(t)
		in := apptest.Start(t, apptest.Options{Configure: configure})
		testGarbageCollection(t, in, in, stored)
		if files := objectsOnDisk(t, in); len(files) != 0 {
			t.Fatalf("with S3, registry files on the local disk: %v", files)
		}
	})
	// The collection runs on one replica while the concurrent pushes, and the pulls after, go through another.
	t.Run("s3-two-replicas", func(t *testing.T) {
		configure, stored := onS3(t)
		a, b := twoReplicas(t, configure)
		testGarbageCollection(t, a, b, stored)
	})
}

// testGarbageCollection is TestGarbageCollection on instance in, with the concurrent pushes (and the pulls
// that check them) through other (in itself, or another replica); stored lists the objects of their storage.
func testGarbageCollection(t *testing.T, in, other *apptest.Instance, stored func(*testing.T) map[string]int64) {
	blobsStored := func(t *testing.T) map[string]int64 { t.Helper(); return blobsIn(t, stored(t)) }
	for _, ns := range []string{"keep", "gc"} {
		if r := in.Admin(t, "POST", "/api/v1/namespaces", map[string]any{"name": ns}); r.Status != 201 {
			t.Fatalf("create namespace %s: %d %s", ns, r.Status, r.Body)
		}
	}
	l1, _ := random.Layer(4096, types.DockerLayer)
	l2, _ := random.Layer(4096, types.DockerLayer)
	freed := map[string]bool{} // what the collection must delete
	free := func(ds ...string) {
		for _, d := range ds {
			freed[d] = true
		}
	}

	// kept: a tagged image, an index (its children untagged) and a signature of the image (untagged referrer)
	kept := imageWith(t, l1, l2)
	keptDigest := pushImg(t, in, "keep/app:v1", kept)
	a, b := imageWith(t, l1), imageWith(t, l2)
	idx := mutate.AppendManifests(empty.Index, mutate.IndexAddendum{Add: a}, mutate.IndexAddendum{Add: b})
	pushIndex(t, in, "keep/app:multi", idx)
	keptDesc, _ := partialDescriptorOf(kept)
	sig := mutate.Subject(mutate.MediaType(imageWith(t), types.OCIManifestSchema1), keptDesc).(v1.Image)
	sigDigest, _ := sig.Digest()
	pushImg(t, in, "keep/app@"+sigDigest.String(), sig)

	// pushed over: the first latest becomes untagged
	old := imageWith(t, l1)
	oldDigest := pushImg(t, in, "gc/app:latest", old)
	free(digestsOf(old)...)
	pushImg(t, in, "gc/app:latest", imageWith(t, l2))
	// a tag deleted
	td := imageWith(t, l2)
	tdDigest := pushImg(t, in, "gc/tagdel:v1", td)
	free(digestsOf(td)...)
	if r := in.Admin(t, "DELETE", "/api/v1/repositories/gc/tagdel/tags/v1", nil); r.Status != 204 {
		t.Fatalf("delete tag: %d %s", r.Status, r.Body)
	}
	// a repository deleted: an index with a child, a signature of it, an image
	rd := imageWith(t, l1)
	pushImg(t, in, "gc/repodel:v1", rd)
	free(digestsOf(rd)...)
	child := imageWith(t, l2)
	rdIdx := mutate.AppendManifests(empty.Index, mutate.IndexAddendum{Add: child})
	rdIdxDigest := pushIndex(t, in, "gc/repodel:multi", rdIdx)
	free(rdIdxDigest)
	free(digestsOf(child)...)
	rdDesc, _ := partialDescriptor(rdIdx)
	rdSig := mutate.Subject(mutate.MediaType(imageWith(t), types.OCIManifestSchema1), rdDesc).(v1.Image)
	rdSigDigest, _ := rdSig.Digest()
	pushImg(t, in, "gc/repodel@"+rdSigDigest.String(), rdSig)
	free(digestsOf(rdSig)...)
	if r := in.Admin(t, "DELETE", "/api/v1/repositories/gc/repodel", nil); r.Status != 204 {
		t.Fatalf("delete repository: %d %s", r.Status, r.Body)
	}
	// an upload no manifest ever used
	orphan, _ := random.Layer(1000, types.DockerLayer)
	od, _ := orphan.Digest()
	repo, err := name.NewRepository(in.Host+"/gc/app", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteLayer(repo, orphan, adminAuth); err != nil {
		t.Fatal(err)
	}
	free(od.String())

	for _, l := range []v1.Layer{l1, l2} { // shared with kept images
		d, _ := l.Digest()
		delete(freed, d.String())
	}

	time.Sleep(1200 * time.Millisecond) // older than the collector's clock slack
	before := blobsStored(t)
	var wantBytes int64
	for d := range freed {
		size, ok := before[d]
		if !ok {
			t.Fatalf("%s should be on disk before the collection", d)
		}
		wantBytes += size
	}
	wantManifests := 2 // the old latest, the untagged v1 of tagdel

	// Only the administrator may collect.
	if r := in.Admin(t, "POST", "/api/v1/users", map[string]any{"name": "dev", "password": "dev-password-1",
		"policies": []string{"AliyunContainerRegistryFullAccess"}}); r.Status != 201 {
		t.Fatalf("create user: %d %s", r.Status, r.Body)
	}
	for _, m := range []string{"POST", "GET"} {
		if r := in.Call(t, "dev", "dev-password-1", m, "/api/v1/system/gc", nil); r.Status != 403 || r.Code() != "FORBIDDEN" {
			t.Fatalf("%s /api/v1/system/gc by a user with full cr access: %d %s", m, r.Status, r.Body)
		}
	}
	for _, bad := range []map[string]any{{"untagged_grace": "-1h"}, {"blob_grace": "soon"}, {"dry_run": "yes"}, {"grace": "1h"}} {
		if r := in.Admin(t, "POST", "/api/v1/system/gc", bad); r.Status != 400 {
			t.Fatalf("start gc with %v: %d %s", bad, r.Status, r.Body)
		}
	}

	graces := map[string]any{"untagged_grace": "0s", "blob_grace": "0s"}
	dry := waitGC(t, in, startGC(t, in, map[string]any{"dry_run": true, "untagged_grace": "0s", "blob_grace": "0s"}))
	if dry["dry_run"] != true || dry["manifests_deleted"] != float64(wantManifests) || dry["blobs_deleted"] != float64(len(freed)) ||
		dry["bytes_freed"] != float64(wantBytes) || dry["error"] != "" {
		t.Fatalf("dry run: %v, want %d manifests, %d blobs, %d bytes", dry, wantManifests, len(freed), wantBytes)
	}
	if after := blobsStored(t); !maps.Equal(after, before) {
		t.Fatalf("the dry run changed the disk: %d blobs before, %d after", len(before), len(after))
	}
	if st, _, body := registryGet(t, in, "gc/app", "manifests/"+oldDigest); st != 200 {
		t.Fatalf("the dry run deleted a manifest: %d %s", st, body)
	}

	// The real run, while another client pushes images sharing the kept layers.
	var (
		wg      sync.WaitGroup
		pushed  []v1.Image
		pushErr error
		stopped = make(chan struct{})
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stopped:
				return
			default:
			}
			img := imageWith(t, l1, l2)
			ref, err := name.ParseReference(fmt.Sprintf("%s/gc/concurrent:v%d", other.Host, i), name.Insecure)
			if err == nil {
				err = remote.Write(ref, img, adminAuth)
			}
			if err != nil {
				pushErr = fmt.Errorf("concurrent push %d: %w", i, err)
				return
			}
			pushed = append(pushed, img)
		}
	}()
	time.Sleep(100 * time.Millisecond)
	run := waitGC(t, in, startGC(t, in, graces))
	close(stopped)
	wg.Wait()
	if pushErr != nil {
		t.Fatal(pushErr)
	}
	if run["dry_run"] != false || run["manifests_deleted"] != float64(wantManifests) || run["blobs_deleted"] != float64(len(freed)) ||
		run["bytes_freed"] != float64(wantBytes) || run["error"] != "" || run["trigger"] != "api" {
		t.Fatalf("gc run: %v, want %d manifests, %d blobs, %d bytes", run, wantManifests, len(freed), wantBytes)
	}
	objects := stored(t)
	if dangling := danglingLinks(objects); len(dangling) > 0 {
		t.Errorf("links to collected blobs left behind: %v", dangling)
	}
	after := blobsIn(t, objects)
	want := maps.Clone(before)
	for d := range freed {
		delete(want, d)
	}
	added := map[string]int64{} // what the concurrent pushes stored anew
	for _, img := range pushed {
		for _, d := range digestsOf(img) {
			if _, ok := before[d]; !ok {
				added[d] = after[d]
			}
			want[d] = after[d]
			if _, ok := after[d]; !ok {
				t.Errorf("blob %s of a concurrent push is gone", d)
			}
		}
	}
	if got := sumSizes(before) + sumSizes(added) - sumSizes(after); got != wantBytes {
		t.Errorf("the storage holds %d bytes less after the collection, want %d", got, wantBytes)
	}
	if !maps.Equal(after, want) {
		for d := range after {
			if _, ok := want[d]; !ok {
				t.Errorf("unexpected blob on disk: %s", d)
			}
		}
		for d := range want {
			if _, ok := after[d]; !ok {
				t.Errorf("blob deleted that is still referenced: %s", d)
			}
		}
		t.Fatal("the disk is not exactly what the kept images reference")
	}
	if len(pushed) == 0 {
		t.Fatal("no concurrent push completed")
	}
	t.Logf("%d pushes completed around the collection", len(pushed))
	for i, img := range pushed {
		for _, d := range digestsOf(img)[1:] {
			if st, _, body := registryGet(t, other, "gc/concurrent", "blobs/"+d); st != 200 {
				t.Fatalf("blob %s of concurrent push %d: %d %s", d, i, st, body)
			}
		}
		if st, _, body := registryGet(t, other, "gc/concurrent", fmt.Sprintf("manifests/v%d", i)); st != 200 {
			t.Fatalf("concurrent push %d: %d %s", i, st, body)
		}
	}
	for _, c := range []struct{ repo, ref string }{{"keep/app", keptDigest}, {"keep/app", sigDigest.String()}, {"keep/app", "multi"}} {
		if st, _, body := registryGet(t, in, c.repo, "manifests/"+c.ref); st != 200 {
			t.Fatalf("kept %s@%s: %d %s", c.repo, c.ref, st, body)
		}
	}
	for _, child := range []v1.Image{a, b} {
		d, _ := child.Digest()
		if st, _, body := registryGet(t, in, "keep/app", "manifests/"+d.String()); st != 200 {
			t.Fatalf("index child %s: %d %s", d, st, body)
		}
	}
	for _, d := range []string{oldDigest, tdDigest} {
		repo := "gc/app"
		if d == tdDigest {
			repo = "gc/tagdel"
		}
		if st, code, body := registryGet(t, in, repo, "manifests/"+d); st != 404 || code != "MANIFEST_UNKNOWN" {
			t.Fatalf("collected manifest %s: %d %s", d, st, body)
		}
	}

	// The runs are listed newest first, paged.
	r := in.Admin(t, "GET", "/api/v1/system/gc?page=1&page_size=1", nil)
	if r.Status != 200 || r.JSON["total"] != float64(2) || len(r.Items()) != 1 || r.Items()[0]["id"] != run["id"] {
		t.Fatalf("gc runs page 1: %d %s", r.Status, r.Body)
	}

	// One at a time across replicas: while another holds the lease, a start is refused.
	rc := in.Redis.MakeRedisClient().(redis.UniversalClient)
	defer rc.Close()
	if err := rc.Set(context.Background(), pipeline.GCLeaseKey, "another-replica", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	if r := in.Admin(t, "POST", "/api/v1/system/gc", nil); r.Status != 409 || r.Code() != "CONFLICT" {
		t.Fatalf("start gc while another runs: %d %s", r.Status, r.Body)
	}
	rc.Del(context.Background(), pipeline.GCLeaseKey)
	// a run whose replica died mid-way stays unfinished until the next run closes it
	dead := &store.GCRun{ID: store.NewGCRunID(time.Now().Add(-time.Hour)), StartedAt: time.Now().Add(-time.Hour), Trigger: "api"}
	if err := in.Store.CreateGCRun(context.Background(), dead); err != nil {
		t.Fatal(err)
	}
	second := waitGC(t, in, startGC(t, in, nil))
	if d, err := in.Store.GetGCRun(context.Background(), dead.ID); err != nil || d.FinishedAt == nil ||
		d.Error != "interrupted: the process running it stopped before the end" {
		t.Fatalf("the interrupted run after the next one: %+v %v", d, err)
	}
	if second["blobs_deleted"] != float64(0) || second["untagged_grace"] != "24h0m0s" || second["blob_grace"] != "1h0m0s" {
		t.Fatalf("run with the default graces: %v", second)
	}
}

func partialDescriptorOf(img v1.Image) (v1.Descriptor, error) {
	d, err := img.Digest()
	if err != nil {
		return v1.Descriptor{}, err
	}
	sz, err := img.Size()
	if err != nil {
		return v1.Descriptor{}, err
	}
	mt, err := img.MediaType()
	return v1.Descriptor{Digest: d, Size: sz, MediaType: mt}, err
}

// TestAdminGCCommand runs `berth admin gc` on a stopped instance's data, on the filesystem and on S3 (the bucket
// named by --s3-* flags, the keys in the environment): the dry run reports and keeps, the real run deletes the
// image pushed over, and exactly its blobs leave the storage.
func TestAdminGCCommand(t *testing.T) {
	bin := apptest.BuildBerth(t)
	t.Run("filesystem", func(t *testing.T) {
		in := apptest.Start(t, apptest.Options{})
		testAdminGCCommand(t, bin, in, nil, nil, func(t *testing.T) map[string]int64 { return blobsOnDisk(t, in) })
	})
	t.Run("s3", func(t *testing.T) {
		srv := s3test.Start(t)
		bucket := srv.NewBucket(t)
		in := apptest.Start(t, apptest.Options{Configure: func(c *app.Config) {
			c.S3 = app.S3Config{Endpoint: srv.Endpoint, Bucket: bucket, Region: "us-east-1", PathStyle: true,
				AccessKey: s3test.AccessKey, SecretKey: s3test.SecretKey}
		}})
		testAdminGCCommand(t, bin, in,
			[]string{"--s3-endpoint", srv.Endpoint, "--s3-bucket", bucket, "--s3-path-style"},
			[]string{"BERTH_S3_ACCESS_KEY=" + s3test.AccessKey, "BERTH_S3_SECRET_KEY=" + s3test.SecretKey},
			func(t *testing.T) map[string]int64 { return blobsIn(t, objectsInBucket(t, srv, bucket)) })
	})
}

// testAdminGCCommand is TestAdminGCCommand on one instance; flags and env say where its blobs are.
func testAdminGCCommand(t *testing.T, bin string, in *apptest.Instance, flags, env []string, blobsStored func(*testing.T) map[string]int64) {
	if r := in.Admin(t, "POST", "/api/v1/namespaces", map[string]any{"name": "cli"}); r.Status != 201 {
		t.Fatalf("create namespace: %d %s", r.Status, r.Body)
	}
	old := imageWith(t)
	pushImg(t, in, "cli/app:latest", old)
	pushImg(t, in, "cli/app:latest", imageWith(t))
	time.Sleep(1200 * time.Millisecond)
	before := blobsStored(t)
	var size int64
	for _, d := range digestsOf(old) {
		size += before[d]
	}
	cfg := *in.Cfg
	in.Stop()

	gc := func(args ...string) string {
		t.Helper()
		args = append(append([]string{"admin", "gc", "--data-dir", cfg.DataDir, "--gc-untagged-grace", "0s", "--gc-blob-grace", "0s"}, flags...), args...)
		if cfg.MongoURI != "" {
			args = append(args, "--mongo-uri", cfg.MongoURI, "--mongo-database", cfg.MongoDatabase)
		}
		if cfg.RedisAddr != "" {
			args = append(args, "--redis-addr", cfg.RedisAddr)
		}
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), env...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("berth %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	if out := gc("--dry-run"); !strings.Contains(out, fmt.Sprintf("would delete (dry run) 1 manifests and 3 blobs, %d bytes", size)) {
		t.Fatalf("dry run said:\n%s", out)
	}
	if after := blobsStored(t); !maps.Equal(after, before) {
		t.Fatal("the dry run changed the storage")
	}
	if out := gc(); !strings.Contains(out, fmt.Sprintf(": deleted 1 manifests and 3 blobs, %d bytes", size)) {
		t.Fatalf("gc said:\n%s", out)
	}
	after := blobsStored(t)
	for _, d := range digestsOf(old) {
		if _, ok := after[d]; ok {
			t.Errorf("blob %s of the image pushed over is still stored", d)
		}
	}
	if len(after) != len(before)-3 || sumSizes(before)-sumSizes(after) != size {
		t.Fatalf("%d blobs (%d bytes) left of %d (%d bytes), want 3 fewer and %d bytes less", len(after), sumSizes(after), len(before), sumSizes(before), size)
	}
}

// TestGarbageCollectionSchedule: with --gc-interval set, collections run by themselves, about once per interval,
// with the configured graces.
func TestGarbageCollectionSchedule(t *testing.T) {
	in := apptest.Start(t, apptest.Options{Configure: func(c *app.Config) {
		c.GCInterval, c.GCUntaggedGrace, c.GCBlobGrace = 2*time.Second, 0, 0
	}})
	if r := in.Admin(t, "POST", "/api/v1/namespaces", map[string]any{"name": "sched"}); r.Status != 201 {
		t.Fatalf("create namespace: %d %s", r.Status, r.Body)
	}
	old := imageWith(t)
	oldDigest := pushImg(t, in, "sched/app:latest", old)
	pushImg(t, in, "sched/app:latest", imageWith(t))
	deadline := time.Now().Add(20 * time.Second)
	for {
		if st, code, _ := registryGet(t, in, "sched/app", "manifests/"+oldDigest); st == 404 && code == "MANIFEST_UNKNOWN" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no scheduled collection took the image pushed over within 20s")
		}
		time.Sleep(200 * time.Millisecond)
	}
	r := in.Admin(t, "GET", "/api/v1/system/gc", nil)
	if r.Status != 200 || len(r.Items()) == 0 {
		t.Fatalf("runs: %d %s", r.Status, r.Body)
	}
	run := r.Items()[len(r.Items())-1] // the first
	if run["trigger"] != "schedule" || run["untagged_grace"] != "0s" || run["dry_run"] != false {
		t.Fatalf("scheduled run: %v", run)
	}
	// about once per interval: not on every check
	time.Sleep(3 * time.Second)
	r = in.Admin(t, "GET", "/api/v1/system/gc", nil)
	if n := r.JSON["total"].(float64); n > 4 {
		t.Fatalf("%v scheduled runs within ~8s at a 2s interval", n)
	}
}
