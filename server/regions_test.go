package server_test

import (
	"context"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/berth-dev/berth/pipeline"
	"github.com/berth-dev/berth/policies"
	"github.com/berth-dev/berth/server/app"
	"github.com/berth-dev/berth/server/app/apptest"
)

// TestRegionWithoutWorker: serve registers itself as the worker of its home queue (GET
// /api/v1/system/workers, administrator only); a build of an overseas_build source says on the build that no
// overseas worker is live while it is QUEUED, and ends FAILED "no worker for region overseas" after
// --build-queue-timeout.
func TestRegionWithoutWorker(t *testing.T) {
	const timeout = 3 * time.Second
	in := apptest.Start(t, apptest.Options{NamespaceLimit: 10, Configure: func(c *app.Config) { c.BuildQueueTimeout = timeout }})
	expect(t, "namespace", in.Admin(t, "POST", "/api/v1/namespaces", map[string]any{"name": "team"}), 201)

	r := in.Admin(t, "GET", "/api/v1/system/workers", nil)
	expect(t, "workers", r, 200)
	host, _ := os.Hostname()
	items := r.Items()
	if len(items) != 1 || r.JSON["total"] != float64(1) {
		t.Fatalf("workers: %s", r.Body)
	}
	w := items[0]
	seen, err := time.Parse(time.RFC3339Nano, w["last_seen"].(string))
	if w["region"] != "local" || w["host"] != host || w["version"] != app.Version || err != nil ||
		time.Since(seen) > pipeline.WorkerTTL || !slices.Equal(w["queues"].([]any), []any{"default"}) || len(w) != 5 {
		t.Fatalf("worker: %v", w)
	}
	expect(t, "workers, anonymous", in.Call(t, "", "", "GET", "/api/v1/system/workers", nil), 401)
	pass := newUser(t, in, "ops", nil, policies.FullAccessPolicy)
	expect(t, "workers, full cr: access", in.Call(t, "ops", pass, "GET", "/api/v1/system/workers", nil), 403, "FORBIDDEN")

	g := newGitRepo(t)
	head := g.commit(t, map[string]string{"Dockerfile": "FROM scratch\n"}, "first")
	far := "/api/v1/repositories/team/far"
	hook, secret := mainBranchRepo(t, in, "far", g, true)
	_, ans := sendHook(t, hook, secret, "push", "far-1", githubPush("refs/heads/main", strings.Repeat("0", 40), head))
	ids := hookBuilds(t, ans)
	if len(ids) != 1 {
		t.Fatalf("hook: %v", ans)
	}
	start := time.Now()
	want := "no live worker for region overseas; start `berth worker --queues overseas`"
	for {
		b := in.Admin(t, "GET", far+"/builds/"+ids[0], nil).JSON
		if b["status"] != "QUEUED" {
			t.Fatalf("before the timeout: %v", b)
		}
		if b["error"] == want {
			break
		}
		if time.Since(start) > timeout {
			t.Fatalf("the queued build never said why it waits: %v", b)
		}
		time.Sleep(50 * time.Millisecond)
	}
	b := waitBuild(t, in, "team/far", ids[0], timeout+10*time.Second)
	if b["status"] != "FAILED" || b["error"] != "no worker for region overseas" {
		t.Fatalf("after the timeout: %v", b)
	}
	if waited := time.Since(start); waited < timeout-time.Second {
		t.Fatalf("failed after %s, before the %s timeout", waited, timeout)
	}
	t.Logf("QUEUED with the message, then FAILED after %s", time.Since(start).Round(time.Millisecond))

	// While an overseas worker is registered, an overseas build waits past the timeout without the message;
	// when the worker goes, the build says so and fails.
	rc, ok := in.Redis.MakeRedisClient().(redis.UniversalClient)
	if !ok {
		t.Fatal("no Redis client")
	}
	defer rc.Close()
	ws := &pipeline.Workers{Redis: rc}
	unregister := ws.Register(context.Background(), pipeline.WorkerInfo{ID: "far/1", Region: "overseas", Host: "far",
		Version: "test", Queues: []string{"overseas"}})
	r = in.Admin(t, "GET", "/api/v1/system/workers", nil)
	if items := r.Items(); len(items) != 2 || items[1]["region"] != "overseas" || items[1]["host"] != "far" {
		t.Fatalf("workers with an overseas one: %s", r.Body)
	}
	next := g.commit(t, map[string]string{"Dockerfile": "FROM scratch\nCOPY . /\n"}, "second")
	_, ans = sendHook(t, hook, secret, "push", "far-2", githubPush("refs/heads/main", head, next))
	ids = hookBuilds(t, ans)
	if len(ids) != 1 {
		t.Fatalf("hook: %v", ans)
	}
	time.Sleep(timeout + time.Second)
	if b := in.Admin(t, "GET", far+"/builds/"+ids[0], nil).JSON; b["status"] != "QUEUED" || b["error"] != "" {
		t.Fatalf("with a live overseas worker: %v", b)
	}
	unregister()
	if b := waitBuild(t, in, "team/far", ids[0], 10*time.Second); b["status"] != "FAILED" || b["error"] != "no worker for region overseas" {
		t.Fatalf("after the overseas worker went: %v", b)
	}
}

