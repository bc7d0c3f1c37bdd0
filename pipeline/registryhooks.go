package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-dev/berth/policies/signature"
	"github.com/berth-dev/berth/registry"
	"github.com/berth-dev/berth/store"
)

// Content is the part of the registry the hooks read back.
type Content interface {
	GetManifest(ctx context.Context, name, reference string) (mediaType string, payload []byte, dgst string, err error)
	OpenBlob(ctx context.Context, name, dgst string) (io.ReadCloser, int64, error)
}

// RegistryHooks connect the registry to Berth's metadata: repositories created on push, image versions
// recorded, push events emitted.
type RegistryHooks struct {
	Store  store.Store
	Queue  Enqueuer
	Logger *slog.Logger
	// Blocked, when set, refuses pulls of blocked images (the security policy).
	Blocked func(ctx context.Context, repo, digest string) error
	// MayPush, when set, says whether subj may push to repo. A signing client (cosign, notation) whose user
	// may push there reads an image that require_signature alone blocks: cosign sign reads the manifest it
	// signs (with a pull-only token), and such a user could replace the image anyway. Other clients of the
	// same user (docker pull) are refused; vulnerability blocks hold for everybody.
	MayPush func(ctx context.Context, subj registry.Subject, repo string) bool
	// AccessoriesChanged, when set, is called when a signature, attestation or SBOM is pushed or deleted (the
	// gate forgets its verdicts: a signature pushed later unblocks a require_signature image).
	AccessoriesChanged func()

	content atomic.Pointer[Content]
}

var _ registry.Hooks = (*RegistryHooks)(nil)

// SetContent gives the hooks the registry they serve (made after the hooks themselves).
func (h *RegistryHooks) SetContent(c Content) { h.content.Store(&c) }

func splitRepo(name string) (ns, repo string, err error) {
	ns, repo, ok := strings.Cut(name, "/")
	if !ok || strings.Contains(repo, "/") {
		return "", "", registry.ErrNameInvalid(fmt.Sprintf(
			"repository name %q is not namespace/name: Berth repositories have exactly two path segments", name))
	}
	return ns, repo, nil
}

// EnsureRepository creates ns/repo on first push when the namespace allows it (SPEC §1).
func (h *RegistryHooks) EnsureRepository(ctx context.Context, subj registry.Subject, name string) error {
	ns, repo, err := splitRepo(name)
	if err != nil {
		return err
	}
	if _, err := h.Store.GetRepository(ctx, ns, repo); err == nil {
		return nil
	} else if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	n, err := h.Store.GetNamespace(ctx, ns)
	if errors.Is(err, store.ErrNotFound) {
		return registry.ErrNameUnknown(fmt.Sprintf("namespace %q does not exist; create it first (POST /api/v1/namespaces)", ns))
	}
	if err != nil {
		return err
	}
	if !n.AutoCreateRepo {
		return registry.ErrNameUnknown(fmt.Sprintf("repository %s does not exist and namespace %s has auto_create_repo off; "+
			"create the repository first (POST /api/v1/namespaces/%s/repositories)", name, ns, ns))
	}
	if err := store.ValidateRepositoryName(repo); err != nil {
		return registry.ErrNameInvalid(err.Error())
	}
	err = h.Store.CreateRepository(ctx, &store.Repository{Namespace: ns, Name: repo, AccountID: n.AccountID,
		Visibility: n.DefaultVisibility, Origin: store.OriginPush})
	if err != nil && !errors.Is(err, store.ErrAlreadyExists) {
		return err
	}
	if err == nil {
		h.log().Info("repository created by push", "repository", name, "user", subj.Name, "visibility", n.DefaultVisibility)
	}
	return nil
}

