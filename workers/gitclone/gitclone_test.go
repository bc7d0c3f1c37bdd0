package gitclone

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fixture is a bare repository with a known history:
//
//	main:    c1 ── c2 ── c3      (file.txt = "one", "two", "three")
//	feature: c1 ── f1            (file.txt = "feature")
//	tags:    v1 (annotated) → c2, light (lightweight) → c1
type fixture struct {
	bare           string // path of the bare repository
	c1, c2, c3, f1 string
}

func requireGit(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("git is required in CI: %v", err)
		}
		t.Skip("git is not installed; the tests need git and git-http-backend")
	}
}

func runGit(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"GIT_AUTHOR_NAME=Berth Test", "GIT_AUTHOR_EMAIL=test@berth.invalid",
		"GIT_COMMITTER_NAME=Berth Test", "GIT_COMMITTER_EMAIL=test@berth.invalid",
		"GIT_CONFIG_NOSYSTEM=1", "HOME="+dir,
	)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

func commitFile(t *testing.T, dir, content, msg string) string {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, "file.txt"), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	runGit(t, dir, "add", "file.txt")
	runGit(t, dir, "commit", "-q", "-m", msg)
	return runGit(t, dir, "rev-parse", "HEAD")
}

// newFixture builds the repository under root/<name>.git. allowSHA sets
// uploadpack.allowReachableSHA1InWant so commits can be fetched by SHA.
func newFixture(t *testing.T, root, name string, allowSHA bool) fixture {
	t.Helper()
	requireGit(t)
	work := t.TempDir()
	runGit(t, work, "init", "-q", "-b", "main")
	var f fixture
	f.c1 = commitFile(t, work, "one", "c1")
	runGit(t, work, "tag", "light")
	f.c2 = commitFile(t, work, "two", "c2")
	runGit(t, work, "tag", "-a", "v1", "-m", "release v1")
	f.c3 = commitFile(t, work, "three", "c3")
	runGit(t, work, "checkout", "-q", "-b", "feature", f.c1)
	f.f1 = commitFile(t, work, "feature", "f1")
	runGit(t, work, "checkout", "-q", "main")

	f.bare = filepath.Join(root, name+".git")
	runGit(t, root, "clone", "-q", "--bare", work, f.bare)
	if allowSHA {
		runGit(t, f.bare, "config", "uploadpack.allowReachableSHA1InWant", "true")
	}
	return f
}

// newGitServer serves every bare repository under root with git
// http-backend (smart HTTP) at http://127.0.0.1:PORT/git/<name>.git. With a
// non-empty user, basic auth is required.
func newGitServer(t *testing.T, root, user, password string) string {
	t.Helper()
	execPath := runGit(t, root, "--exec-path")
	backend := &cgi.Handler{
		Path: filepath.Join(execPath, "git-http-backend"),
		Root: "/git",
		Env:  []string{"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1"},
		// "not our ref" and "not a git repository" are expected in tests.
		Stderr: io.Discard,
	}
	var h http.Handler = backend
	if user != "" {
		h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			u, p, ok := r.BasicAuth()
			if !ok || u != user || p != password {
				w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
				http.Error(w, "unauthorized", http.StatusUnauthorized)
				return
			}
			backend.ServeHTTP(w, r)
		})
	}
	mux := http.NewServeMux()
	mux.Handle("/git/", h)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL + "/git"
}