// TestServeWithoutBuildWorkers: `berth serve --queues none` (a replica that leaves builds to `berth worker`
// processes) registers no worker, and a build of its home region says it waits for one.
func TestServeWithoutBuildWorkers(t *testing.T) {
	in := apptest.Start(t, apptest.Options{NamespaceLimit: 10, Configure: func(c *app.Config) {
		c.Queues = app.QueuesNone
		c.BuildQueueTimeout = time.Hour
	}})
	r := in.Admin(t, "GET", "/api/v1/system/workers", nil)
	expect(t, "workers", r, 200)
	if len(r.Items()) != 0 || r.JSON["total"] != float64(0) {
		t.Fatalf("workers of a serve with --queues none: %s", r.Body)
	}
	expect(t, "namespace", in.Admin(t, "POST", "/api/v1/namespaces", map[string]any{"name": "team"}), 201)
	g := newGitRepo(t)
	head := g.commit(t, map[string]string{"Dockerfile": "FROM scratch\n"}, "first")
	repo := "/api/v1/repositories/team/app"
	hook, secret := mainBranchRepo(t, in, "app", g, false)
	_, ans := sendHook(t, hook, secret, "push", "app-1", githubPush("refs/heads/main", strings.Repeat("0", 40), head))
	ids := hookBuilds(t, ans)
	if len(ids) != 1 {
		t.Fatalf("hook: %v", ans)
	}
	want := "no live worker for region default; start `berth worker --queues default`"
	deadline := time.Now().Add(30 * time.Second)
	for {
		b := in.Admin(t, "GET", repo+"/builds/"+ids[0], nil).JSON
		if b["status"] != "QUEUED" {
			t.Fatalf("a build ran on a serve with --queues none: %v", b)
		}
		if b["error"] == want {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the queued build never said why it waits: %v", b)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// mainBranchRepo makes the PRIVATE repository team/name built from g's main branch (overseas or not) and returns
// its webhook URL and secret.
func mainBranchRepo(t *testing.T, in *apptest.Instance, name string, g *gitRepo, overseas bool) (hook, secret string) {
	t.Helper()
	path := "/api/v1/repositories/team/" + name
	createRepo(t, in, "team", name, "PRIVATE")
	r := in.Admin(t, "PUT", path+"/source", map[string]any{"provider": "github", "url": g.URL, "overseas_build": overseas})
	expect(t, "source", r, 201)
	expect(t, "rule", in.Admin(t, "POST", path+"/build-rules", map[string]any{"source_type": "BRANCH", "source_ref": "main"}), 201)
	return r.JSON["webhook_url"].(string), r.JSON["webhook_secret"].(string)
}