// ManifestPushed records the image version of a push by tag and emits its push event.
func (h *RegistryHooks) ManifestPushed(ctx context.Context, ev registry.ManifestEvent) error {
	if IsAccessoryTag(ev.Tag) || (ev.Tag == "" && AccessoryKind(ev.Payload) != "") {
		h.accessoriesChanged()
	}
	if ev.Tag == "" || isBuildCache(ev.Payload) || IsAccessoryTag(ev.Tag) {
		// A BuildKit registry cache (…:buildcache) or a cosign signature, attestation or SBOM of an image
		// (sha256-<digest>.sig|.att|.sbom) is no image version: nothing to list, scan, announce or retain.
		return nil
	}
	ns, repo, err := splitRepo(ev.Repository)
	if err != nil {
		return err
	}
	v := &store.ImageVersion{Repository: ev.Repository, Tag: ev.Tag, Digest: ev.Digest, MediaType: ev.MediaType, PushedAt: ev.PushedAt.UTC()}
	if err := h.describe(ctx, ev.Repository, ev.Payload, v); err != nil {
		h.log().Warn("describe pushed image", "repository", ev.Repository, "tag", ev.Tag, "err", err)
	}
	if err := h.Store.PutImageVersion(ctx, v); err != nil {
		return fmt.Errorf("record image version: %w", err)
	}
	if h.Queue == nil {
		return nil
	}
	return EnqueuePushEvent(ctx, h.Queue, PushEvent{Namespace: ns, Repo: repo, Tag: ev.Tag, Digest: ev.Digest, PushedAt: v.PushedAt})
}

// IsAccessoryTag reports whether tag names an accessory of another image (SPEC §15), not an image version: the
// tag cosign gives what it attaches to an image by tag, sha256-<hex digest>.sig, .att or .sbom.
func IsAccessoryTag(tag string) bool {
	_, _, ok := signature.SubjectOf(tag)
	return ok
}

// accessoryTags are the tags of an image's accessories, by suffix, and the kind of each.
var accessoryTags = []struct{ suffix, kind string }{
	{signature.SuffixSignature, KindSignature}, {signature.SuffixAttestation, KindAttestation}, {signature.SuffixSBOM, KindSBOM},
}

// BuildCacheConfigType is the config media type of a BuildKit registry cache manifest.
const BuildCacheConfigType = "application/vnd.buildkit.cacheconfig.v0"

func isBuildCache(payload []byte) bool {
	var m struct {
		Config struct {
			MediaType string `json:"mediaType"`
		} `json:"config"`
	}
	return json.Unmarshal(payload, &m) == nil && m.Config.MediaType == BuildCacheConfigType
}

// describe fills ImageID, Size and Platforms from the manifest (and its config, or its children for an index).
func (h *RegistryHooks) describe(ctx context.Context, repo string, payload []byte, v *store.ImageVersion) error {
	var m struct {
		MediaType string               `json:"mediaType"`
		Config    *ocispec.Descriptor  `json:"config"`
		Layers    []ocispec.Descriptor `json:"layers"`
		Manifests []ocispec.Descriptor `json:"manifests"`
	}
	if err := json.Unmarshal(payload, &m); err != nil {
		return err
	}
	if m.Config != nil {
		v.ImageID = m.Config.Digest.String()
		v.Size = m.Config.Size
		for _, l := range m.Layers {
			v.Size += l.Size
		}
		if p := h.platformOf(ctx, repo, *m.Config); p != "" {
			v.Platforms = []string{p}
		}
		return nil
	}
	c := h.content.Load()
	var configs []string // of the platform images
	for _, d := range m.Manifests {
		if d.Platform != nil {
			if d.Platform.OS == "unknown" { // attestation manifests from BuildKit: not part of the image
				continue
			}
			p := d.Platform.OS + "/" + d.Platform.Architecture
			if d.Platform.Variant != "" {
				p += "/" + d.Platform.Variant
			}
			v.Platforms = append(v.Platforms, p)
		}
		v.Size += d.Size
		if c == nil {
			continue
		}
		if _, child, _, err := (*c).GetManifest(ctx, repo, d.Digest.String()); err == nil {
			var cm struct {
				Config ocispec.Descriptor   `json:"config"`
				Layers []ocispec.Descriptor `json:"layers"`
			}
			if json.Unmarshal(child, &cm) == nil {
				v.Size += cm.Config.Size
				for _, l := range cm.Layers {
					v.Size += l.Size
				}
				configs = append(configs, cm.Config.Digest.String())
			}
		}
	}
	// A one-platform index (a signed build: BuildKit adds its attestation beside the image) has the ImageId of
	// its one image, as docker shows after a pull.
	if len(configs) == 1 && len(v.Platforms) <= 1 {
		v.ImageID = configs[0]
	}
	return nil
}