func readFile(t *testing.T, dir string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "file.txt"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func TestClone(t *testing.T) {
	root := t.TempDir()
	strict := newFixture(t, root, "strict", false)
	open := newFixture(t, root, "open", true)
	base := newGitServer(t, root, "", "")

	tests := []struct {
		name      string
		url       string
		ref       string
		commit    string
		depth     int
		want      string // commit
		content   string
		progress  string // substring of the progress output
		shallowed bool   // history must stay at depth 1
	}{
		{name: "http branch head", url: base + "/strict.git", ref: "refs/heads/main", want: strict.c3, content: "three", shallowed: true},
		{name: "http other branch", url: base + "/strict.git", ref: "refs/heads/feature", want: strict.f1, content: "feature"},
		{name: "http annotated tag", url: base + "/strict.git", ref: "refs/tags/v1", want: strict.c2, content: "two"},
		{name: "http lightweight tag", url: base + "/strict.git", ref: "refs/tags/light", want: strict.c1, content: "one"},
		{name: "http default branch", url: base + "/strict.git", want: strict.c3, content: "three"},
		{name: "http head commit given", url: base + "/strict.git", ref: "refs/heads/main", commit: strict.c3, want: strict.c3, content: "three"},
		{name: "http older commit by deepening", url: base + "/strict.git", ref: "refs/heads/main", commit: strict.c1, want: strict.c1, content: "one", progress: "deepening"},
		{name: "http older commit by sha", url: base + "/open.git", ref: "refs/heads/main", commit: open.c1, want: open.c1, content: "one", progress: "fetching commit", shallowed: true},
		{name: "http older commit default branch", url: base + "/strict.git", commit: strict.c2, want: strict.c2, content: "two"},
		{name: "http full history", url: base + "/strict.git", ref: "refs/heads/main", commit: strict.c1, depth: -1, want: strict.c1, content: "one"},
		{name: "file url branch", url: "file://" + strict.bare, ref: "refs/heads/main", want: strict.c3, content: "three", shallowed: true},
		{name: "file url older commit", url: "file://" + strict.bare, ref: "refs/heads/main", commit: strict.c2, want: strict.c2, content: "two"},
		{name: "plain path tag", url: strict.bare, ref: "refs/tags/v1", want: strict.c2, content: "two"},
		{name: "plain path commit on other branch by sha", url: open.bare, ref: "refs/heads/main", commit: open.f1, want: open.f1, content: "feature"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "src")
			var progress bytes.Buffer
			start := time.Now()
			got, err := Clone(testContext(t), CloneRequest{URL: tt.url, Ref: tt.ref, Commit: tt.commit, Dir: dir, Depth: tt.depth}, &progress)
			if err != nil {
				t.Fatalf("Clone: %v\nprogress:\n%s", err, progress.String())
			}
			t.Logf("cloned in %v", time.Since(start).Round(time.Millisecond))
			if got != tt.want {
				t.Errorf("commit = %s, want %s", got, tt.want)
			}
			if c := readFile(t, dir); c != tt.content {
				t.Errorf("file.txt = %q, want %q", c, tt.content)
			}
			if head := runGit(t, dir, "rev-parse", "HEAD"); head != tt.want {
				t.Errorf("git rev-parse HEAD = %s, want %s", head, tt.want)
			}
			if tt.progress != "" && !strings.Contains(progress.String(), tt.progress) {
				t.Errorf("progress does not mention %q:\n%s", tt.progress, progress.String())
			}
			if tt.shallowed {
				if n := runGit(t, dir, "rev-list", "--count", "HEAD"); n != "1" {
					t.Errorf("history has %s commits, want a depth-1 clone", n)
				}
			}
		})
	}
}

func TestCloneErrors(t *testing.T) {
	root := t.TempDir()
	f := newFixture(t, root, "repo", false)
	newFixture(t, root, "open", true)
	base := newGitServer(t, root, "", "")

	tests := []struct {
		name    string
		req     CloneRequest
		wantErr error
		msg     string
	}{
		{name: "unknown branch", req: CloneRequest{URL: base + "/repo.git", Ref: "refs/heads/nope"}, wantErr: ErrRefNotFound, msg: "refs/heads/nope"},
		{name: "unknown tag file", req: CloneRequest{URL: "file://" + f.bare, Ref: "refs/tags/v9"}, wantErr: ErrRefNotFound, msg: "refs/tags/v9"},
		{name: "unknown repo", req: CloneRequest{URL: base + "/missing.git", Ref: "refs/heads/main"}, wantErr: ErrRepoNotFound},
		{name: "unknown commit deepening", req: CloneRequest{URL: base + "/repo.git", Ref: "refs/heads/main", Commit: strings.Repeat("ab", 20)}, wantErr: ErrCommitNotFound, msg: "not reachable"},
		{name: "unknown commit by sha", req: CloneRequest{URL: base + "/open.git", Ref: "refs/heads/main", Commit: strings.Repeat("cd", 20)}, wantErr: ErrCommitNotFound},
		{name: "short ref", req: CloneRequest{URL: base + "/repo.git", Ref: "main"}, wantErr: ErrInvalidRequest, msg: "refs/heads/"},
		{name: "short commit", req: CloneRequest{URL: base + "/repo.git", Ref: "refs/heads/main", Commit: f.c1[:7]}, wantErr: ErrInvalidRequest},
		{name: "no url", req: CloneRequest{Ref: "refs/heads/main"}, wantErr: ErrInvalidRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.req.Dir = filepath.Join(t.TempDir(), "src")
			_, err := Clone(testContext(t), tt.req, nil)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error %q does not mention %q", err, tt.msg)
			}
			t.Logf("error: %v", err)
		})
	}

	t.Run("dir not empty", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "x"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := Clone(testContext(t), CloneRequest{URL: f.bare, Dir: dir}, nil)
		if !errors.Is(err, ErrInvalidRequest) {
			t.Fatalf("err = %v, want ErrInvalidRequest", err)
		}
	})

	t.Run("canceled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		_, err := Clone(ctx, CloneRequest{URL: base + "/repo.git", Ref: "refs/heads/main", Dir: filepath.Join(t.TempDir(), "src")}, nil)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
	})
}

