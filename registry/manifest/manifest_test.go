package manifest

import (
	"strings"
	"testing"
)

const (
	cfg   = `{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:` + h64 + `","size":2}`
	h64   = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	h64b  = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	layer = `{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:` + h64b + `","size":3}`
)

func TestParseResolvesMediaType(t *testing.T) {
	img := `{"schemaVersion":2,"config":` + cfg + `,"layers":[` + layer + `]}`
	imgTyped := `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":` + cfg + `,"layers":[]}`
	idx := `{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:` + h64 + `","size":5}]}`
	cases := []struct {
		ct, body, want string
		bad            bool
	}{
		{"application/vnd.oci.image.manifest.v1+json", img, MediaTypeOCIManifest, false},
		{"application/vnd.oci.image.manifest.v1+json; charset=utf-8", img, MediaTypeOCIManifest, false},
		{"", imgTyped, MediaTypeOCIManifest, false},
		{"application/json", img, MediaTypeOCIManifest, false},
		{"", idx, MediaTypeOCIIndex, false},
		{"application/vnd.docker.distribution.manifest.v2+json", img, MediaTypeDockerManifest, false},
		{"application/vnd.docker.distribution.manifest.list.v2+json", idx, MediaTypeDockerManifestList, false},
		{"application/vnd.oci.image.index.v1+json", imgTyped, "", true},  // field disagrees
		{"application/vnd.oci.image.index.v1+json", img, "", true},       // index with config
		{"application/vnd.oci.image.manifest.v1+json", idx, "", true},    // manifest without config
		{"application/x-foo", img, "", true},                             // unknown type
		{"application/vnd.oci.artifact.manifest.v1+json", img, "", true}, // withdrawn artifact manifest
		{"", `{"schemaVersion":1,"name":"x"}`, "", true},
		{"", `{"schemaVersion":2}`, "", true},
		{"", `[]`, "", true},
		{"", strings.Replace(img, h64b, "../../etc", 1), "", true},
		{"", strings.Replace(img, `"size":3`, `"size":-1`, 1), "", true},
	}
	for i, c := range cases {
		m, err := Parse(c.ct, []byte(c.body))
		if c.bad {
			if err == nil {
				t.Errorf("%d: accepted %s", i, c.body)
			}
			continue
		}
		if err != nil || m.Resolved != c.want {
			t.Errorf("%d: Parse = %v, %v; want %s", i, m, err, c.want)
		}
	}
}

func TestRefsAndReferrer(t *testing.T) {
	nd := `{"mediaType":"application/vnd.oci.image.layer.nondistributable.v1.tar+gzip","digest":"sha256:` + strings.Repeat("c", 64) + `","size":9,"urls":["https://example.com/x"]}`
	body := `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":` + cfg + `,"layers":[` + layer + `,` + nd + `],"subject":{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:` + strings.Repeat("d", 64) + `","size":1},"annotations":{"k":"v"}}`
	m, err := Parse("", []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	refs := m.BlobRefs()
	if len(refs) != 2 || refs[0].Hex() != h64 || refs[1].Hex() != h64b {
		t.Fatalf("BlobRefs %v (non-distributable layers are not required)", refs)
	}
	if m.SubjectDigest.Hex() != strings.Repeat("d", 64) {
		t.Fatalf("subject %v", m.SubjectDigest)
	}
	d := m.ReferrerDescriptor(refs[0], 42)
	if d.ArtifactType != "application/vnd.oci.image.config.v1+json" || d.Size != 42 || d.Annotations["k"] != "v" || d.MediaType != MediaTypeOCIManifest {
		t.Fatalf("referrer descriptor %+v", d)
	}
}

func FuzzParse(f *testing.F) {
	f.Add("", []byte(`{"schemaVersion":2,"config":`+cfg+`}`))
	f.Add("application/vnd.oci.image.index.v1+json", []byte(`{"schemaVersion":2,"manifests":[]}`))
	f.Fuzz(func(t *testing.T, ct string, body []byte) {
		m, err := Parse(ct, body)
		if err == nil {
			if !Supported(m.Resolved) {
				t.Fatalf("resolved unsupported type %q", m.Resolved)
			}
			_ = m.BlobRefs()
			_ = m.ManifestRefs()
		}
	})
}
