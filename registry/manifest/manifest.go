// Package manifest parses and checks the manifest formats the registry
// accepts: OCI image manifest and index (artifacts included) and Docker
// schema2 manifest and manifest list. It only reads what the registry needs
// (references, subject, artifact type); the stored bytes are never rewritten.
package manifest

import (
	"encoding/json"
	"fmt"
	"mime"
	"strings"

	"github.com/berth-dev/berth/registry/reference"
)

// Media types.
const (
	MediaTypeOCIManifest          = "application/vnd.oci.image.manifest.v1+json"
	MediaTypeOCIIndex             = "application/vnd.oci.image.index.v1+json"
	MediaTypeDockerManifest       = "application/vnd.docker.distribution.manifest.v2+json"
	MediaTypeDockerManifestList   = "application/vnd.docker.distribution.manifest.list.v2+json"
	MediaTypeDockerSchema1        = "application/vnd.docker.distribution.manifest.v1+json"
	MediaTypeDockerSchema1Signed  = "application/vnd.docker.distribution.manifest.v1+prettyjws"
	MediaTypeOCIArtifactManifest  = "application/vnd.oci.artifact.manifest.v1+json"
	MediaTypeOCIEmptyJSON         = "application/vnd.oci.empty.v1+json"
	MediaTypeDockerForeignLayer   = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
	mediaTypeOCINondistributable  = "application/vnd.oci.image.layer.nondistributable."
	mediaTypeJSON                 = "application/json"
	mediaTypeOctetStream          = "application/octet-stream"
	mediaTypeDockerSchema1Generic = "application/vnd.docker.distribution.manifest.v1"
)

// MaxSize is the largest manifest accepted (4 MiB, as distribution and the
// OCI spec's recommended minimum).
const MaxSize = 4 << 20

// Supported reports whether mt is a manifest media type we store.
func Supported(mt string) bool {
	switch mt {
	case MediaTypeOCIManifest, MediaTypeOCIIndex, MediaTypeDockerManifest, MediaTypeDockerManifestList:
		return true
	}
	return false
}

// IsIndex reports whether mt is an index / manifest list.
func IsIndex(mt string) bool { return mt == MediaTypeOCIIndex || mt == MediaTypeDockerManifestList }

