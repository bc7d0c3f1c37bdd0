package server_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/berth-dev/berth/registry/storage/driver/s3/s3test"
	"github.com/berth-dev/berth/server/app/apptest"
	"github.com/berth-dev/berth/store"
	"github.com/berth-dev/berth/store/storetest"
)

// balancer is the replicas' one public address (--public-url), as a load balancer gives it: each request goes
// to the next replica in turn over a connection of its own, and past a replica that refuses connections.
// Builds push through it, and the registry's token realm points at it.
type balancer struct {
	*httptest.Server
	Host     string
	mu       sync.Mutex
	backends []string
	next     int
}

func newBalancer(t *testing.T) *balancer {
	b := &balancer{}
	tr := &http.Transport{DisableKeepAlives: true, DialContext: b.dial}
	proxy := &httputil.ReverseProxy{Transport: tr, FlushInterval: -1,
		Rewrite: func(r *httputil.ProxyRequest) {
			r.Out.URL.Scheme, r.Out.URL.Host = "http", "replica"
			r.Out.Host = r.In.Host
		}}
	b.Server = httptest.NewServer(proxy)
	b.Host = strings.TrimPrefix(b.URL, "http://")
	t.Cleanup(b.Close)
	return b
}

func (b *balancer) set(hosts ...string) {
	b.mu.Lock()
	b.backends = hosts
	b.mu.Unlock()
}

func (b *balancer) dial(ctx context.Context, network, _ string) (net.Conn, error) {
	b.mu.Lock()
	start := b.next
	b.next++
	hosts := b.backends
	b.mu.Unlock()
	var err error
	for i := range hosts {
		var c net.Conn
		if c, err = (&net.Dialer{}).DialContext(ctx, network, hosts[(start+i)%len(hosts)]); err == nil {
			return c, nil
		}
	}
	return nil, fmt.Errorf("no replica answers: %w", err)
}

// scaleOut is Berth in its scaled shape: two serve replicas and two workers (default, overseas), each a
// process with its own data dir, on FerretDB over PostgreSQL, one redis-server, one S3 server, one buildkitd.
type scaleOut struct {
	a, b          *apptest.Process
	def, overseas *apptest.Process
	lb            *balancer
	db            store.Store // the shared store, read directly for what the API does not show
	replicas      []*apptest.Instance
	auth          remote.Option
	// What starting a process again takes.
	bin         string
	env, common []string
}

