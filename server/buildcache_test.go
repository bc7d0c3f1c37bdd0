package server_test

import (
	"testing"

	"github.com/berth-dev/berth/server/app"
	"github.com/berth-dev/berth/server/app/apptest"
)

// TestReservedBuildArgs: a rule may not set a build argument that steers BuildKit itself (BUILDKIT_*, in any
// case), neither when created nor when changed; the rule stays as it was.
func TestReservedBuildArgs(t *testing.T) {
	in := apptest.Start(t, apptest.Options{})
	if r := in.Admin(t, "POST", "/api/v1/namespaces", map[string]any{"name": "team"}); r.Status != 201 {
		t.Fatalf("namespace: %s", r.Body)
	}
	if r := in.Admin(t, "POST", "/api/v1/namespaces/team/repositories", map[string]any{"name": "app"}); r.Status != 201 {
		t.Fatalf("repository: %s", r.Body)
	}
	const api = "/api/v1/repositories/team/app/build-rules"
	msg := func(name string) string {
		return `build_args name "` + name + `" is reserved: names starting with BUILDKIT_ configure BuildKit itself (cache-mount namespace, inline cache, frontend), which Berth sets`
	}
	r := in.Admin(t, "POST", api, map[string]any{"source_type": "BRANCH", "source_ref": "main",
		"build_args": map[string]string{"VERSION": "1", "BUILDKIT_CACHE_MOUNT_NS": "team-b"}})
	if r.Status != 400 || r.JSON["code"] != "INVALID_ARGUMENT" || r.JSON["message"] != msg("BUILDKIT_CACHE_MOUNT_NS") || r.JSON["request_id"] == "" {
		t.Fatalf("create with BUILDKIT_CACHE_MOUNT_NS: %d %s", r.Status, r.Body)
	}
	r = in.Admin(t, "POST", api, map[string]any{"source_type": "BRANCH", "source_ref": "main",
		"build_args": map[string]string{"VERSION": "1"}})
	if r.Status != 201 {
		t.Fatalf("create: %d %s", r.Status, r.Body)
	}
	id := r.JSON["id"].(string)
	r = in.Admin(t, "PATCH", api+"/"+id, map[string]any{"build_args": map[string]string{"buildkit_inline_cache": "1"}})
	if r.Status != 400 || r.JSON["code"] != "INVALID_ARGUMENT" || r.JSON["message"] != msg("buildkit_inline_cache") {
		t.Fatalf("patch with buildkit_inline_cache: %d %s", r.Status, r.Body)
	}
	r = in.Admin(t, "GET", api+"/"+id, nil)
	if args, _ := r.JSON["build_args"].(map[string]any); r.Status != 200 || len(args) != 1 || args["VERSION"] != "1" {
		t.Fatalf("the rule changed: %d %s", r.Status, r.Body)
	}
	// BUILDKIT without the underscore is an ordinary name.
	r = in.Admin(t, "PATCH", api+"/"+id, map[string]any{"build_args": map[string]string{"BUILDKITVERSION": "0.34"}})
	if r.Status != 200 {
		t.Fatalf("patch with BUILDKITVERSION: %d %s", r.Status, r.Body)
	}
}

// TestBuildCacheMountsPerRepository: RUN --mount=type=cache with the same id shares content between builds of
// one repository, never with a repository of another namespace, which can plant content neither in the mount
// nor, through BuildKit's cache of RUN results (whose key leaves the mount id out), in the same step.
func TestBuildCacheMountsPerRepository(t *testing.T) {
	bk := buildkitAddr(t)
	in := apptest.Start(t, apptest.Options{NamespaceLimit: 10, Configure: func(c *app.Config) { c.BuildkitAddr = bk }})
	allowBuilds(t, in.Host)
	if r := in.Admin(t, "POST", "/api/v1/namespaces", map[string]any{"name": "library", "default_visibility": "PUBLIC"}); r.Status != 201 {
		t.Fatalf("namespace: %s", r.Body)
	}
	base := pushBusybox(t, in)
	g := newGitRepo(t)
	const mount = "RUN --mount=type=cache,target=/c,id=shared "
	g.commit(t, map[string]string{
		"plant/Dockerfile": "FROM " + base + "\n" + mount + "echo planted by the attacker > /c/planted && date > /planted-at\n",
		"read/Dockerfile":  "FROM " + base + "\n" + mount + "(cat /c/planted || echo nothing) > /seen.txt && date > /read-at\n",
	}, "cache mounts")
	build := func(repo, dir string) map[string]string {
		t.Helper()
		ns, name, _ := cutRepo(repo)
		if r := in.Admin(t, "POST", "/api/v1/namespaces", map[string]any{"name": ns}); r.Status != 201 && r.Status != 409 {
			t.Fatalf("namespace: %d %s", r.Status, r.Body)
		}
		if r := in.Admin(t, "POST", "/api/v1/namespaces/"+ns+"/repositories", map[string]any{"name": name}); r.Status != 201 && r.Status != 409 {
			t.Fatalf("repository: %d %s", r.Status, r.Body)
		}
		api := "/api/v1/repositories/" + repo
		if r := in.Admin(t, "PUT", api+"/source", map[string]any{"provider": "github", "url": g.URL}); r.Status != 201 && r.Status != 200 {
			t.Fatalf("put source: %d %s", r.Status, r.Body)
		}
		r := in.Admin(t, "POST", api+"/build-rules", map[string]any{"source_type": "BRANCH", "source_ref": "main",
			"dockerfile_dir": dir, "image_tag": dir})
		if r.Status != 201 {
			t.Fatalf("rule: %d %s", r.Status, r.Body)
		}
		r = in.Admin(t, "POST", api+"/build-rules/"+r.JSON["id"].(string)+"/builds", nil)
		if r.Status != 202 {
			t.Fatalf("build now: %d %s", r.Status, r.Body)
		}
		requireSuccess(t, in, repo, waitBuild(t, in, repo, r.JSON["id"].(string), buildTimeout))
		return pulledFiles(t, in.Host+"/"+repo+":"+dir)
	}
	build("attacker/tools", "plant")
	// The same id within the attacker's own repository does share: the cache mount works.
	if seen := build("attacker/tools", "read")["seen.txt"]; seen != "planted by the attacker\n" {
		t.Fatalf("attacker/tools's second build sees %q in its own cache mount, want what its first build wrote", seen)
	}
	// Neither the planted mount nor the attacker's cached result of the very same RUN step reaches the victim.
	if seen := build("victim/app", "read")["seen.txt"]; seen != "nothing\n" {
		t.Errorf("victim/app's build sees %q, planted by another namespace's build", seen)
	}
}

func cutRepo(repo string) (ns, name string, ok bool) {
	for i := range repo {
		if repo[i] == '/' {
			return repo[:i], repo[i+1:], true
		}
	}
	return repo, "", false
}
