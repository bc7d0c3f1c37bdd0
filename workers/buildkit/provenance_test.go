package buildkit

import (
	"strings"
	"testing"
)

// TestProvenanceAttrs: a build with Provenance asks BuildKit for SLSA v0.2 provenance in mode max, names the
// builder, and records the Git URL without credentials and the commit as BuildKit's vcs metadata.
func TestProvenanceAttrs(t *testing.T) {
	opt, err := solveOpt(BuildRequest{ContextDir: t.TempDir(), ImageRef: "127.0.0.1:5000/ns/app:latest",
		Provenance: &Provenance{BuilderID: "http://127.0.0.1:5000", Source: "https://bot:s3cret@git.example/team/app.git",
			Revision: strings.Repeat("a", 40), ContextDir: "/sub"}})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"attest:provenance":       "mode=max,version=v0.2,builder-id=http://127.0.0.1:5000",
		"vcs:source":              "https://git.example/team/app.git",
		"vcs:revision":            strings.Repeat("a", 40),
		"vcs:localdir:context":    "/sub",
		"vcs:localdir:dockerfile": "/sub",
	}
	for k, v := range want {
		if got := opt.FrontendAttrs[k]; got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	for k, v := range opt.FrontendAttrs {
		if strings.Contains(v, "s3cret") {
			t.Errorf("%s holds the password: %q", k, v)
		}
	}
	if _, err := solveOpt(BuildRequest{ContextDir: t.TempDir(), ImageRef: "r/a:b", Provenance: &Provenance{BuilderID: "a,b"}}); err == nil {
		t.Error("a builder id with a comma (an option separator) was accepted")
	}
	if _, err := solveOpt(BuildRequest{ContextDir: t.TempDir(), ImageRef: "r/a:b", Provenance: &Provenance{Version: "v9"}}); err == nil {
		t.Error("an unknown provenance version was accepted")
	}
	opt, err = solveOpt(BuildRequest{ContextDir: t.TempDir(), ImageRef: "r/a:b"})
	if err != nil || opt.FrontendAttrs["attest:provenance"] != "" {
		t.Errorf("a build without Provenance asks for it: %v %v", opt.FrontendAttrs, err)
	}
}

func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://bot:tok@git.example/a.git": "https://git.example/a.git",
		"https://ghp_token@github.com/a/b":  "https://github.com/a/b",
		"http://git.example:3000/a.git":     "http://git.example:3000/a.git",
		"ssh://git:pw@git.example/a.git":    "ssh://git@git.example/a.git",
		"ssh://git@git.example/a.git":       "ssh://git@git.example/a.git",
		"git@github.com:team/app.git":       "git@github.com:team/app.git",
		"file:///srv/git/app.git":           "file:///srv/git/app.git",
	} {
		if got := RedactURL(in); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", in, got, want)
		}
	}
}