func TestCloneBasicAuth(t *testing.T) {
	const user, password = "builder", "s3cret-t0ken"
	root := t.TempDir()
	f := newFixture(t, root, "private", false)
	base := newGitServer(t, root, user, password)
	url := base + "/private.git"

	t.Run("right credentials", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "src")
		got, err := Clone(testContext(t), CloneRequest{URL: url, Ref: "refs/heads/main", Commit: f.c2, Dir: dir,
			Credentials: &Credentials{Username: user, Password: password}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got != f.c2 || readFile(t, dir) != "two" {
			t.Fatalf("got %s %q", got, readFile(t, dir))
		}
	})

	t.Run("credentials in url", func(t *testing.T) {
		withCreds := strings.Replace(url, "http://", "http://"+user+":"+password+"@", 1)
		var progress bytes.Buffer
		got, err := Clone(testContext(t), CloneRequest{URL: withCreds, Ref: "refs/heads/main", Dir: filepath.Join(t.TempDir(), "src")}, &progress)
		if err != nil {
			t.Fatal(err)
		}
		if got != f.c3 {
			t.Fatalf("got %s", got)
		}
		if strings.Contains(progress.String(), password) {
			t.Fatalf("progress leaks the password:\n%s", progress.String())
		}
	})

	for _, tt := range []struct {
		name  string
		url   string
		creds *Credentials
	}{
		{name: "wrong password", url: url, creds: &Credentials{Username: user, Password: "wrong-password"}},
		{name: "token only", url: url, creds: &Credentials{Password: "wrong-token"}},
		{name: "none", url: url},
		{name: "wrong password in url", url: strings.Replace(url, "http://", "http://"+user+":wrong-password@", 1)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var progress bytes.Buffer
			_, err := Clone(testContext(t), CloneRequest{URL: tt.url, Ref: "refs/heads/main", Dir: filepath.Join(t.TempDir(), "src"), Credentials: tt.creds}, &progress)
			if !errors.Is(err, ErrAuth) {
				t.Fatalf("err = %v, want ErrAuth", err)
			}
			for _, secret := range []string{"wrong-password", "wrong-token"} {
				if strings.Contains(err.Error(), secret) || strings.Contains(progress.String(), secret) {
					t.Fatalf("error or progress leaks the secret: %v\n%s", err, progress.String())
				}
			}
			t.Logf("error: %v", err)

			_, _, err = ResolveRef(testContext(t), tt.url, Branch, "main", tt.creds, nil)
			if !errors.Is(err, ErrAuth) {
				t.Fatalf("ResolveRef err = %v, want ErrAuth", err)
			}
			if strings.Contains(err.Error(), "wrong-") {
				t.Fatalf("ResolveRef error leaks the secret: %v", err)
			}
		})
	}

	t.Run("resolve with credentials", func(t *testing.T) {
		got, _, err := ResolveRef(testContext(t), url, Tag, "v1", &Credentials{Username: user, Password: password}, nil)
		if err != nil || got != f.c2 {
			t.Fatalf("got %s, %v; want %s", got, err, f.c2)
		}
	})
}