// Descriptor is a content descriptor.
type Descriptor struct {
	MediaType    string            `json:"mediaType"`
	Digest       string            `json:"digest"`
	Size         int64             `json:"size"`
	ArtifactType string            `json:"artifactType,omitempty"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	URLs         []string          `json:"urls,omitempty"`
	Platform     *Platform         `json:"platform,omitempty"`
}

// Platform of an index entry.
type Platform struct {
	Architecture string `json:"architecture"`
	OS           string `json:"os"`
	Variant      string `json:"variant,omitempty"`
}

// Manifest is the part of a manifest the registry reads.
type Manifest struct {
	SchemaVersion int               `json:"schemaVersion"`
	MediaType     string            `json:"mediaType,omitempty"`
	ArtifactType  string            `json:"artifactType,omitempty"`
	Config        *Descriptor       `json:"config,omitempty"`
	Layers        []Descriptor      `json:"layers,omitempty"`
	Manifests     []Descriptor      `json:"manifests,omitempty"`
	Subject       *Descriptor       `json:"subject,omitempty"`
	Annotations   map[string]string `json:"annotations,omitempty"`

	// Resolved is the media type the manifest is stored and served with.
	Resolved string `json:"-"`
	// SubjectDigest is the parsed subject digest, when there is a subject.
	SubjectDigest reference.Digest `json:"-"`
}

// Error is a manifest that cannot be accepted.
type Error struct {
	Unsupported bool // media type we do not support (vs. malformed)
	Reason      string
}

func (e *Error) Error() string { return e.Reason }

func invalid(format string, a ...any) error {
	return &Error{Reason: fmt.Sprintf(format, a...)}
}

// BaseMediaType strips parameters and lowercases a Content-Type value.
func BaseMediaType(ct string) string {
	if ct == "" {
		return ""
	}
	if mt, _, err := mime.ParseMediaType(ct); err == nil {
		return mt
	}
	base, _, _ := strings.Cut(ct, ";")
	return strings.ToLower(strings.TrimSpace(base))
}

// Parse checks payload as a manifest sent with the Content-Type contentType
// and resolves the media type it is stored with.
func Parse(contentType string, payload []byte) (*Manifest, error) {
	ct := BaseMediaType(contentType)
	if strings.HasPrefix(ct, mediaTypeDockerSchema1Generic) || ct == MediaTypeOCIArtifactManifest {
		return nil, &Error{Unsupported: true, Reason: fmt.Sprintf("manifest media type %q is not supported", ct)}
	}
	var m Manifest
	if err := json.Unmarshal(payload, &m); err != nil {
		return nil, invalid("manifest is not valid JSON: %v", err)
	}
	if m.SchemaVersion != 2 {
		if m.SchemaVersion == 1 {
			return nil, &Error{Unsupported: true, Reason: "Docker schema1 manifests are not supported"}
		}
		return nil, invalid("schemaVersion must be 2, got %d", m.SchemaVersion)
	}
	switch {
	case Supported(ct):
		if m.MediaType != "" && m.MediaType != ct {
			return nil, invalid("mediaType %q does not match Content-Type %q", m.MediaType, ct)
		}
		m.Resolved = ct
	case ct == "" || ct == mediaTypeJSON || ct == mediaTypeOctetStream:
		switch {
		case Supported(m.MediaType):
			m.Resolved = m.MediaType
		case m.MediaType != "":
			return nil, &Error{Unsupported: true, Reason: fmt.Sprintf("manifest media type %q is not supported", m.MediaType)}
		case m.Manifests != nil && m.Config == nil:
			m.Resolved = MediaTypeOCIIndex
		case m.Config != nil:
			m.Resolved = MediaTypeOCIManifest
		default:
			return nil, invalid("cannot tell the manifest media type: set Content-Type or mediaType")
		}
	default:
		return nil, &Error{Unsupported: true, Reason: fmt.Sprintf("manifest media type %q is not supported", ct)}
	}
	if IsIndex(m.Resolved) {
		if m.Config != nil || m.Layers != nil {
			return nil, invalid("an index has no config or layers")
		}
		for i, d := range m.Manifests {
			if err := checkDescriptor(d); err != nil {
				return nil, invalid("manifests[%d]: %v", i, err)
			}
		}
	} else {
		if m.Manifests != nil {
			return nil, invalid("an image manifest has no manifests list")
		}
		if m.Config == nil {
			return nil, invalid("config descriptor is missing")
		}
		if err := checkDescriptor(*m.Config); err != nil {
			return nil, invalid("config: %v", err)
		}
		for i, d := range m.Layers {
			if err := checkDescriptor(d); err != nil {
				return nil, invalid("layers[%d]: %v", i, err)
			}
		}
	}
	if m.Subject != nil {
		if err := checkDescriptor(*m.Subject); err != nil {
			return nil, invalid("subject: %v", err)
		}
		m.SubjectDigest, _ = reference.Parse(m.Subject.Digest)
	}
	return &m, nil
}

func checkDescriptor(d Descriptor) error {
	if _, err := reference.Parse(d.Digest); err != nil {
		return fmt.Errorf("digest %q: %w", d.Digest, err)
	}
	if d.Size < 0 {
		return fmt.Errorf("negative size")
	}
	return nil
}

// Distributable reports whether a layer must be present in the registry
// (non-distributable / foreign layers live elsewhere).
func Distributable(d Descriptor) bool {
	return !strings.HasPrefix(d.MediaType, mediaTypeOCINondistributable) && d.MediaType != MediaTypeDockerForeignLayer
}

// BlobRefs returns the blobs an image manifest needs (config and
// distributable layers). An index needs none.
func (m *Manifest) BlobRefs() []reference.Digest {
	if IsIndex(m.Resolved) {
		return nil
	}
	out := make([]reference.Digest, 0, len(m.Layers)+1)
	if m.Config != nil {
		if d, err := reference.Parse(m.Config.Digest); err == nil {
			out = append(out, d)
		}
	}
	for _, l := range m.Layers {
		if !Distributable(l) {
			continue
		}
		if d, err := reference.Parse(l.Digest); err == nil {
			out = append(out, d)
		}
	}
	return out
}

// ManifestRefs returns the child manifests of an index.
func (m *Manifest) ManifestRefs() []reference.Digest {
	out := make([]reference.Digest, 0, len(m.Manifests))
	for _, c := range m.Manifests {
		if d, err := reference.Parse(c.Digest); err == nil {
			out = append(out, d)
		}
	}
	return out
}

// ReferrerDescriptor is the descriptor listed by the referrers API for this
// manifest: artifactType falls back to the config media type for images.
func (m *Manifest) ReferrerDescriptor(dg reference.Digest, size int64) Descriptor {
	at := m.ArtifactType
	if at == "" && !IsIndex(m.Resolved) && m.Config != nil {
		at = m.Config.MediaType
	}
	return Descriptor{
		MediaType:    m.Resolved,
		Digest:       dg.String(),
		Size:         size,
		ArtifactType: at,
		Annotations:  m.Annotations,
	}
}