func startScaleOut(t *testing.T) *scaleOut {
	bk := buildkitAddr(t)
	bin := apptest.BuildBerth(t)
	mongo := storetest.FerretOnPostgres(t)
	redis := apptest.StartRedisServer(t)
	s3 := s3test.Start(t)
	bucket := s3.NewBucket(t)
	lb := newBalancer(t)
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	keyFile := filepath.Join(t.TempDir(), "master.key")
	if err := os.WriteFile(keyFile, []byte(hex.EncodeToString(key)), 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{"BERTH_ADMIN_PASSWORD=" + apptest.AdminPassword, "BERTH_S3_ACCESS_KEY=" + s3test.AccessKey,
		"BERTH_S3_SECRET_KEY=" + s3test.SecretKey}
	common := []string{"--mongo-uri", mongo, "--redis-addr", redis, "--s3-endpoint", s3.Endpoint, "--s3-bucket", bucket,
		"--s3-path-style", "--public-url", lb.URL, "--master-key-file", keyFile, "--buildkit-addr", bk,
		"--trigger-allow-cidr", "127.0.0.0/8", "--trigger-retry-base", "200ms", "--scan-db-repository", "",
		"--namespace-limit", "3", "--log-level", "info"}
	allowBuilds(t, strings.TrimPrefix(lb.URL, "http://"))
	s := &scaleOut{lb: lb, auth: remote.WithAuth(&authn.Basic{Username: "admin", Password: apptest.AdminPassword}),
		bin: bin, env: env, common: common}
	start := time.Now()
	s.a = s.start(t, "serve") // makes the account and the administrator
	lb.set(s.a.Host)
	s.b = s.start(t, "serve")
	lb.set(s.a.Host, s.b.Host)
	s.def = s.start(t, "worker", "--queues", "default")
	s.overseas = s.start(t, "worker", "--queues", "overseas")
	s.replicas = []*apptest.Instance{s.a.Instance, s.b.Instance}
	// Both replicas work on the default queue too; the workers register once they run.
	waitFor(t, time.Minute, "four build workers registered", func() (bool, string) {
		r := s.a.Admin(t, "GET", "/api/v1/system/workers", nil)
		return r.JSON["total"] == float64(4), string(r.Body)
	})
	t.Logf("2 replicas and 2 workers ready in %s", time.Since(start).Round(time.Millisecond))
	// The test only reads the store; its leases are its own.
	db, err := store.Open(context.Background(), mongo, store.Options{Database: "berth", Locker: storetest.OwnLocker(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close(context.Background()) })
	s.db = db
	return s
}

// start runs `berth serve` or `berth worker` with the flags every process of the instance shares.
func (s *scaleOut) start(t *testing.T, cmd string, args ...string) *apptest.Process {
	return apptest.StartProcess(t, s.bin, s.env, append(append([]string{cmd}, args...), s.common...)...)
}

// replica returns the replica the i-th request goes to: the client alternates.
func (s *scaleOut) replica(i int) *apptest.Instance { return s.replicas[i%len(s.replicas)] }

// hookOn is hookURL (under --public-url) on replica in.
func (s *scaleOut) hookOn(in *apptest.Instance, hookURL string) string {
	return in.URL + strings.TrimPrefix(hookURL, s.lb.URL)
}

// waitFor polls cond until it holds, failing the test with its last word after timeout.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, last := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s; last: %s", what, timeout, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// allItems reads every page of a list.
func allItems(t testing.TB, in *apptest.Instance, path string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for page := 1; ; page++ {
		sep := "?"
		if strings.Contains(path, "?") {
			sep = "&"
		}
		r := in.Admin(t, "GET", fmt.Sprintf("%s%spage=%d&page_size=100", path, sep, page), nil)
		if r.Status != 200 {
			t.Fatalf("GET %s: %d %s", path, r.Status, r.Body)
		}
		items := r.Items()
		out = append(out, items...)
		if len(items) < 100 {
			return out
		}
	}
}

// connect gives repo a code source at g with one build rule per tag (BRANCH main), and returns its webhook URL
// and secret.
func connect(t *testing.T, in *apptest.Instance, repo string, g *gitRepo, overseas bool, tags ...string) (string, string) {
	t.Helper()
	api := "/api/v1/repositories/" + repo
	r := in.Admin(t, "PUT", api+"/source", map[string]any{"provider": "github", "url": g.URL, "overseas_build": overseas})
	if r.Status != 201 {
		t.Fatalf("source: %d %s", r.Status, r.Body)
	}
	for _, tag := range tags {
		if r := in.Admin(t, "POST", api+"/build-rules", map[string]any{"source_type": "BRANCH", "source_ref": "main", "image_tag": tag}); r.Status != 201 {
			t.Fatalf("rule: %d %s", r.Status, r.Body)
		}
	}
	return r.JSON["webhook_url"].(string), r.JSON["webhook_secret"].(string)
}

// waitBuilds waits until every build of ids is final, and returns them by id.
func waitBuilds(t *testing.T, in *apptest.Instance, repo string, ids []string, timeout time.Duration) map[string]map[string]any {
	t.Helper()
	out := map[string]map[string]any{}
	waitFor(t, timeout, "builds of "+repo+" final", func() (bool, string) {
		for _, b := range allItems(t, in, "/api/v1/repositories/"+repo+"/builds") {
			out[b["id"].(string)] = b
		}
		for _, id := range ids {
			if st, _ := out[id]["status"].(string); !finalStatus[st] {
				return false, fmt.Sprintf("build %s is %q", id, st)
			}
		}
		return true, ""
	})
	return out
}

// TestScaleOut runs Berth in its scaled shape (scaleOut) with a client that alternates replicas, and checks
// what must hold across processes: the namespace limit under 50 parallel creations, a chunked push whose
// PATCHes alternate replicas, 200 webhook deliveries with redeliveries making each build once, an overseas
// build on the overseas worker, one trigger record per tag when twenty tags of one digest are pushed or built
// at once (many rounds), and, after a SIGKILL of a replica and a worker in the middle of pushes, builds and
// trigger deliveries: every acknowledged push pullable, every build SUCCESS or FAILED with a reason, one
// record per trigger delivery.
func TestScaleOut(t *testing.T) {
	if testing.Short() {
		t.Skip("runs Berth as six processes")
	}
	began := time.Now()
	s := startScaleOut(t)
	for _, ns := range []map[string]any{{"name": "library", "default_visibility": "PUBLIC"}, {"name": "team"}} {
		if r := s.a.Admin(t, "POST", "/api/v1/namespaces", ns); r.Status != 201 {
			t.Fatalf("namespace: %d %s", r.Status, r.Body)
		}
	}
	base := pushBusybox(t, &apptest.Instance{Host: s.lb.Host})
	rcv := newReceiver(t)

	t.Run("namespace limit", func(t *testing.T) { scaleNamespaces(t, s) })
	t.Run("chunked push", func(t *testing.T) { scaleChunkedPush(t, s) })
	// The processes killed are started again at once, as an operator's supervisor would, and the other checks
	// run while the queue gives the dead processes' tasks back (Asynq: a minute or two).
	var killed *afterKill
	slow := newGitRepo(t) // serves clones until the builds it started are over, after the subtest
	t.Run("SIGKILL", func(t *testing.T) { killed = scaleKill(t, s, rcv, slow, base) })
	if killed != nil {
		s.b = s.start(t, "serve")
		s.def = s.start(t, "worker", "--queues", "default")
		s.replicas = []*apptest.Instance{s.a.Instance, s.b.Instance}
		s.lb.set(s.a.Host, s.b.Host)
		t.Logf("replica b and the default worker started again %s after the kill", time.Since(killed.at).Round(time.Millisecond))
	}
	t.Run("webhook deliveries", func(t *testing.T) { scaleWebhooks(t, s) })
	t.Run("overseas build", func(t *testing.T) { scaleOverseas(t, s) })
	t.Run("twenty tags of one digest", func(t *testing.T) { scaleTwentyTags(t, s, rcv) })
	t.Run("twenty builds of one commit", func(t *testing.T) {
		twentyBuilds(t, rcv, 2, s.replica, func(i int, url string) string { return s.hookOn(s.replica(i), url) })
	})
	if killed != nil {
		t.Run("after the SIGKILL", func(t *testing.T) { killed.check(t, s, rcv) })
	}
	t.Logf("scale-out test: %s", time.Since(began).Round(time.Millisecond))
}

// scaleNamespaces: the account has two namespaces and a limit of 3; 50 creations at once, alternating replicas,
// leave exactly 3.
func scaleNamespaces(t *testing.T, s *scaleOut) {
	const n = 50
	answers := make([]*apptest.Response, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			answers[i] = s.replica(i).Admin(t, "POST", "/api/v1/namespaces", map[string]any{"name": fmt.Sprintf("race-%02d", i)})
		})
	}
	wg.Wait()
	created, limited := 0, 0
	for _, r := range answers {
		switch {
		case r.Status == 201:
			created++
		case r.Status == 409 && r.Code() == "NAMESPACE_LIMIT_EXCEEDED":
			limited++
		default:
			t.Errorf("unexpected answer %d %s", r.Status, r.Body)
		}
	}
	list := s.b.Admin(t, "GET", "/api/v1/namespaces?page_size=100", nil)
	t.Logf("%d parallel creations over two replicas: %d created, %d refused; the account has %v namespaces", n, created, limited, list.JSON["total"])
	if created != 1 || limited != n-1 || list.JSON["total"] != float64(3) {
		t.Errorf("created %d, limited %d, namespaces %v: want exactly 3 namespaces (1 created, %d refused)", created, limited,
			list.JSON["total"], n-1)
	}
}

