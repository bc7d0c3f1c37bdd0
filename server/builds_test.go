package server_test

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/server/app"
	"github.com/berth-dev/berth/server/app/apptest"
)

const buildTimeout = 2 * time.Minute

// TestGitDrivenBuilds is the build pipeline end to end on real components: a Git repository served by
// git http-backend, a GitHub-format signed webhook, Berth's API, Asynq on the instance's queue, a real
// buildkitd, Berth's registry, and skopeo pulling the result. One instance and one buildkitd serve every
// subtest, in order.
func TestGitDrivenBuilds(t *testing.T) {
	bk := buildkitAddr(t)
	in := apptest.Start(t, apptest.Options{NamespaceLimit: 10, Configure: func(c *app.Config) { c.BuildkitAddr = bk }})
	allowBuilds(t, in.Host)
	if r := in.Admin(t, "POST", "/api/v1/namespaces", map[string]any{"name": "library", "default_visibility": "PUBLIC"}); r.Status != 201 {
		t.Fatalf("namespace: %s", r.Body)
	}
	base := pushBusybox(t, in)
	for _, ns := range []string{"team"} {
		if r := in.Admin(t, "POST", "/api/v1/namespaces", map[string]any{"name": ns}); r.Status != 201 {
			t.Fatalf("namespace: %s", r.Body)
		}
	}
	for _, repo := range []string{"app", "far"} {
		if r := in.Admin(t, "POST", "/api/v1/namespaces/team/repositories", map[string]any{"name": repo}); r.Status != 201 {
			t.Fatalf("repository: %s", r.Body)
		}
	}
	const repo = "team/app"
	api := "/api/v1/repositories/" + repo

	g := newGitRepo(t)
	first := g.commit(t, map[string]string{
		"Dockerfile": "FROM " + base + "\nCOPY hello.txt /hello.txt\nRUN cp /hello.txt /copy.txt\n",
		"hello.txt":  "hello from the first commit\n",
		"multi/Dockerfile": "FROM " + base + " AS build\nARG GREETING=hi\nRUN echo \"$GREETING from stage build\" > /out.txt\n" +
			"FROM " + base + "\nCOPY --from=build /out.txt /result/out.txt\n",
		"slow/Dockerfile": "FROM " + base + "\nRUN echo follow-start && sleep 4 && echo follow-end\n",
		"long/Dockerfile": "FROM " + base + "\nRUN echo long-start && sleep 60\n",
	}, "first")

	r := in.Admin(t, "PUT", api+"/source", map[string]any{"provider": "github", "url": g.URL})
	if r.Status != 201 {
		t.Fatalf("put source: %d %s", r.Status, r.Body)
	}
	hookURL, _ := r.JSON["webhook_url"].(string)
	secret, _ := r.JSON["webhook_secret"].(string)
	if !strings.HasPrefix(hookURL, in.URL+"/hooks/") || len(secret) < 32 || r.JSON["auto_build"] != true {
		t.Fatalf("source: %s", r.Body)
	}
	rules := map[string]string{}
	for _, rule := range []map[string]any{
		{"source_type": "BRANCH", "source_ref": "main", "image_tag": "latest"},
		{"source_type": "TAG", "source_ref": "release-v(?<version>.*)", "image_tag": "${version}"},
		{"source_type": "BRANCH", "source_ref": "multi", "image_tag": "multi", "dockerfile_dir": "multi", "build_args": map[string]string{"GREETING": "hello"}},
		{"source_type": "BRANCH", "source_ref": "slow", "image_tag": "slow", "dockerfile_dir": "/slow"},
		{"source_type": "BRANCH", "source_ref": "long", "image_tag": "long", "dockerfile_dir": "/long"},
	} {
		r := in.Admin(t, "POST", api+"/build-rules", rule)
		if r.Status != 201 {
			t.Fatalf("rule: %d %s", r.Status, r.Body)
		}
		rules[rule["source_ref"].(string)] = r.JSON["id"].(string)
	}
	buildCount := func() int {
		r := in.Admin(t, "GET", api+"/builds?page_size=1", nil)
		return int(r.JSON["total"].(float64))
	}
	delivery := 0
	push := func(t *testing.T, ref, before, after string) (int, map[string]any) {
		delivery++
		return sendHook(t, hookURL, secret, "push", fmt.Sprintf("delivery-%d", delivery), githubPush(ref, before, after))
	}
	zero := strings.Repeat("0", 40)

	var firstBuild map[string]any
	t.Run("signed push webhook builds, pushes and records the image", func(t *testing.T) {
		start := time.Now()
		status, ans := push(t, "refs/heads/main", zero, first)
		ids := hookBuilds(t, ans)
		if status != http.StatusAccepted || len(ids) != 1 {
			t.Fatalf("hook: %d %v", status, ans)
		}
		t.Logf("webhook answered in %v", time.Since(start))
		b := waitBuild(t, in, repo, ids[0], buildTimeout)
		requireSuccess(t, in, repo, b)
		firstBuild = b
		t.Logf("build SUCCESS in %v", time.Since(start))
		if b["trigger"] != "webhook" || b["ref"] != "main" || b["commit"] != first || b["image_tag"] != "latest" ||
			b["region"] != "default" || b["no_cache"] != false || b["rule_id"] != rules["main"] || b["error"] != "" {
			t.Fatalf("build fields: %v", b)
		}
		digest, _ := b["digest"].(string)
		if !strings.HasPrefix(digest, "sha256:") {
			t.Fatalf("digest %q", digest)
		}
		var names []string
		for _, s := range b["stages"].([]any) {
			st := s.(map[string]any)
			names = append(names, st["name"].(string))
			if st["status"] != "SUCCESS" || st["started_at"] == nil || st["finished_at"] == nil {
				t.Fatalf("stage %v", st)
			}
		}
		if strings.Join(names, ",") != "CLONING,BUILDING,PUSHING,SCANNING" {
			t.Fatalf("stages %v", names)
		}
		// The version list shows the built tag at the built digest.
		tags := in.Admin(t, "GET", api+"/tags/latest", nil)
		if tags.Status != 200 || tags.JSON["digest"] != digest {
			t.Fatalf("tag latest: %s (build digest %s)", tags.Body, digest)
		}
		files := pulledFiles(t, in.Host+"/"+repo+":latest")
		if files["hello.txt"] != "hello from the first commit\n" || files["copy.txt"] != files["hello.txt"] {
			t.Fatalf("image files: %v", files)
		}
		// BuildKit also pushed its registry cache beside the image; it is not an image version.
		if _, err := in.Registry.ResolveTag(context.Background(), repo, "buildcache"); err != nil {
			t.Fatalf("registry cache %s:buildcache not pushed: %v", repo, err)
		}
		if r := in.Admin(t, "GET", api+"/tags/buildcache", nil); r.Status != 404 {
			t.Fatalf("the build cache is listed as an image version: %d %s", r.Status, r.Body)
		}
		log := buildLog(t, in, repo, ids[0])
		if testing.Verbose() {
			t.Logf("build log:\n%s", log)
		}
		for _, want := range []string{"[berth]", "CLONING", "BUILDING", "[3/3] RUN cp /hello.txt /copy.txt", "pushing manifest", "SUCCESS"} {
			if !strings.Contains(log, want) {
				t.Fatalf("log lacks %q:\n%s", want, log)
			}
		}
	})

	t.Run("a second commit builds again with the new content", func(t *testing.T) {
		second := g.commit(t, map[string]string{"hello.txt": "hello from the second commit\n"}, "second")
		_, ans := push(t, "refs/heads/main", first, second)
		ids := hookBuilds(t, ans)
		if len(ids) != 1 {
			t.Fatalf("hook: %v", ans)
		}
		b := waitBuild(t, in, repo, ids[0], buildTimeout)
		requireSuccess(t, in, repo, b)
		if b["commit"] != second || b["digest"] == firstBuild["digest"] {
			t.Fatalf("second build: %v", b)
		}
		if files := pulledFiles(t, in.Host+"/"+repo+":latest"); files["hello.txt"] != "hello from the second commit\n" {
			t.Fatalf("image files: %v", files)
		}
	})

	t.Run("redelivery, bad signature, ping, deleted and unmatched refs start nothing", func(t *testing.T) {
		before := buildCount()
		head := run(t, g.work, "git", "rev-parse", "HEAD")
		// The very same delivery again.
		status, ans := sendHook(t, hookURL, secret, "push", "delivery-1", githubPush("refs/heads/main", zero, first))
		if status != 202 || len(hookBuilds(t, ans)) != 0 || ans["duplicate"] != true {
			t.Fatalf("redelivery: %d %v", status, ans)
		}
		status, ans = sendHook(t, hookURL, "not-the-secret", "push", "bad-sig", githubPush("refs/heads/main", zero, head))
		if status != 401 || ans["code"] != "UNAUTHORIZED" {
			t.Fatalf("bad signature: %d %v", status, ans)
		}
		status, ans = sendHook(t, hookURL, secret, "ping", "ping-1", map[string]any{"zen": "Keep it logically awesome."})
		if status != 202 || len(hookBuilds(t, ans)) != 0 {
			t.Fatalf("ping: %d %v", status, ans)
		}
		del := githubPush("refs/heads/main", head, zero)
		del["deleted"], del["head_commit"] = true, nil
		status, ans = sendHook(t, hookURL, secret, "push", "deleted-1", del)
		if status != 202 || len(hookBuilds(t, ans)) != 0 {
			t.Fatalf("deleted ref: %d %v", status, ans)
		}
		g.push(t, "HEAD:refs/heads/feature")
		status, ans = push(t, "refs/heads/feature", zero, head)
		if status != 202 || len(hookBuilds(t, ans)) != 0 {
			t.Fatalf("unmatched branch: %d %v", status, ans)
		}
		status, ans = push(t, "refs/tags/v9", zero, head) // a tag no TAG rule matches
		if status != 202 || len(hookBuilds(t, ans)) != 0 {
			t.Fatalf("unmatched tag: %d %v", status, ans)
		}
		unknown := in.URL + "/hooks/" + strings.Repeat("ab", 16)
		if status, _ := sendHook(t, unknown, secret, "push", "x", githubPush("refs/heads/main", zero, head)); status != 404 {
			t.Fatalf("unknown hook: %d", status)
		}
		if after := buildCount(); after != before {
			t.Fatalf("builds %d → %d", before, after)
		}
	})

	t.Run("tag release-v1.2 builds image tag 1.2", func(t *testing.T) {
		head := run(t, g.work, "git", "rev-parse", "HEAD")
		run(t, g.work, "git", "tag", "-a", "-m", "release", "release-v1.2")
		g.push(t, "refs/tags/release-v1.2")
		_, ans := push(t, "refs/tags/release-v1.2", zero, head)
		ids := hookBuilds(t, ans)
		if len(ids) != 1 {
			t.Fatalf("hook: %v", ans)
		}
		b := waitBuild(t, in, repo, ids[0], buildTimeout)
		requireSuccess(t, in, repo, b)
		if b["image_tag"] != "1.2" || b["ref"] != "release-v1.2" || b["commit"] != head || b["rule_id"] != rules["release-v(?<version>.*)"] {
			t.Fatalf("tag build: %v", b)
		}
		if tag := in.Admin(t, "GET", api+"/tags/1.2", nil); tag.Status != 200 || tag.JSON["digest"] != b["digest"] {
			t.Fatalf("tag 1.2: %s", tag.Body)
		}
	})

	var multiRule = rules["multi"]
	t.Run("build now runs a multi-stage Dockerfile on the branch head", func(t *testing.T) {
		g.push(t, "HEAD:refs/heads/multi")
		r := in.Admin(t, "POST", api+"/build-rules/"+multiRule+"/builds", nil)
		if r.Status != 202 || r.JSON["trigger"] != "manual" || r.JSON["commit"] != run(t, g.work, "git", "rev-parse", "HEAD") {
			t.Fatalf("build now: %d %s", r.Status, r.Body)
		}
		b := waitBuild(t, in, repo, r.JSON["id"].(string), buildTimeout)
		requireSuccess(t, in, repo, b)
		files := pulledFiles(t, in.Host+"/"+repo+":multi")
		if files["result/out.txt"] != "hello from stage build\n" || files["out.txt"] != "" {
			t.Fatalf("multi-stage image files: %v", files)
		}
	})

	t.Run("a cached rebuild is all CACHED; no_cache caches nothing", func(t *testing.T) {
		r := in.Admin(t, "POST", api+"/build-rules/"+multiRule+"/builds", map[string]any{})
		b := waitBuild(t, in, repo, r.JSON["id"].(string), buildTimeout)
		requireSuccess(t, in, repo, b)
		log := buildLog(t, in, repo, b["id"].(string))
		cached, steps := cachedSteps(log)
		if len(steps) != 2 || len(cached) != len(steps) || !strings.Contains(log, "2 of 2 steps cached") {
			t.Fatalf("cached rebuild: %d of %d steps CACHED (%v):\n%s", len(cached), len(steps), steps, log)
		}
		// The same commit again: the worker's checkout of it is read again instead of a clone.
		if !strings.Contains(log, "CLONING skipped") || strings.Contains(log, "cloned in") {
			t.Fatalf("a rebuild of the same commit cloned again:\n%s", log)
		}
		if files := pulledFiles(t, in.Host+"/"+repo+":multi"); files["result/out.txt"] != "hello from stage build\n" {
			t.Fatalf("multi-stage image files after a rebuild from a kept checkout: %v", files)
		}

		if r := in.Admin(t, "PUT", api+"/source", map[string]any{"no_cache": true}); r.Status != 200 || r.JSON["no_cache"] != true {
			t.Fatalf("no_cache: %s", r.Body)
		}
		r = in.Admin(t, "POST", api+"/build-rules/"+multiRule+"/builds", nil)
		b = waitBuild(t, in, repo, r.JSON["id"].(string), buildTimeout)
		requireSuccess(t, in, repo, b)
		if b["no_cache"] != true {
			t.Fatalf("build no_cache: %v", b)
		}
		log = buildLog(t, in, repo, b["id"].(string))
		cached, steps = cachedSteps(log)
		if len(steps) != 2 || len(cached) != 0 || !strings.Contains(log, "0 of 2 steps cached") {
			t.Fatalf("no_cache rebuild: %d of %d steps CACHED (%v):\n%s", len(cached), len(steps), cached, log)
		}
		if r := in.Admin(t, "PUT", api+"/source", map[string]any{"no_cache": false}); r.Status != 200 {
			t.Fatalf("no_cache off: %s", r.Body)
		}
	})

	t.Run("logs followed live show BuildKit steps while the build runs", func(t *testing.T) {
		head := run(t, g.work, "git", "rev-parse", "HEAD")
		g.push(t, "HEAD:refs/heads/slow")
		_, ans := push(t, "refs/heads/slow", zero, head)
		ids := hookBuilds(t, ans)
		if len(ids) != 1 {
			t.Fatalf("hook: %v", ans)
		}
		id := ids[0]
		req, _ := http.NewRequest("GET", in.URL+api+"/builds/"+id+"/logs?follow=true", nil)
		req.SetBasicAuth("admin", apptest.AdminPassword)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
			t.Fatalf("follow: %d %v", resp.StatusCode, resp.Header)
		}
		var streamed strings.Builder
		var sawStepAt time.Time // when the RUN step's output arrived
		done := make(chan struct{})
		go func() {
			defer close(done)
			sc := bufio.NewScanner(resp.Body)
			sc.Buffer(make([]byte, 1<<20), 1<<20)
			for sc.Scan() {
				line := sc.Text()
				streamed.WriteString(line + "\n")
				if sawStepAt.IsZero() && strings.Contains(line, "follow-start") && !strings.Contains(line, "RUN") {
					sawStepAt = time.Now()
				}
			}
		}()
		b := waitBuild(t, in, repo, id, buildTimeout)
		requireSuccess(t, in, repo, b)
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			t.Fatal("the followed log did not end after the build ended")
		}
		// The step sleeps 4 s after printing: its output must have arrived well before BUILDING ended.
		var buildingEnd time.Time
		for _, s := range b["stages"].([]any) {
			if st := s.(map[string]any); st["name"] == "BUILDING" {
				buildingEnd, _ = time.Parse(time.RFC3339Nano, st["finished_at"].(string))
			}
		}
		if sawStepAt.IsZero() || !sawStepAt.Before(buildingEnd.Add(-2*time.Second)) {
			t.Fatalf("the RUN step's output arrived at %v, BUILDING ended at %v; streamed:\n%s", sawStepAt, buildingEnd, streamed.String())
		}
		t.Logf("step output followed %v before BUILDING ended", buildingEnd.Sub(sawStepAt).Round(time.Millisecond))
		if full := buildLog(t, in, repo, id); streamed.String() != full {
			t.Fatalf("streamed %d bytes, the stored log has %d", streamed.Len(), len(full))
		}
	})

	t.Run("cancel ends a long RUN sleep build as CANCELED", func(t *testing.T) {
		head := run(t, g.work, "git", "rev-parse", "HEAD")
		g.push(t, "HEAD:refs/heads/long")
		_, ans := push(t, "refs/heads/long", zero, head)
		ids := hookBuilds(t, ans)
		if len(ids) != 1 {
			t.Fatalf("hook: %v", ans)
		}
		id := ids[0]
		waitBuild(t, in, repo, id, buildTimeout, "BUILDING")
		deadline := time.Now().Add(buildTimeout)
		for !strings.Contains(buildLog(t, in, repo, id), "long-start\n") {
			if time.Now().After(deadline) {
				t.Fatalf("the RUN never started:\n%s", buildLog(t, in, repo, id))
			}
			time.Sleep(200 * time.Millisecond)
		}
		start := time.Now()
		r := in.Admin(t, "POST", api+"/builds/"+id+"/cancel", nil)
		if r.Status != 200 || r.JSON["status"] != "CANCELED" || !strings.Contains(r.JSON["error"].(string), "canceled by admin") {
			t.Fatalf("cancel: %d %s", r.Status, r.Body)
		}
		// The worker stops the solve and says so in the log, long before the sleep would end.
		for !strings.Contains(buildLog(t, in, repo, id), "canceled; the build stopped") {
			if time.Since(start) > 30*time.Second {
				t.Fatalf("the build did not stop within 30 s of cancel:\n%s", buildLog(t, in, repo, id))
			}
			time.Sleep(200 * time.Millisecond)
		}
		t.Logf("build stopped %v after cancel", time.Since(start).Round(time.Millisecond))
		b := waitBuild(t, in, repo, id, time.Second)
		if b["status"] != "CANCELED" || b["digest"] != "" {
			t.Fatalf("after cancel: %v", b)
		}
		for _, s := range b["stages"].([]any) {
			if st := s.(map[string]any); st["name"] == "BUILDING" && st["status"] != "CANCELED" {
				t.Fatalf("stage %v", st)
			}
		}
		if r := in.Admin(t, "POST", api+"/builds/"+id+"/cancel", nil); r.Status != 409 || r.Code() != "CONFLICT" {
			t.Fatalf("cancel twice: %d %s", r.Status, r.Body)
		}
	})

	t.Run("a queued build canceled before a worker takes it never runs", func(t *testing.T) {
		// overseas_build: this instance works only on the home queue, so the build waits.
		far := "/api/v1/repositories/team/far"
		r := in.Admin(t, "PUT", far+"/source", map[string]any{"provider": "github", "url": g.URL, "overseas_build": true})
		if r.Status != 201 {
			t.Fatalf("source: %s", r.Body)
		}
		farHook, farSecret := r.JSON["webhook_url"].(string), r.JSON["webhook_secret"].(string)
		if r := in.Admin(t, "POST", far+"/build-rules", map[string]any{"source_type": "BRANCH", "source_ref": "main"}); r.Status != 201 {
			t.Fatalf("rule: %s", r.Body)
		}
		_, ans := sendHook(t, farHook, farSecret, "push", "far-1", githubPush("refs/heads/main", zero, run(t, g.work, "git", "rev-parse", "HEAD")))
		ids := hookBuilds(t, ans)
		if len(ids) != 1 {
			t.Fatalf("hook: %v", ans)
		}
		b := waitBuild(t, in, "team/far", ids[0], time.Second, "QUEUED")
		if b["status"] != "QUEUED" || b["region"] != "overseas" {
			t.Fatalf("queued: %v", b)
		}
		r = in.Admin(t, "POST", far+"/builds/"+ids[0]+"/cancel", nil)
		if r.Status != 200 || r.JSON["status"] != "CANCELED" {
			t.Fatalf("cancel: %s", r.Body)
		}
		time.Sleep(time.Second)
		b = waitBuild(t, in, "team/far", ids[0], time.Second)
		if b["status"] != "CANCELED" || len(b["stages"].([]any)) != 0 || buildLog(t, in, "team/far", ids[0]) != "" {
			t.Fatalf("a canceled queued build ran: %v", b)
		}
	})
}

