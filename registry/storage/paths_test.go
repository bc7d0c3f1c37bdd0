package storage

import (
	"strings"
	"testing"

	"github.com/berth-dev/berth/registry/reference"
)

func TestPathFor(t *testing.T) {
	dg := reference.MustParse("sha256:" + strings.Repeat("ab", 32))
	good := map[pathSpec]string{
		blobDataPathSpec{digest: dg}:                                   "/blobs/sha256/ab/" + dg.Hex() + "/data",
		layerLinkPathSpec{name: "ns/app", digest: dg}:                  "/repositories/ns/app/_layers/sha256/" + dg.Hex() + "/link",
		manifestRevisionLinkPathSpec{name: "ns/app", digest: dg}:       "/repositories/ns/app/_manifests/revisions/sha256/" + dg.Hex() + "/link",
		manifestTagCurrentPathSpec{name: "ns/app", tag: "v1.0"}:        "/repositories/ns/app/_manifests/tags/v1.0/current/link",
		referrerLinkPathSpec{name: "a", subject: dg, referrer: dg}:     "/repositories/a/_referrers/sha256/" + dg.Hex() + "/sha256/" + dg.Hex() + "/link",
		uploadDataPathSpec{id: "0e8a3b6c-1f2d-4c5e-9a7b-123456789abc"}: "/uploads/0e8a3b6c-1f2d-4c5e-9a7b-123456789abc/data",
	}
	for spec, want := range good {
		got, err := pathFor(spec)
		if err != nil || got != want {
			t.Errorf("pathFor(%#v) = %q, %v; want %q", spec, got, err, want)
		}
	}
	bad := []pathSpec{
		blobDataPathSpec{},
		layerLinkPathSpec{name: "../x", digest: dg},
		layerLinkPathSpec{name: "a/../../b", digest: dg},
		manifestTagCurrentPathSpec{name: "ns/app", tag: "../x"},
		manifestTagCurrentPathSpec{name: "ns/app", tag: ".."},
		manifestTagPathSpec{name: "NS/app", tag: "v1"},
		uploadDataPathSpec{id: "../../etc"},
		uploadDataPathSpec{id: "0E8A3B6C-1F2D-4C5E-9A7B-123456789ABC"},
		uploadHashStatePathSpec{id: "0e8a3b6c-1f2d-4c5e-9a7b-123456789abc", alg: "md5"},
		referrersSubjectPathSpec{name: "a"},
	}
	for _, spec := range bad {
		if p, err := pathFor(spec); err == nil {
			t.Errorf("pathFor(%#v) = %q, want an error", spec, p)
		}
	}
}