// scaleChunkedPush pushes a blob in chunks whose PATCHes alternate replicas (and the S3 multipart path, with
// chunks of 5 MiB and more), commits it on a third request, and pulls it from both.
func scaleChunkedPush(t *testing.T, s *scaleOut) {
	chunks := [][]byte{make([]byte, 1<<20), make([]byte, 6<<20), make([]byte, 100<<10), make([]byte, 5<<20), make([]byte, 7)}
	h := sha256.New()
	for _, c := range chunks {
		_, _ = rand.Read(c)
		h.Write(c)
	}
	digest := "sha256:" + hex.EncodeToString(h.Sum(nil))
	raw := func(in *apptest.Instance, method, path string, body []byte, hdr map[string]string) (*http.Response, []byte) {
		req, err := http.NewRequest(method, in.URL+path, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.SetBasicAuth("admin", apptest.AdminPassword)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		return resp, data
	}
	location := func(resp *http.Response) string {
		u, err := url.Parse(resp.Header.Get("Location"))
		if err != nil || u.Path == "" {
			t.Fatalf("Location %q", resp.Header.Get("Location"))
		}
		return u.RequestURI()
	}
	resp, body := raw(s.b.Instance, "POST", "/v2/team/chunked/blobs/uploads/", nil, nil)
	if resp.StatusCode != 202 {
		t.Fatalf("start upload: %d %s", resp.StatusCode, body)
	}
	loc, off := location(resp), 0
	for i, c := range chunks {
		resp, body := raw(s.replica(i), "PATCH", loc, c, map[string]string{"Content-Type": "application/octet-stream",
			"Content-Range": fmt.Sprintf("%d-%d", off, off+len(c)-1), "Content-Length": strconv.Itoa(len(c))})
		if resp.StatusCode != 202 || resp.Header.Get("Range") != fmt.Sprintf("0-%d", off+len(c)-1) {
			t.Fatalf("PATCH %d on replica %d: %d Range %q %s", i, i%2, resp.StatusCode, resp.Header.Get("Range"), body)
		}
		off += len(c)
		loc = location(resp)
	}
	sep := "?"
	if strings.Contains(loc, "?") {
		sep = "&"
	}
	resp, body = raw(s.a.Instance, "PUT", loc+sep+"digest="+digest, nil, nil)
	if resp.StatusCode != 201 || resp.Header.Get("Docker-Content-Digest") != digest {
		t.Fatalf("commit: %d %q %s", resp.StatusCode, resp.Header.Get("Docker-Content-Digest"), body)
	}
	for i, in := range s.replicas {
		resp, body := raw(in, "GET", "/v2/team/chunked/blobs/"+digest, nil, nil)
		sum := sha256.Sum256(body)
		if resp.StatusCode != 200 || len(body) != off || "sha256:"+hex.EncodeToString(sum[:]) != digest {
			t.Fatalf("GET on replica %d: %d, %d bytes", i, resp.StatusCode, len(body))
		}
	}
	t.Logf("%d chunks (%d bytes) alternating replicas, committed as %s", len(chunks), off, digest)
}

// scaleWebhooks sends 10 pushes (commits) as 200 deliveries, each delivered twenty times (redeliveries keep the
// delivery id), in a shuffled order over both replicas at once: each push builds exactly once.
func scaleWebhooks(t *testing.T, s *scaleOut) {
	const pushes, copies = 10, 20
	createRepo(t, s.a.Instance, "team", "hooked", "PRIVATE")
	g := newGitRepo(t)
	commits := make([]string, pushes)
	for i := range commits {
		commits[i] = g.commit(t, map[string]string{"Dockerfile": "FROM scratch\nCOPY n.txt /n.txt\n", "n.txt": strconv.Itoa(i)}, "push "+strconv.Itoa(i))
	}
	hookURL, secret := connect(t, s.b.Instance, "team/hooked", g, false, "latest")
	order := make([]int, 0, pushes*copies)
	for i := range pushes * copies {
		order = append(order, i%pushes)
	}
	shuffle(order)
	type answer struct {
		push   int
		status int
		builds []string
		err    error
	}
	answers := make([]answer, len(order))
	start := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for {
				k := int(next.Add(1)) - 1
				if k >= len(order) {
					return
				}
				p := order[k]
				before := strings.Repeat("0", 40)
				if p > 0 {
					before = commits[p-1]
				}
				st, ans, err := deliverHook(s.hookOn(s.replica(k), hookURL), secret, "push", fmt.Sprintf("delivery-%02d", p),
					githubPush("refs/heads/main", before, commits[p]))
				a := answer{push: p, status: st, err: err}
				if raw, ok := ans["builds"].([]any); ok {
					for _, id := range raw {
						a.builds = append(a.builds, id.(string))
					}
				}
				answers[k] = a
			}
		})
	}
	wg.Wait()
	t.Logf("%d deliveries answered in %s", len(order), time.Since(start).Round(time.Millisecond))
	perPush := make([][]string, pushes)
	var ids []string
	for _, a := range answers {
		if a.err != nil || a.status != 202 {
			t.Fatalf("delivery of push %d: %d %v", a.push, a.status, a.err)
		}
		perPush[a.push] = append(perPush[a.push], a.builds...)
		ids = append(ids, a.builds...)
	}
	for p, b := range perPush {
		if len(b) != 1 {
			t.Errorf("push %d (%d deliveries) started %d builds: %v", p, copies, len(b), b)
		}
	}
	builds := waitBuilds(t, s.a.Instance, "team/hooked", ids, 3*time.Minute)
	if len(builds) != pushes {
		t.Errorf("the repository has %d builds, want %d", len(builds), pushes)
	}
	byCommit := map[string]int{}
	for _, b := range builds {
		byCommit[b["commit"].(string)]++
		if b["status"] != "SUCCESS" {
			t.Errorf("build %v of %v: %v %v", b["id"], b["commit"], b["status"], b["error"])
		}
	}
	for i, c := range commits {
		if byCommit[c] != 1 {
			t.Errorf("commit %d has %d builds", i, byCommit[c])
		}
	}
	t.Logf("%d deliveries of %d pushes: %d builds, all final in %s", len(order), pushes, len(builds), time.Since(start).Round(time.Millisecond))
}

