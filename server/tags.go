package server

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-dev/berth/pipeline"
	"github.com/berth-dev/berth/registry"
	"github.com/berth-dev/berth/store"
)

type vulnCounts struct {
	High    int `json:"high"`
	Medium  int `json:"medium"`
	Low     int `json:"low"`
	Unrated int `json:"unrated"`
}

type tagView struct {
	Tag             string     `json:"tag"`
	Digest          string     `json:"digest"`
	MediaType       string     `json:"media_type"`
	ImageID         string     `json:"image_id"`
	Size            int64      `json:"size"`
	Platforms       []string   `json:"platforms"`
	PushedAt        time.Time  `json:"pushed_at"`
	ScanStatus      string     `json:"scan_status"`
	Vulnerabilities vulnCounts `json:"vulnerabilities"`
	Blocked         bool       `json:"blocked"`
	PullCommand     string     `json:"pull_command"`
	// Signed, SignatureKey (the key id) and SignedByInstance, and Accessories: one version's view only (SPEC
	// §15); lists leave them out rather than read every row's signature.
	Signed           *bool                `json:"signed,omitempty"`
	SignatureKey     string               `json:"signature_key,omitempty"`
	SignedByInstance bool                 `json:"signed_by_instance,omitempty"`
	Accessories      []pipeline.Accessory `json:"accessories,omitempty"`
	// Provenance is read from the version's verified SLSA provenance attestation; HasSBOM says a verified
	// CycloneDX attestation is there (GET …/tags/{tag}/sbom).
	Provenance *pipeline.Provenance `json:"provenance,omitempty"`
	HasSBOM    bool                 `json:"has_sbom,omitempty"`
}

// tagViewer views the versions of one request: their pull commands name the registry as its client reaches it.
func tagViewer(c *gin.Context) func(v *store.ImageVersion) tagView {
	host := RegistryHost(c.Request)
	return func(v *store.ImageVersion) tagView { return viewTag(host, v) }
}

func viewTag(host string, v *store.ImageVersion) tagView {
	return tagView{Tag: v.Tag, Digest: v.Digest, MediaType: v.MediaType, ImageID: v.ImageID, Size: v.Size,
		Platforms: v.Platforms, PushedAt: v.PushedAt, ScanStatus: "NOT_SCANNED",
		PullCommand: "docker pull " + host + "/" + v.Repository + ":" + v.Tag}
}

func (a *api) listTags(c *gin.Context) {
	resp, repo, ok := pageOfRepository(a, c, a.Store.ListImageVersions, tagViewer(c))
	if !ok {
		return
	}
	a.fillScans(c, resp.Items, repo)
	c.JSON(http.StatusOK, resp)
}

func (a *api) tagOr404(c *gin.Context) (*store.ImageVersion, bool) {
	return childOr404(a, c, "tag", "tag", "tags", a.Store.GetImageVersion)
}

func (a *api) getTag(c *gin.Context) {
	if v, ok := a.tagOr404(c); ok {
		views := []tagView{tagViewer(c)(v)}
		a.fillScans(c, views, v.Repository)
		a.fillSignatures(c, &views[0], v.Repository)
		c.JSON(http.StatusOK, views[0])
	}
}

// fillSignatures adds whether the version is signed and its accessories (signatures, attestations, SBOMs).
func (a *api) fillSignatures(c *gin.Context, v *tagView, repo string) {
	if a.Scans == nil {
		return
	}
	ctx := c.Request.Context()
	s, err := a.Scans.Signature(ctx, repo, v.Digest)
	if err != nil {
		logger(c).Warn("signature of a version", "repository", repo, "digest", v.Digest, "err", err)
		return
	}
	v.Signed, v.SignatureKey, v.SignedByInstance = &s.Signed, s.KeyID, s.Instance
	if v.Accessories, err = a.Scans.Accessories(ctx, repo, v.Digest); err != nil {
		logger(c).Warn("accessories of a version", "repository", repo, "digest", v.Digest, "err", err)
	}
	atts, err := a.Scans.Attestations(ctx, repo, v.Digest)
	if err != nil {
		logger(c).Warn("attestations of a version", "repository", repo, "digest", v.Digest, "err", err)
	}
	v.Provenance, v.HasSBOM = pipeline.ProvenanceOf(atts), pipeline.SBOMOf(atts) != nil
}

// getTagSBOM serves the version's SBOM: the CycloneDX predicate of its verified attestation, as a download.
func (a *api) getTagSBOM(c *gin.Context) {
	v, ok := a.tagOr404(c)
	if !ok {
		return
	}
	if a.Scans == nil {
		fail(c, errf(http.StatusServiceUnavailable, CodeUnavailable, "signatures cannot be read: the scan service is not running"))
		return
	}
	atts, err := a.Scans.Attestations(c.Request.Context(), v.Repository, v.Digest)
	if err != nil {
		fail(c, err)
		return
	}
	sbom := pipeline.SBOMOf(atts)
	if sbom == nil {
		fail(c, notFound("%s:%s has no SBOM: no CycloneDX attestation (cosign attest --type cyclonedx) signed by the instance key or a trusted key", v.Repository, v.Tag))
		return
	}
	name := strings.NewReplacer("/", "_", ":", "_").Replace(v.Repository + "_" + v.Tag)
	c.Header("Content-Disposition", `attachment; filename="`+name+`.cdx.json"`)
	c.Data(http.StatusOK, "application/vnd.cyclonedx+json", sbom)
}

func (a *api) deleteTag(c *gin.Context) {
	v, ok := a.tagOr404(c)
	if !ok {
		return
	}
	if err := pipeline.DeleteTag(c.Request.Context(), a.Registry, a.Store, v.Repository, v.Tag); err != nil {
		fail(c, tagError(err))
		return
	}
	c.Status(http.StatusNoContent)
}