func TestResolveRef(t *testing.T) {
	root := t.TempDir()
	f := newFixture(t, root, "repo", false)
	base := newGitServer(t, root, "", "")

	for _, url := range []string{base + "/repo.git", "file://" + f.bare, f.bare} {
		tests := []struct {
			refType RefType
			name    string
			want    string
			ref     string
			wantErr error
		}{
			{refType: Branch, name: "main", want: f.c3, ref: "refs/heads/main"},
			{refType: Branch, name: "refs/heads/feature", want: f.f1, ref: "refs/heads/feature"},
			{refType: Tag, name: "v1", want: f.c2, ref: "refs/tags/v1"},
			{refType: Tag, name: "light", want: f.c1, ref: "refs/tags/light"},
			{refType: Branch, name: "v1", wantErr: ErrRefNotFound},
			{refType: Tag, name: "main", wantErr: ErrRefNotFound},
			{refType: Branch, name: "nope", wantErr: ErrRefNotFound},
			{refType: Branch, name: "", wantErr: ErrInvalidRequest},
			{refType: "commit", name: "main", wantErr: ErrInvalidRequest},
		}
		for _, tt := range tests {
			t.Run(string(tt.refType)+"/"+tt.name+"/"+strings.SplitN(url, ":", 2)[0], func(t *testing.T) {
				got, ref, err := ResolveRef(testContext(t), url, tt.refType, tt.name, nil, nil)
				if tt.wantErr != nil {
					if !errors.Is(err, tt.wantErr) {
						t.Fatalf("err = %v, want %v", err, tt.wantErr)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				if got != tt.want || ref != tt.ref {
					t.Fatalf("got %s %s, want %s %s", got, ref, tt.want, tt.ref)
				}
			})
		}
	}
}

func TestCloneSubmodules(t *testing.T) {
	root := t.TempDir()
	lib := newFixture(t, root, "lib", false)
	work := t.TempDir()
	runGit(t, work, "init", "-q", "-b", "main")
	commitFile(t, work, "app", "app")
	runGit(t, work, "-c", "protocol.file.allow=always", "submodule", "add", "-q", "file://"+lib.bare, "vendor/lib")
	// Pin the submodule to an older commit than its branch head.
	runGit(t, filepath.Join(work, "vendor/lib"), "checkout", "-q", lib.c2)
	runGit(t, work, "add", "vendor/lib")
	runGit(t, work, "commit", "-q", "-m", "pin lib")
	bare := filepath.Join(root, "app.git")
	runGit(t, root, "clone", "-q", "--bare", work, bare)

	for _, sub := range []bool{false, true} {
		dir := filepath.Join(t.TempDir(), "src")
		if _, err := Clone(testContext(t), CloneRequest{URL: "file://" + bare, Ref: "refs/heads/main", Dir: dir, Submodules: sub}, nil); err != nil {
			t.Fatalf("submodules=%v: %v", sub, err)
		}
		content, err := os.ReadFile(filepath.Join(dir, "vendor/lib/file.txt"))
		switch {
		case sub && (err != nil || string(content) != "two"):
			t.Fatalf("submodule file = %q, %v; want %q", content, err, "two")
		case !sub && err == nil:
			t.Fatalf("submodule checked out without Submodules")
		}
	}
}

func TestScrub(t *testing.T) {
	_, err := newSource("https://user:p%40ss@exa mple.com/x.git", nil, nil)
	if err == nil {
		t.Fatal("want an error for an invalid URL")
	}
	if strings.Contains(err.Error(), "p%40ss") || strings.Contains(err.Error(), "p@ss") {
		t.Fatalf("error leaks the password: %v", err)
	}
	if !errors.Is(err, ErrInvalidURL) {
		t.Fatalf("err = %v, want ErrInvalidURL", err)
	}

	src, err := newSource("https://user:p%40ss@example.com/x.git", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(src.url, "ss") || strings.Contains(src.display, "user") {
		t.Fatalf("url %q / display %q keep the credentials", src.url, src.display)
	}
	wrapped := src.wrap(errors.New("dial https://user:p@ss@example.com failed"), "")
	if strings.Contains(wrapped.Error(), "p@ss") {
		t.Fatalf("wrap leaks the password: %v", wrapped)
	}
}