// TestQueuedBuildSurvivesRestart: a build still QUEUED when serve stops (its task was in the in-memory queue,
// which forgets everything) is queued again when serve starts, and runs.
func TestQueuedBuildSurvivesRestart(t *testing.T) {
	bk := buildkitAddr(t)
	dir := t.TempDir()
	in := apptest.Start(t, apptest.Options{DataDir: dir, NamespaceLimit: 10, Configure: func(c *app.Config) { c.BuildkitAddr = bk }})
	allowBuilds(t, in.Host)
	in.Admin(t, "POST", "/api/v1/namespaces", map[string]any{"name": "team"})
	in.Admin(t, "POST", "/api/v1/namespaces/team/repositories", map[string]any{"name": "app"})
	g := newGitRepo(t)
	// No base image: the instance comes back on another port.
	head := g.commit(t, map[string]string{"Dockerfile": "FROM scratch\nCOPY r.txt /r.txt\n", "r.txt": "restarted\n"}, "one")
	// Overseas: this instance does not work on that queue, so the build waits.
	r := in.Admin(t, "PUT", "/api/v1/repositories/team/app/source", map[string]any{"provider": "github", "url": g.URL, "overseas_build": true})
	in.Admin(t, "POST", "/api/v1/repositories/team/app/build-rules", map[string]any{"source_type": "BRANCH", "source_ref": "main"})
	_, ans := sendHook(t, r.JSON["webhook_url"].(string), r.JSON["webhook_secret"].(string), "push", "r-1",
		githubPush("refs/heads/main", strings.Repeat("0", 40), head))
	ids := hookBuilds(t, ans)
	if len(ids) != 1 {
		t.Fatalf("hook: %v", ans)
	}
	in.Stop()

	// Restarted on the same data, now working on the overseas queue too (--queues).
	in = apptest.Start(t, apptest.Options{DataDir: dir, NamespaceLimit: 10, Configure: func(c *app.Config) {
		c.BuildkitAddr = bk
		c.Queues = "default,overseas"
	}})
	allowBuilds(t, in.Host)
	b := waitBuild(t, in, "team/app", ids[0], buildTimeout)
	requireSuccess(t, in, "team/app", b)
	if files := pulledFiles(t, in.Host+"/team/app:latest"); files["r.txt"] != "restarted\n" {
		t.Fatalf("image files: %v", files)
	}
}
