package pipeline

import (
	"strings"
	"testing"
)

func TestIsBuildCache(t *testing.T) {
	cases := map[string]bool{
		`{"schemaVersion":2,"config":{"mediaType":"application/vnd.buildkit.cacheconfig.v0","digest":"sha256:1","size":1},"layers":[]}`: true,
		`{"schemaVersion":2,"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:1","size":1}}`:            false,
		`{"schemaVersion":2,"manifests":[]}`: false,
		`not json`:                           false,
	}
	for payload, want := range cases {
		if got := isBuildCache([]byte(payload)); got != want {
			t.Errorf("isBuildCache(%s) = %v, want %v", payload, got, want)
		}
	}
}

func TestIsAccessoryTag(t *testing.T) {
	hex := strings.Repeat("ab", 32)
	for tag, want := range map[string]bool{
		"sha256-" + hex + ".sig":  true,
		"sha256-" + hex + ".att":  true,
		"sha256-" + hex + ".sbom": true,
		"sha256-" + hex:           false,
		"sha256-" + hex + ".sig2": false,
		"sha256-abc.sig":          false,
		"v1.sig":                  false,
		"latest":                  false,
	} {
		if got := IsAccessoryTag(tag); got != want {
			t.Errorf("IsAccessoryTag(%q) = %v, want %v", tag, got, want)
		}
	}
}
