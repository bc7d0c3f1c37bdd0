package server_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/server/app"
	"github.com/berth-dev/berth/server/app/apptest"
)

// dockerEngine returns a docker CLI runner for the real Docker Engine (dockerd at its default socket) with a
// login store of its own, failing in CI and skipping elsewhere when there is no engine.
func dockerEngine(t *testing.T) func(stdin string, args ...string) (string, error) {
	t.Helper()
	_, err := exec.LookPath("docker")
	need(t, "the docker CLI (apt-get install docker.io)", err)
	if out, err := exec.Command("docker", "info", "--format", "{{.ServerVersion}}").CombinedOutput(); err != nil {
		need(t, "a running Docker Engine", fmt.Errorf("%v: %s", err, out))
	}
	cfg := t.TempDir()
	return func(stdin string, args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		c := exec.CommandContext(ctx, "docker", args...)
		c.Env = append(os.Environ(), "DOCKER_CONFIG="+cfg)
		c.Stdin = strings.NewReader(stdin)
		out, err := c.CombinedOutput()
		return string(out), err
	}
}

// TestDockerEngine: the real Docker Engine against Berth (127.0.0.1 registries are plain HTTP to it). A signed
// push webhook builds a PRIVATE image from Git; `docker login` with temporary credentials, `docker pull`, and
// `docker run` prints the file committed in Git; an anonymous pull of it is refused; a PUBLIC pull is allowed
// anonymously; `docker push` of a new tag creates its repository.
func TestDockerEngine(t *testing.T) {
	docker := dockerEngine(t)
	bk := buildkitAddr(t)
	in := apptest.Start(t, apptest.Options{Configure: func(c *app.Config) { c.BuildkitAddr = bk }})
	allowBuilds(t, in.Host)
	if r := in.Admin(t, "POST", "/api/v1/namespaces", map[string]any{"name": "library", "default_visibility": "PUBLIC"}); r.Status != 201 {
		t.Fatalf("namespace: %s", r.Body)
	}
	base := pushBusybox(t, in)
	if r := in.Admin(t, "POST", "/api/v1/namespaces", map[string]any{"name": "team", "auto_create_repo": true}); r.Status != 201 {
		t.Fatalf("namespace: %s", r.Body)
	}
	if r := in.Admin(t, "POST", "/api/v1/namespaces/team/repositories", map[string]any{"name": "app", "visibility": "PRIVATE"}); r.Status != 201 {
		t.Fatalf("repository: %s", r.Body)
	}
	const repo = "team/app"
	greeting := fmt.Sprintf("hello from git, %d\n", time.Now().UnixNano())
	g := newGitRepo(t)
	commit := g.commit(t, map[string]string{
		"Dockerfile": "FROM " + base + "\nCOPY hello.txt /hello.txt\nCMD [\"cat\", \"/hello.txt\"]\n",
		"hello.txt":  greeting,
	}, "hello")
	r := in.Admin(t, "PUT", "/api/v1/repositories/"+repo+"/source", map[string]any{"provider": "github", "url": g.URL})
	if r.Status != 201 {
		t.Fatalf("put source: %d %s", r.Status, r.Body)
	}
	hookURL, secret := r.JSON["webhook_url"].(string), r.JSON["webhook_secret"].(string)
	if r := in.Admin(t, "POST", "/api/v1/repositories/"+repo+"/build-rules",
		map[string]any{"source_type": "BRANCH", "source_ref": "main", "image_tag": "latest"}); r.Status != 201 {
		t.Fatalf("rule: %d %s", r.Status, r.Body)
	}
	status, ans := sendHook(t, hookURL, secret, "push", "engine-1", githubPush("refs/heads/main", strings.Repeat("0", 40), commit))
	ids := hookBuilds(t, ans)
	if status != http.StatusAccepted || len(ids) != 1 {
		t.Fatalf("hook: %d %v", status, ans)
	}
	requireSuccess(t, in, repo, waitBuild(t, in, repo, ids[0], buildTimeout))

	image := in.Host + "/" + repo + ":latest"
	newImage := in.Host + "/team/from-docker:v1"
	t.Cleanup(func() { _, _ = docker("", "rmi", "-f", image, newImage, base) })

	// Anonymous: the PRIVATE image is refused, the PUBLIC base image is served.
	out, err := docker("", "pull", image)
	if want := "Error response from daemon: pull access denied for " + in.Host + "/team/app, repository does not exist or " +
		"may require 'docker login': denied: requested access to the resource is denied"; err == nil || strings.TrimSpace(out) != want {
		t.Fatalf("anonymous pull of a PRIVATE image: err=%v\n got %s\nwant %s", err, out, want)
	}
	if out, err := docker("", "image", "inspect", image); err == nil {
		t.Fatalf("the refused image is in the engine:\n%s", out)
	}
	if out, err := docker("", "pull", base); err != nil {
		t.Fatalf("anonymous pull of a PUBLIC image: %v\n%s", err, out)
	}

	// Temporary credentials for docker login.
	tok := in.Admin(t, "POST", "/api/v1/auth/token", map[string]any{})
	user, pass := tok.JSON["username"].(string), tok.JSON["password"].(string)
	if tok.Status != 200 || user != "admin" || pass == "" || pass == apptest.AdminPassword {
		t.Fatalf("temporary token: %d %s", tok.Status, tok.Body)
	}
	if out, err := docker("wrong", "login", in.Host, "-u", user, "--password-stdin"); err == nil || !strings.Contains(out, "unauthorized") {
		t.Fatalf("login with a wrong password: err=%v\n%s", err, out)
	}
	if out, err := docker(pass, "login", in.Host, "-u", user, "--password-stdin"); err != nil || !strings.Contains(out, "Login Succeeded") {
		t.Fatalf("docker login with temporary credentials: %v\n%s", err, out)
	}
	if out, err := docker("", "pull", image); err != nil {
		t.Fatalf("docker pull of the built PRIVATE image: %v\n%s", err, out)
	}
	out, err = docker("", "run", "--rm", "--network", "none", image)
	if err != nil || out != greeting {
		t.Fatalf("docker run printed %q (%v), want the file committed in Git %q", out, err, greeting)
	}

	// docker push of a new tag creates the repository.
	if r := in.Admin(t, "GET", "/api/v1/repositories/team/from-docker", nil); r.Status != 404 {
		t.Fatalf("repository before the push: %d %s", r.Status, r.Body)
	}
	if out, err := docker("", "tag", image, newImage); err != nil {
		t.Fatalf("docker tag: %v\n%s", err, out)
	}
	if out, err := docker("", "push", newImage); err != nil {
		t.Fatalf("docker push: %v\n%s", err, out)
	}
	r = in.Admin(t, "GET", "/api/v1/repositories/team/from-docker", nil)
	if r.Status != 200 || r.JSON["origin"] != "PUSH" || r.JSON["visibility"] != "PRIVATE" {
		t.Fatalf("repository created by docker push: %d %s", r.Status, r.Body)
	}
	v := in.Admin(t, "GET", "/api/v1/repositories/team/from-docker/tags/v1", nil)
	built := in.Admin(t, "GET", "/api/v1/repositories/"+repo+"/tags/latest", nil)
	if v.Status != 200 || v.JSON["digest"] == nil || v.JSON["image_id"] != built.JSON["image_id"] {
		t.Fatalf("pushed version: %s; built: %s", v.Body, built.Body)
	}
}
