package pipeline

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/registry"
	"github.com/berth-dev/berth/store"
)

func TestRefMatcherAndTag(t *testing.T) {
	cases := []struct {
		ref, name, tmpl string
		match           bool
		tag             string
	}{
		{"main", "main", "latest", true, "latest"},
		{"main", "main2", "latest", false, ""},
		{"release-v(?<version>.*)", "release-v1.2", "${version}", true, "1.2"},
		{"release-v(?P<version>.*)", "release-v1.2", "v${version}-final", true, "v1.2-final"},
		{"release-v(?<version>.*)", "xrelease-v1.2", "${version}", false, ""}, // anchored
		{"release-v(?<version>.*)", "release-v1.2/x", "${version}", true, ""}, // matches, but "1.2/x" is no tag
		{"release-v(?<version>.*)", "release-v", "${version}", true, ""},      // empty capture: no tag
		{"v1.2", "v1.2", "stable", true, "stable"},                            // exact wins
		{"feature/.*", "feature/login", "dev", true, "dev"},
	}
	for _, c := range cases {
		m, err := CompileRef(c.ref)
		if err != nil {
			t.Fatalf("%s: %v", c.ref, err)
		}
		vars, ok := m.Match(c.name)
		if ok != c.match {
			t.Fatalf("%s ~ %s: match %v, want %v", c.ref, c.name, ok, c.match)
		}
		if !ok {
			continue
		}
		tag, err := ExpandTag(c.tmpl, vars)
		if c.tag == "" {
			if !errors.Is(err, ErrBadImageTag) {
				t.Fatalf("%s ~ %s → %q: want ErrBadImageTag, got %q %v", c.ref, c.name, c.tmpl, tag, err)
			}
			continue
		}
		if err != nil || tag != c.tag {
			t.Fatalf("%s ~ %s → %q: got %q %v, want %q", c.ref, c.name, c.tmpl, tag, err, c.tag)
		}
	}
}

func TestCheckRule(t *testing.T) {
	ok := func() store.BuildRule {
		return store.BuildRule{SourceType: store.RuleTag, SourceRef: "release-v(?<version>.*)", ImageTag: "${version}"}
	}
	r := ok()
	if err := CheckRule(&r); err != nil {
		t.Fatal(err)
	}
	if r.DockerfileDir != "/" || r.DockerfileName != "Dockerfile" {
		t.Fatalf("defaults: %+v", r)
	}
	bad := map[string]func(*store.BuildRule){
		"type":           func(r *store.BuildRule) { r.SourceType = "COMMIT" },
		"empty ref":      func(r *store.BuildRule) { r.SourceRef = "" },
		"long ref":       func(r *store.BuildRule) { r.SourceRef = strings.Repeat("a", MaxSourceRef+1) },
		"bad regexp":     func(r *store.BuildRule) { r.SourceRef = "release-(" },
		"bad name":       func(r *store.BuildRule) { r.SourceRef = "a..b" },
		"unknown var":    func(r *store.BuildRule) { r.ImageTag = "${name}" },
		"bad tag":        func(r *store.BuildRule) { r.ImageTag = "-x" },
		"dotdot dir":     func(r *store.BuildRule) { r.DockerfileDir = "../etc" },
		"slash name":     func(r *store.BuildRule) { r.DockerfileName = "a/Dockerfile" },
		"build arg name": func(r *store.BuildRule) { r.BuildArgs = map[string]string{"1X": "y"} },
		"target":         func(r *store.BuildRule) { r.Target = "-stage" },
		"platform":       func(r *store.BuildRule) { r.Platforms = []string{"linux"} },
		"dup platform":   func(r *store.BuildRule) { r.Platforms = []string{"linux/amd64", "linux/amd64"} },
	}
	for name, change := range bad {
		r := ok()
		change(&r)
		if err := CheckRule(&r); !errors.Is(err, ErrInvalidRule) {
			t.Errorf("%s: want ErrInvalidRule, got %v", name, err)
		}
	}
	r = ok()
	r.DockerfileDir = "docker//sub/"
	if err := CheckRule(&r); err != nil || r.DockerfileDir != "/docker/sub" {
		t.Fatalf("dir %q %v", r.DockerfileDir, err)
	}
}

func TestBuildCredentials(t *testing.T) {
	c := NewBuildCredentials([]byte("key"))
	user, pw := c.Issue("team/app", time.Minute)
	if repo, ok := c.Verify(user, pw); !ok || repo != "team/app" {
		t.Fatalf("verify: %q %v", repo, ok)
	}
	if _, ok := NewBuildCredentials([]byte("other")).Verify(user, pw); ok {
		t.Fatal("another key verified it")
	}
	if _, ok := c.Verify("admin", pw); ok {
		t.Fatal("another user verified it")
	}
	tampered := strings.Replace(pw, pw[:4], "dGVh", 1)
	if _, ok := c.Verify(user, tampered+"x"); ok {
		t.Fatal("tampered password verified")
	}
	_, old := c.Issue("team/app", -time.Second)
	if _, ok := c.Verify(user, old); ok {
		t.Fatal("expired password verified")
	}

	public := func(name string) bool { return name == "library/busybox" }
	got := BuilderGrant("team/app", []registry.Access{
		{Type: "repository", Name: "team/app", Actions: []string{"pull", "push", "delete"}},
		{Type: "repository", Name: "library/busybox", Actions: []string{"pull", "push"}},
		{Type: "repository", Name: "team/private", Actions: []string{"pull"}},
		{Type: "registry", Name: "catalog", Actions: []string{"*"}},
	}, public)
	want := "team/app:pull,push library/busybox:pull"
	var parts []string
	for _, a := range got {
		parts = append(parts, a.Name+":"+strings.Join(a.Actions, ","))
	}
	if strings.Join(parts, " ") != want {
		t.Fatalf("grant %v, want %s", parts, want)
	}
	if repo, ok := BuilderRepo(BuilderSubject("team/app", "1")); !ok || repo != "team/app" {
		t.Fatal("BuilderRepo")
	}
	if _, ok := BuilderRepo(registry.Subject{Name: BuilderUser + ":team/app"}); ok {
		t.Fatal("a non-internal subject passed as a builder")
	}
}