// tagError answers the registry's refusal of an immutable tag with 409 TAG_IMMUTABLE.
func tagError(err error) error {
	if registry.IsTagImmutable(err) {
		var e *registry.Error
		errors.As(err, &e)
		return errf(http.StatusConflict, CodeTagImmutable, "%s", e.Message)
	}
	return err
}

func (a *api) deleteManifest(c *gin.Context) {
	r, ok := a.repositoryOr404(c)
	if !ok {
		return
	}
	dgst := c.Param("digest")
	if a.Registry == nil {
		fail(c, errf(http.StatusServiceUnavailable, CodeUnavailable, "registry unavailable"))
		return
	}
	err := a.Registry.DeleteManifest(c.Request.Context(), r.FullName, dgst)
	if registry.IsTagImmutable(err) {
		fail(c, tagError(err))
		return
	}
	switch registry.ErrorCode(err) {
	case "":
	case registry.CodeManifestUnknown:
		fail(c, notFound("manifest %s is not in %s", dgst, r.FullName))
		return
	case registry.CodeDigestInvalid, registry.CodeNameInvalid:
		fail(c, badRequest("%q is not a valid digest (e.g. sha256:<64 hex>)", dgst))
		return
	default:
		fail(c, err)
		return
	}
	if err := a.Store.DeleteImageVersionsByDigest(c.Request.Context(), r.FullName, dgst); err != nil {
		fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

// manifestOf reads the manifest a tag points at.
func (a *api) manifestOf(c *gin.Context, v *store.ImageVersion) (string, []byte, bool) {
	if a.Registry == nil {
		fail(c, errf(http.StatusServiceUnavailable, CodeUnavailable, "registry unavailable"))
		return "", nil, false
	}
	mt, payload, _, err := a.Registry.GetManifest(c.Request.Context(), v.Repository, v.Digest)
	if err != nil {
		if registry.ErrorCode(err) == registry.CodeManifestUnknown {
			fail(c, notFound("the manifest of %s:%s is gone from the registry", v.Repository, v.Tag))
		} else {
			fail(c, err)
		}
		return "", nil, false
	}
	return mt, payload, true
}

func (a *api) getTagManifest(c *gin.Context) {
	v, ok := a.tagOr404(c)
	if !ok {
		return
	}
	mt, payload, ok := a.manifestOf(c, v)
	if !ok {
		return
	}
	c.Header("Docker-Content-Digest", v.Digest)
	c.Data(http.StatusOK, mt, payload)
}

type layerView struct {
	Digest    string `json:"digest"`
	MediaType string `json:"media_type"`
	Size      int64  `json:"size"`
	CreatedBy string `json:"created_by"`
	Empty     bool   `json:"empty"`
}

// getTagLayers lists a version's layers with the history entries that made them (empty layers included).
// For an index, ?platform=os/arch picks the child (default: the first real platform).
func (a *api) getTagLayers(c *gin.Context) {
	v, ok := a.tagOr404(c)
	if !ok {
		return
	}
	_, payload, ok := a.manifestOf(c, v)
	if !ok {
		return
	}
	var m struct {
		Config    *ocispec.Descriptor  `json:"config"`
		Layers    []ocispec.Descriptor `json:"layers"`
		Manifests []ocispec.Descriptor `json:"manifests"`
	}
	if err := json.Unmarshal(payload, &m); err != nil {
		fail(c, err)
		return
	}
	if m.Config == nil && len(m.Manifests) > 0 {
		want := c.Query("platform")
		var child *ocispec.Descriptor
		for i, d := range m.Manifests {
			if d.Platform == nil || d.Platform.OS == "unknown" {
				continue
			}
			p := d.Platform.OS + "/" + d.Platform.Architecture
			if want == "" || want == p || want == p+"/"+d.Platform.Variant {
				child = &m.Manifests[i]
				break
			}
		}
		if child == nil {
			fail(c, notFound("no platform %q in this index; see the tag's platforms", want))
			return
		}
		_, cp, _, err := a.Registry.GetManifest(c.Request.Context(), v.Repository, child.Digest.String())
		if err != nil {
			fail(c, err)
			return
		}
		m.Config, m.Layers = nil, nil
		if err := json.Unmarshal(cp, &m); err != nil {
			fail(c, err)
			return
		}
	}
	if m.Config == nil {
		c.JSON(http.StatusOK, gin.H{"items": []layerView{}, "total": 0})
		return
	}
	var img ocispec.Image
	if rc, _, err := a.Registry.OpenBlob(c.Request.Context(), v.Repository, m.Config.Digest.String()); err == nil {
		_ = json.NewDecoder(io.LimitReader(rc, 8<<20)).Decode(&img)
		rc.Close()
	}
	out := layersWithHistory(m.Layers, img.History)
	c.JSON(http.StatusOK, gin.H{"items": out, "total": len(out)})
}

func layersWithHistory(layers []ocispec.Descriptor, history []ocispec.History) []layerView {
	out := []layerView{}
	li := 0
	for _, h := range history {
		if h.EmptyLayer {
			out = append(out, layerView{CreatedBy: h.CreatedBy, Empty: true})
			continue
		}
		if li < len(layers) {
			l := layers[li]
			out = append(out, layerView{Digest: l.Digest.String(), MediaType: l.MediaType, Size: l.Size, CreatedBy: h.CreatedBy})
			li++
		}
	}
	for ; li < len(layers); li++ {
		l := layers[li]
		out = append(out, layerView{Digest: l.Digest.String(), MediaType: l.MediaType, Size: l.Size})
	}
	return out
}
