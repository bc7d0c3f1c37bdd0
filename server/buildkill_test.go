package server_test

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/pipeline"
	"github.com/berth-dev/berth/server/app"
	"github.com/berth-dev/berth/server/app/apptest"
)

// TestBuildWorkerKilled kills a `berth worker` process (SIGKILL) while it is BUILDING. A new worker takes the
// build over when the queue gives the task back (its lease ran out): the build ends SUCCESS, or FAILED with a
// reason, never stuck in BUILDING. The instance and the worker share a real redis-server and the instance's
// embedded store; the build runs on the overseas queue, which only the worker processes work on.
func TestBuildWorkerKilled(t *testing.T) {
	bk := buildkitAddr(t)
	redis := apptest.StartRedisServer(t)
	bin := apptest.BuildBerth(t)

	in := apptest.Start(t, apptest.Options{NamespaceLimit: 10, Configure: func(c *app.Config) {
		c.RedisAddr = redis
		c.BuildkitAddr = bk
	}})
	allowBuilds(t, in.Host)
	if r := in.Admin(t, "POST", "/api/v1/namespaces", map[string]any{"name": "library", "default_visibility": "PUBLIC"}); r.Status != 201 {
		t.Fatalf("namespace: %s", r.Body)
	}
	base := pushBusybox(t, in)
	if r := in.Admin(t, "POST", "/api/v1/namespaces", map[string]any{"name": "team"}); r.Status != 201 {
		t.Fatalf("namespace: %s", r.Body)
	}
	if r := in.Admin(t, "POST", "/api/v1/namespaces/team/repositories", map[string]any{"name": "app"}); r.Status != 201 {
		t.Fatalf("repository: %s", r.Body)
	}
	const repo = "team/app"
	api := "/api/v1/repositories/" + repo
	g := newGitRepo(t)
	head := g.commit(t, map[string]string{
		"Dockerfile": "FROM " + base + "\nRUN echo kill-start && sleep 6 && echo survived > /done.txt\n",
	}, "slow build")
	r := in.Admin(t, "PUT", api+"/source", map[string]any{"provider": "github", "url": g.URL, "overseas_build": true})
	if r.Status != 201 {
		t.Fatalf("source: %s", r.Body)
	}
	hookURL, secret := r.JSON["webhook_url"].(string), r.JSON["webhook_secret"].(string)
	if r := in.Admin(t, "POST", api+"/build-rules", map[string]any{"source_type": "BRANCH", "source_ref": "main"}); r.Status != 201 {
		t.Fatalf("rule: %s", r.Body)
	}

	args := []string{"worker", "--queues", "overseas", "--data-dir", in.DataDir, "--mongo-database", in.App.Cfg.MongoDatabase,
		"--redis-addr", redis, "--buildkit-addr", bk, "--public-url", in.URL,
		"--master-key-file", filepath.Join(in.DataDir, "keys", "master.key"), "--log-level", "info"}
	if in.App.MongoURI != "" {
		args = append(args, "--mongo-uri", in.App.MongoURI)
	}
	first := apptest.StartProcess(t, bin, nil, args...)
	_, ans := sendHook(t, hookURL, secret, "push", "kill-1", githubPush("refs/heads/main", strings.Repeat("0", 40), head))
	ids := hookBuilds(t, ans)
	if len(ids) != 1 {
		t.Fatalf("hook: %v", ans)
	}
	id := ids[0]
	waitBuild(t, in, repo, id, buildTimeout, "BUILDING")
	deadline := time.Now().Add(buildTimeout)
	for !strings.Contains(buildLog(t, in, repo, id), "kill-start\n") {
		if time.Now().After(deadline) {
			t.Fatalf("the RUN step never started:\n%s", buildLog(t, in, repo, id))
		}
		time.Sleep(100 * time.Millisecond)
	}
	first.Kill()
	killed := time.Now()
	if b := waitBuild(t, in, repo, id, time.Second, "BUILDING"); b["status"] != "BUILDING" {
		t.Fatalf("after the kill: %v", b)
	}

	apptest.StartProcess(t, bin, nil, args...) // the second worker
	const takeover = 5 * time.Minute
	if takeover >= pipeline.StaleAfter {
		t.Fatalf("the wait (%s) must end before the sweeper fails the build (%s)", takeover, pipeline.StaleAfter)
	}
	b := waitBuild(t, in, repo, id, takeover)
	log := buildLog(t, in, repo, id)
	t.Logf("build %s %v after the kill (%v)", b["status"], time.Since(killed).Round(time.Second), b["error"])
	// The queue runs the task again on the second worker (the first one's lease expires), which builds from the
	// clone. The one documented way such a build ends FAILED — the sweeper's "the worker … stopped during
	// BUILDING (no heartbeat for 10m0s …)" — needs pipeline.StaleAfter without a heartbeat, far past this wait:
	// anything but SUCCESS here is a broken takeover.
	if b["status"] != "SUCCESS" {
		t.Fatalf("build ended %v (%v), want SUCCESS after the takeover:\n%s", b["status"], b["error"], log)
	}
	if b["error"] != nil && b["error"] != "" {
		t.Errorf("SUCCESS with an error: %v", b["error"])
	}
	if !strings.Contains(log, "attempt 2: the worker of the previous attempt stopped during BUILDING") {
		t.Fatalf("the log does not say the build was started again:\n%s", log)
	}
	if files := pulledFiles(t, in.Host+"/"+repo+":latest"); files["done.txt"] != "survived\n" {
		t.Fatalf("image files: %v", files)
	}
}