func shuffle(xs []int) {
	for i := len(xs) - 1; i > 0; i-- {
		j, _ := rand.Int(rand.Reader, big.NewInt(int64(i+1)))
		xs[i], xs[j.Int64()] = xs[j.Int64()], xs[i]
	}
}

// scaleOverseas: a repository with overseas_build builds on the overseas worker, the one process on that queue.
func scaleOverseas(t *testing.T, s *scaleOut) {
	createRepo(t, s.a.Instance, "team", "far", "PRIVATE")
	g := newGitRepo(t)
	head := g.commit(t, map[string]string{"Dockerfile": "FROM scratch\nCOPY far.txt /far.txt\n", "far.txt": "far away\n"}, "far")
	hookURL, secret := connect(t, s.a.Instance, "team/far", g, true, "latest")
	st, ans := sendHook(t, s.hookOn(s.b.Instance, hookURL), secret, "push", "far-1", githubPush("refs/heads/main", strings.Repeat("0", 40), head))
	ids := hookBuilds(t, ans)
	if st != 202 || len(ids) != 1 {
		t.Fatalf("hook: %d %v", st, ans)
	}
	b := waitBuild(t, s.a.Instance, "team/far", ids[0], 2*time.Minute)
	requireSuccess(t, s.a.Instance, "team/far", b)
	rec, err := s.db.GetBuild(context.Background(), "team/far", ids[0])
	if err != nil {
		t.Fatal(err)
	}
	if b["region"] != "overseas" || !strings.HasSuffix(rec.Worker, "/"+strconv.Itoa(s.overseas.Pid())) {
		t.Fatalf("build in region %v ran on %q; the overseas worker is pid %d", b["region"], rec.Worker, s.overseas.Pid())
	}
}