func (h *RegistryHooks) platformOf(ctx context.Context, repo string, cfg ocispec.Descriptor) string {
	c := h.content.Load()
	if c == nil || cfg.Size > 1<<20 {
		return ""
	}
	rc, _, err := (*c).OpenBlob(ctx, repo, cfg.Digest.String())
	if err != nil {
		return ""
	}
	defer rc.Close()
	var img ocispec.Image
	if json.NewDecoder(io.LimitReader(rc, 1<<20)).Decode(&img) != nil || img.OS == "" {
		return ""
	}
	p := img.OS + "/" + img.Architecture
	if img.Variant != "" {
		p += "/" + img.Variant
	}
	return p
}

// ManifestDeleted forgets every tag that pointed at the deleted manifest, and deletes its accessories.
func (h *RegistryHooks) ManifestDeleted(ctx context.Context, name, dgst string) error {
	if err := h.Store.DeleteImageVersionsByDigest(ctx, name, dgst); err != nil {
		return err
	}
	return h.dropAccessories(ctx, name, dgst)
}

func (h *RegistryHooks) accessoriesChanged() {
	if h.AccessoriesChanged != nil {
		h.AccessoriesChanged()
	}
}

// TagDeleted forgets the tag.
func (h *RegistryHooks) TagDeleted(ctx context.Context, name, tag string) error {
	if IsAccessoryTag(tag) {
		h.accessoriesChanged()
		return nil
	}
	v, err := h.Store.GetImageVersion(ctx, name, tag)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	err = h.Store.DeleteImageVersion(ctx, name, tag)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	// The image's signatures and attestations go with its last tag (SPEC §15).
	if others, err := h.Store.ImageVersionsByDigest(ctx, name, v.Digest, 1); err != nil || len(others) > 0 {
		return err
	}
	return h.dropAccessories(ctx, name, v.Digest)
}

// dropAccessories deletes the accessory tags (sha256-<hex>.sig|.att|.sbom) of image dgst; the garbage collector
// then collects their manifests and blobs, and the referrers of the image with it.
func (h *RegistryHooks) dropAccessories(ctx context.Context, name, dgst string) error {
	c := h.content.Load()
	if c == nil {
		return nil
	}
	del, ok := (*c).(TagDeleter)
	if !ok {
		return nil
	}
	var errs []error
	for _, a := range accessoryTags {
		tag, err := signature.Tag(dgst, a.suffix)
		if err != nil {
			return nil // not a sha256 image: it has none
		}
		if err := del.DeleteTag(ctx, name, tag); err != nil && !isUnknown(err) {
			errs = append(errs, fmt.Errorf("delete %s:%s: %w", name, tag, err))
		}
	}
	return errors.Join(errs...)
}

// CheckPull refuses pulls of blocked images. The scanner pulls them all (it is what unblocks them), and a
// build its own repository: BuildKit looks up the tag it pushes over and takes a 403 as fatal.
func (h *RegistryHooks) CheckPull(ctx context.Context, subj registry.Subject, name, dgst, _ string) error {
	if h.Blocked == nil {
		return nil
	}
	if _, scanner := ScannerRepo(subj); scanner {
		return nil
	}
	if repo, builder := BuilderRepo(subj); builder && repo == name {
		return nil
	}
	err := h.Blocked(ctx, name, dgst)
	if errors.Is(err, ErrUnsigned) && isSigner(registry.UserAgent(ctx)) && h.MayPush != nil && h.MayPush(ctx, subj, name) {
		return nil // a signer reading what it signs
	}
	return err
}

// isSigner reports whether a User-Agent is a signing client's.
func isSigner(ua string) bool {
	ua = strings.ToLower(ua)
	return strings.Contains(ua, "cosign") || strings.Contains(ua, "notation")
}

func (h *RegistryHooks) log() *slog.Logger {
	if h.Logger == nil {
		return slog.Default()
	}
	return h.Logger
}

var _ registry.TagGuard = (*RegistryHooks)(nil)

// TagImmutable reports whether tag matches the immutable_tags of its repository (SPEC §14). An accessory's tag
// (a cosign signature's, which cosign moves as it adds signatures) is never immutable: it is no version.
func (h *RegistryHooks) TagImmutable(ctx context.Context, name, tag string) (bool, error) {
	if IsAccessoryTag(tag) {
		return false, nil
	}
	ns, repo, err := splitRepo(name)
	if err != nil {
		return false, nil
	}
	r, err := h.Store.GetRepository(ctx, ns, repo)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return r.TagImmutable(tag), nil
}
