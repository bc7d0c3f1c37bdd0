package pipeline

import "testing"

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