// recordsSettled waits until trigger's records of repo hold one settled record for each of tags, and returns
// them by tag, failing on a tag with two records.
func recordsSettled(t *testing.T, in *apptest.Instance, repo, trigger string, tags []string, timeout time.Duration) map[string]map[string]any {
	t.Helper()
	var recs []map[string]any
	waitFor(t, timeout, "trigger records of "+repo, func() (bool, string) {
		recs = allItems(t, in, "/api/v1/repositories/"+repo+"/triggers/"+trigger+"/records")
		got := map[string]bool{}
		for _, r := range recs {
			if reason, _ := r["reason"].(string); strings.Contains(reason, "will retry") {
				return false, fmt.Sprintf("%v", r)
			}
			got[r["tag"].(string)] = true
		}
		for _, tag := range tags {
			if !got[tag] {
				return false, fmt.Sprintf("no record for %s among %d", tag, len(recs))
			}
		}
		return true, ""
	})
	return byTag(t, recs)
}

// scaleTwentyTags pushes one image to twenty tags at once, the manifest PUTs alternating replicas (registry
// clients go through the balancer, the token realm's host, which alternates them), round after round: each tag gets exactly one trigger record, and the receiver one delivery, every time.
func scaleTwentyTags(t *testing.T, s *scaleOut, rcv *receiver) {
	const rounds, tags = 8, 20
	start := time.Now()
	for round := range rounds {
		roundStart := time.Now()
		repo := fmt.Sprintf("team/tags%02d", round)
		createRepo(t, s.replica(round), "team", fmt.Sprintf("tags%02d", round), "PRIVATE")
		path := fmt.Sprintf("/tags%02d", round)
		trigger, _ := createTrigger(t, s.replica(round+1), repo, map[string]any{"name": "all", "url": rcv.URL + path})
		img, err := random.Image(64, 1)
		if err != nil {
			t.Fatal(err)
		}
		writeBlobs(t, s.lb.Host+"/"+repo, img, s.auth)
		digest, _ := img.Digest()
		names := make([]string, tags)
		errs := make(chan error, tags)
		var wg sync.WaitGroup
		for i := range tags {
			names[i] = fmt.Sprintf("t%02d", i)
			wg.Go(func() {
				ref, err := name.NewTag(s.lb.Host+"/"+repo+":"+names[i], name.Insecure)
				if err == nil {
					err = remote.Put(ref, img, s.auth)
				}
				if err != nil {
					errs <- err
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatalf("round %d: push: %v", round, err)
		}
		recs := recordsSettled(t, s.replica(round), repo, trigger, names, 30*time.Second)
		if len(recs) != tags {
			t.Fatalf("round %d: %d records, want %d", round, len(recs), tags)
		}
		for _, tag := range names {
			if r := recs[tag]; r["status"] != "TRIGGERED" || r["digest"] != digest.String() {
				t.Fatalf("round %d: record of %s: %v", round, tag, r)
			}
		}
		if n := len(rcv.hitsOn(path)); n != tags {
			t.Fatalf("round %d: the receiver got %d deliveries, want %d", round, n, tags)
		}
		t.Logf("round %d: %d tags over two replicas, one record each, in %s", round, tags, time.Since(roundStart).Round(time.Millisecond))
	}
	t.Logf("%d rounds of %d concurrent pushes of one digest over two replicas: %s", rounds, tags, time.Since(start).Round(time.Millisecond))
}

// writeBlobs uploads img's layers and config to repo, so that pushes of its manifest meet at the manifest PUT.
func writeBlobs(t *testing.T, repo string, img v1.Image, auth remote.Option) {
	t.Helper()
	r, err := name.NewRepository(repo, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	layers, _ := img.Layers()
	cfg, _ := img.RawConfigFile()
	for _, l := range append(layers, static.NewLayer(cfg, types.DockerConfigJSON)) {
		if err := remote.WriteLayer(r, l, auth); err != nil {
			t.Fatal(err)
		}
	}
}

// twentyBuilds: one push builds one commit by twenty rules into twenty tags at once (team/many), on whichever
// processes take the builds: each tag gets exactly one trigger record, round after round. Request i goes to
// api(i); hook(i, url) is where it sends a delivery for the webhook url.
func twentyBuilds(t *testing.T, rcv *receiver, rounds int, api func(i int) *apptest.Instance, hook func(i int, url string) string) {
	const tags = 20
	createRepo(t, api(0), "team", "many", "PRIVATE")
	g := newGitRepo(t)
	names := make([]string, tags)
	for i := range names {
		names[i] = fmt.Sprintf("b%02d", i)
	}
	hookURL, secret := connect(t, api(1), "team/many", g, false, names...)
	start := time.Now()
	for round := range rounds {
		roundStart := time.Now()
		trigger, _ := createTrigger(t, api(round), "team/many", map[string]any{"name": fmt.Sprintf("round%d", round),
			"url": fmt.Sprintf("%s/many%d", rcv.URL, round)})
		head := g.commit(t, map[string]string{"Dockerfile": "FROM scratch\nCOPY n.txt /n.txt\n", "n.txt": fmt.Sprint("round ", round)}, "round")
		st, ans := sendHook(t, hook(round, hookURL), secret, "push", fmt.Sprintf("many-%d", round),
			githubPush("refs/heads/main", strings.Repeat("0", 40), head))
		ids := hookBuilds(t, ans)
		if st != 202 || len(ids) != tags {
			t.Fatalf("round %d: hook: %d %v", round, st, ans)
		}
		builds := waitBuilds(t, api(round+1), "team/many", ids, 2*time.Minute)
		for _, id := range ids {
			requireSuccess(t, api(0), "team/many", builds[id])
		}
		recs := recordsSettled(t, api(round), "team/many", trigger, names, 30*time.Second)
		for _, id := range ids {
			b := builds[id]
			if r := recs[b["image_tag"].(string)]; r["status"] != "TRIGGERED" || r["digest"] != b["digest"] {
				t.Fatalf("round %d: record of %v: %v (build %v)", round, b["image_tag"], r, b)
			}
		}
		if len(recs) != tags {
			t.Fatalf("round %d: %d records, want %d", round, len(recs), tags)
		}
		t.Logf("round %d: %d builds of one commit, one record per tag, in %s", round, tags, time.Since(roundStart).Round(time.Millisecond))
	}
	t.Logf("%d rounds of %d builds of one commit: %s", rounds, tags, time.Since(start).Round(time.Millisecond))
}

// takeover bounds the wait, after the SIGKILL, for every build and trigger delivery to be final.
const takeover = 3*time.Minute + 30*time.Second

// afterKill is what scaleKill left to check once the dust settles.
type afterKill struct {
	at      time.Time
	trigger string
	pushed  map[string]string // acknowledged pushes: tag → digest
	started []string          // acknowledged builds
}

// scaleKill pushes images (alternating replicas), sends webhooks for slow builds and lets every push fire a
// trigger; when replica b or the default worker runs a build, both are killed with SIGKILL, and the load goes
// on against what is left for a few seconds. Then both are started again (new data dirs). afterKill.check
// checks the outcome.
func scaleKill(t *testing.T, s *scaleOut, rcv *receiver, g *gitRepo, base string) *afterKill {
	createRepo(t, s.a.Instance, "team", "chaos", "PRIVATE")
	trigger, _ := createTrigger(t, s.b.Instance, "team/chaos", map[string]any{"name": "all", "url": rcv.URL + "/chaos"})
	// A slow receiver keeps deliveries in flight, on both replicas, when the processes die.
	var inFlight atomic.Int64
	rcv.mu.Lock()
	rcv.onHit = func(h hit) {
		if h.Path == "/chaos" {
			inFlight.Add(1)
			time.Sleep(1500 * time.Millisecond)
			inFlight.Add(-1)
		}
	}
	rcv.mu.Unlock()
	createRepo(t, s.a.Instance, "team", "slow", "PRIVATE")
	hookURL, secret := connect(t, s.a.Instance, "team/slow", g, false, "latest")
	const builds = 10 // at most: deliveries stop once the kill is over
	commits := make([]string, builds)
	for i := range commits {
		commits[i] = g.commit(t, map[string]string{"n.txt": strconv.Itoa(i),
			"Dockerfile": "FROM " + base + "\nCOPY n.txt /n.txt\nRUN sleep 3 && cp /n.txt /built.txt\n"}, "slow "+strconv.Itoa(i))
	}

	var (
		mu      sync.Mutex
		pushed  = map[string]string{} // acknowledged pushes: tag → digest
		started []string              // acknowledged builds
		refused int                   // pushes and deliveries that failed (not acknowledged)
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				tag := fmt.Sprintf("w%d-%03d", w, n)
				img, err := random.Image(32<<10, 2)
				if err != nil {
					panic(err)
				}
				ref, _ := name.NewTag(s.lb.Host+"/team/chaos:"+tag, name.Insecure)
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				err = remote.Write(ref, img, s.auth, remote.WithContext(ctx))
				cancel()
				d, _ := img.Digest()
				mu.Lock()
				if err == nil {
					pushed[tag] = d.String()
				} else {
					refused++
				}
				mu.Unlock()
			}
		})
	}
	wg.Go(func() {
		for i, c := range commits {
			st, ans, err := deliverHook(s.hookOn(s.replica(i), hookURL), secret, "push", fmt.Sprintf("slow-%d", i),
				githubPush("refs/heads/main", strings.Repeat("0", 40), c))
			mu.Lock()
			if err == nil && st == 202 {
				for _, id := range ans["builds"].([]any) {
					started = append(started, id.(string))
				}
			} else {
				refused++
			}
			mu.Unlock()
			select {
			case <-stop:
				return
			case <-time.After(time.Second):
			}
		}
	})
	// Kill when a process about to die runs a build, and pushes are under way.
	doomed := []string{"/" + strconv.Itoa(s.b.Pid()), "/" + strconv.Itoa(s.def.Pid())}
	waitFor(t, 2*time.Minute, "a slow build running on replica b or the default worker, trigger deliveries in flight", func() (bool, string) {
		if n := inFlight.Load(); n < 2 {
			return false, fmt.Sprintf("%d trigger deliveries in flight", n)
		}
		bs, _, err := s.db.ListBuilds(context.Background(), "team/slow", store.Page{Page: 1, PageSize: 100})
		if err != nil {
			return false, err.Error()
		}
		for _, b := range bs {
			if b.Status == store.BuildBuilding && (strings.HasSuffix(b.Worker, doomed[0]) || strings.HasSuffix(b.Worker, doomed[1])) {
				return true, ""
			}
		}
		return false, fmt.Sprintf("%d builds, none BUILDING there", len(bs))
	})
	s.b.Kill()
	s.def.Kill()
	killed := time.Now()
	s.lb.set(s.a.Host)
	mu.Lock()
	t.Logf("SIGKILL of replica b (pid %d) and the default worker (pid %d) with %d pushes and %d builds acknowledged, "+
		"%d trigger deliveries in flight", s.b.Pid(), s.def.Pid(), len(pushed), len(started), inFlight.Load())
	mu.Unlock()
	time.Sleep(3 * time.Second)
	close(stop)
	wg.Wait()
	t.Logf("%d pushes and %d builds acknowledged, %d requests not (to the killed replica, or in flight)", len(pushed), len(started), refused)
	if len(started) == 0 || len(pushed) == 0 {
		t.Fatal("nothing was acknowledged")
	}
	return &afterKill{at: killed, trigger: trigger, pushed: pushed, started: started}
}

// check: every acknowledged push is pullable, every acknowledged build ends SUCCESS or FAILED with a reason,
// and every trigger delivery has exactly one record.
func (k *afterKill) check(t *testing.T, s *scaleOut, rcv *receiver) {
	killed, trigger, pushed, started := k.at, k.trigger, k.pushed, k.started

	// Every acknowledged build ends SUCCESS, or FAILED with a reason.
	// The queue gives a dead process's task to another once its lease has run out and a recoverer looks:
	// Asynq takes up to two minutes.
	final := waitBuilds(t, s.a.Instance, "team/slow", started, max(time.Until(killed.Add(takeover)), 30*time.Second))
	statuses := map[string]int{}
	for _, id := range started {
		b := final[id]
		statuses[b["status"].(string)]++
		switch b["status"] {
		case "SUCCESS":
		case "FAILED":
			t.Logf("build %s FAILED: %v", id, b["error"])
			if b["error"] == "" {
				t.Errorf("build %s FAILED without a reason", id)
			}
		default:
			t.Errorf("build %s ended %v (%v)", id, b["status"], b["error"])
		}
	}
	t.Logf("builds %v, all final %s after the kill", statuses, time.Since(killed).Round(time.Millisecond))

	// Every acknowledged push is pullable (through the replica left), with its digest.
	tags := make([]string, 0, len(pushed))
	for tag, want := range pushed {
		tags = append(tags, tag)
		ref, _ := name.NewTag(s.lb.Host+"/team/chaos:"+tag, name.Insecure)
		img, err := remote.Image(ref, s.auth)
		if err != nil {
			t.Errorf("pull %s: %v", tag, err)
			continue
		}
		if d, _ := img.Digest(); d.String() != want {
			t.Errorf("pull %s: digest %s, pushed %s", tag, d, want)
		}
		if _, err := img.RawConfigFile(); err != nil {
			t.Errorf("pull %s: config: %v", tag, err)
		}
		if layers, _ := img.Layers(); len(layers) > 0 {
			rc, err := layers[0].Compressed()
			if err == nil {
				_, err = io.Copy(io.Discard, rc)
				rc.Close()
			}
			if err != nil {
				t.Errorf("pull %s: layer: %v", tag, err)
			}
		}
	}
	sort.Strings(tags)

	// Every delivery has exactly one record (recordsSettled fails on two), TRIGGERED, and reached the receiver.
	recs := recordsSettled(t, s.a.Instance, "team/chaos", trigger, tags, max(time.Until(killed.Add(takeover)), 30*time.Second))
	hits := map[string]int{}
	for _, h := range rcv.hitsOn("/chaos") {
		var p struct {
			PushData struct{ Tag string } `json:"push_data"`
		}
		if err := json.Unmarshal(h.Body, &p); err == nil {
			hits[p.PushData.Tag]++
		}
	}
	twice := 0
	for _, tag := range tags {
		r := recs[tag]
		if r["status"] != "TRIGGERED" || r["digest"] != pushed[tag] {
			t.Errorf("record of %s: %v", tag, r)
		}
		if hits[tag] == 0 {
			t.Errorf("the receiver never got %s", tag)
		}
		if hits[tag] > 1 {
			twice++
		}
	}
	extra := slices.DeleteFunc(slices.Collect(maps.Keys(recs)), func(tag string) bool { _, ok := pushed[tag]; return ok })
	t.Logf("%d acknowledged pushes pullable, one record each (%d more records of pushes whose answer was lost); "+
		"%d delivered twice (a delivery in flight when its process died); all settled %s after the kill",
		len(tags), len(extra), twice, time.Since(killed).Round(time.Millisecond))
}
