package registry

import (
	"strings"
	"testing"

	"github.com/berth-dev/berth/registry/reference"
)

func TestParseRoute(t *testing.T) {
	cases := []struct {
		rest string
		want route
	}{
		{"", route{kind: routeBase}},
		{"_catalog", route{kind: routeCatalog}},
		{"ns/app/tags/list", route{kind: routeTags, name: "ns/app"}},
		{"ns/app/manifests/latest", route{kind: routeManifest, name: "ns/app", ref: "latest"}},
		{"a/b/c/manifests/sha256:x", route{kind: routeManifest, name: "a/b/c", ref: "sha256:x"}},
		{"ns/app/blobs/sha256:x", route{kind: routeBlob, name: "ns/app", ref: "sha256:x"}},
		{"ns/app/blobs/uploads/", route{kind: routeUploadStart, name: "ns/app"}},
		{"ns/app/blobs/uploads", route{kind: routeUploadStart, name: "ns/app"}},
		{"ns/app/blobs/uploads/abc", route{kind: routeUpload, name: "ns/app", ref: "abc"}},
		{"ns/blobs/blobs/uploads/", route{kind: routeUploadStart, name: "ns/blobs"}},
		{"ns/manifests/manifests/x", route{kind: routeManifest, name: "ns/manifests", ref: "x"}},
		{"ns/app/referrers/sha256:x", route{kind: routeReferrers, name: "ns/app", ref: "sha256:x"}},
		{"app/manifests", route{}},
		{"manifests/x", route{}},
		{"ns/app/other/x", route{}},
		{"blobs/uploads/x", route{}},
	}
	for _, c := range cases {
		if got := parseRoute(c.rest); got != c.want {
			t.Errorf("parseRoute(%q) = %+v, want %+v", c.rest, got, c.want)
		}
	}
}

// FuzzParseRoute: whatever the path, a name that passes validation is a
// plain relative path without dot components.
func FuzzParseRoute(f *testing.F) {
	for _, s := range []string{"ns/app/manifests/latest", "../x/blobs/uploads/", "a/../../b/tags/list", "%2e%2e/manifests/x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, rest string) {
		rt := parseRoute(rest)
		if rt.name == "" || !reference.ValidName(rt.name) {
			return
		}
		for _, c := range strings.Split(rt.name, "/") {
			if c == "" || c == "." || c == ".." || strings.ContainsAny(c, "\\%\x00") {
				t.Fatalf("valid name %q has a bad component", rt.name)
			}
		}
	})
}

func TestParseScopes(t *testing.T) {
	got := parseScopes([]string{"repository:ns/app:pull,push repository:other/x:pull", "repository:ns/app:delete", "registry:catalog:*", "repository(plugin):a/b:pull", "garbage", "repository::pull"})
	want := "repository:ns/app:pull,push,delete repository:other/x:pull registry:catalog:* repository:a/b:pull"
	if s := scopeString(got); s != want {
		t.Fatalf("parseScopes = %q, want %q", s, want)
	}
}

func TestParseRange(t *testing.T) {
	cases := []struct {
		h               string
		size            int64
		start, length   int64
		ok, satisfiable bool
	}{
		{"bytes=500-1499", 2048, 500, 1000, true, true},
		{"bytes=500-", 2048, 500, 1548, true, true},
		{"bytes=-500", 2048, 1548, 500, true, true},
		{"bytes=2000-5000", 2048, 2000, 48, true, true},
		{"bytes=500-0", 2048, 0, 0, true, false},
		{"bytes=5000-10000", 2048, 0, 0, true, false},
		{"bytes=0-1,5-6", 2048, 0, 0, false, false},
		{"items=0-1", 2048, 0, 0, false, false},
		{"bytes=-0", 2048, 0, 0, true, false},
		{"bytes=0-", 0, 0, 0, true, false},
	}
	for _, c := range cases {
		s, l, ok, sat := parseRange(c.h, c.size)
		if s != c.start || l != c.length || ok != c.ok || sat != c.satisfiable {
			t.Errorf("parseRange(%q, %d) = %d %d %v %v", c.h, c.size, s, l, ok, sat)
		}
	}
}
