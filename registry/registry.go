// Package registry is Berth's built-in OCI registry: the OCI Distribution Spec
// v1.1 API under /v2/ and the Docker Registry v2 token service at /token, as
// one http.Handler, plus a Go API for Berth's REST handlers and workers.
//
//	reg, err := registry.New(registry.Config{
//		RootDir:   filepath.Join(dataDir, "registry"),
//		PublicURL: "http://127.0.0.1:5000",
//	}, authorizer, hooks)
//	mux.Handle("/v2/", reg)
//	mux.Handle("/token", reg)
//	defer reg.Close()
//
// Content lives in a storage driver (filesystem by default) laid out by
// package storage; the pull path needs no database (tags and manifests are in
// the storage, with an in-memory cache in front). Access decisions belong to
// the Authorizer; Berth's metadata follows pushes and deletes through Hooks.
package registry

import (
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/berth-dev/berth/registry/manifest"
	"github.com/berth-dev/berth/registry/reference"
	"github.com/berth-dev/berth/registry/storage"
	"github.com/berth-dev/berth/registry/storage/driver"
	"github.com/berth-dev/berth/registry/storage/driver/filesystem"
)

// Config configures a Registry.
type Config struct {
	RootDir        string        // filesystem storage root (e.g. DATA/registry)
	PublicURL      string        // e.g. http://127.0.0.1:5000 ; token realm = PublicURL+"/token"
	Service        string        // token "service" (default: host of PublicURL)
	SigningKeyFile string        // PEM private key (ECDSA P-256 or RSA); generated on first start if missing (default RootDir/token-signing-key.pem)
	TokenTTL       time.Duration // default 5 min
	UploadGrace    time.Duration // abandoned uploads purged after this (default 24h)
	Logger         *slog.Logger

	// SigningKey, when set, signs and verifies tokens instead of SigningKeyFile's: replicas share one.
	SigningKey crypto.Signer
	// Driver replaces the filesystem driver at RootDir (in-memory for tests, S3).
	Driver driver.StorageDriver
	// BlobRedirect answers blob GETs with a 307 to the driver's URL for the blob (a presigned S3 URL)
	// when the driver is a driver.Redirector.
	BlobRedirect bool
	// CacheTTL bounds how long a cached tag lookup or manifest is trusted. 0 keeps entries
	// until they are evicted or invalidated, which is right for a single node;
	// set a few seconds when several nodes share one storage.
	CacheTTL time.Duration
	// Metrics, when set, receives the registry's Prometheus collectors.
	Metrics prometheus.Registerer
	// URLFor, when set, gives the external URL of each request (e.g. from its own Host): the token realm and
	// service of its challenges follow it. PublicURL and Service then only name the tokens' audience.
	URLFor func(*http.Request) string
	// TagLocker, when set, locks an immutable tag's first push across every registry sharing the storage
	// (Hooks that implement TagGuard decide which tags are immutable). Without it the lock is this registry's.
	TagLocker Locker
	// Audit, when set, hears of sign-ins, pushes and deletes (and, with AuditPulls, manifest GETs).
	Audit      Auditor
	AuditPulls bool
	// RequestID names an audited request (its X-Request-Id when sane, else a new one); nil leaves them unnamed.
	RequestID func(*http.Request) string
}

// Hooks connect the registry to Berth's metadata; every method may be a no-op
// (see NopHooks).
type Hooks interface {
	// EnsureRepository is called before any write into a repository (upload
	// start, mount, manifest put). It may create the repository
	// (auto_create_repo) or refuse with an *Error (e.g. ErrNameUnknown with a
	// message saying why).
	EnsureRepository(ctx context.Context, subj Subject, name string) error
	// ManifestPushed is called after a manifest is committed (by tag or by
	// digest). Its error is logged; the push has succeeded.
	ManifestPushed(ctx context.Context, ev ManifestEvent) error
	// ManifestDeleted / TagDeleted are called after a deletion (through the
	// HTTP API or the Go API).
	ManifestDeleted(ctx context.Context, name string, dgst string) error
	TagDeleted(ctx context.Context, name, tag string) error
	// CheckPull is called on manifest GET/HEAD (by tag or digest) after auth; a
	// non-nil *Error (e.g. DENIED 403 for blocked images) refuses it.
	CheckPull(ctx context.Context, subj Subject, name string, dgst string, mediaType string) error
}

// ManifestEvent describes a committed manifest push.
type ManifestEvent struct {
	Repository string
	Tag        string // empty when pushed by digest
	Digest     string
	MediaType  string
	Size       int64
	Payload    []byte
	PushedAt   time.Time
	Subject    Subject
}

// NopHooks does nothing: every repository may be written, every pull allowed.
type NopHooks struct{}

func (NopHooks) EnsureRepository(context.Context, Subject, string) error          { return nil }
func (NopHooks) ManifestPushed(context.Context, ManifestEvent) error              { return nil }
func (NopHooks) ManifestDeleted(context.Context, string, string) error            { return nil }
func (NopHooks) TagDeleted(context.Context, string, string) error                 { return nil }
func (NopHooks) CheckPull(context.Context, Subject, string, string, string) error { return nil }

// Registry serves /v2/ and /token. Create it with New.
type Registry struct {
	cfg   Config
	authz Authorizer
	hooks Hooks
	store *storage.Store
	log   *slog.Logger

	signer    *signer
	realm     string
	challenge string // `Bearer realm="…",service="…"`

	tags      *lru[tagKey, tagEntry]
	manifests *lru[manifestKey, *cachedManifest]
	epoch     atomic.Uint64 // bumped by every manifest/tag write or delete
	basic     *basicCache
	metrics   *metrics

	tagLocks sync.Map // key -> *sync.Mutex: the immutable tags' locks without a Config.TagLocker

	gcMu       sync.RWMutex // manifest puts hold it shared; each garbage collection deletion exclusively
	gcTestHook func(stage string)

	stop      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once
}

// New opens (or creates) the registry storage and starts the upload janitor.
func New(cfg Config, authz Authorizer, hooks Hooks) (*Registry, error) {
	if authz == nil {
		return nil, errors.New("registry: an Authorizer is required")
	}
	if hooks == nil {
		hooks = NopHooks{}
	}
	if cfg.PublicURL == "" {
		return nil, errors.New("registry: PublicURL is required (token realm)")
	}
	pu, err := url.Parse(cfg.PublicURL)
	if err != nil || pu.Host == "" {
		return nil, fmt.Errorf("registry: bad PublicURL %q", cfg.PublicURL)
	}
	if cfg.Service == "" {
		cfg.Service = pu.Host
	}
	if cfg.TokenTTL <= 0 {
		cfg.TokenTTL = 5 * time.Minute
	}
	if cfg.UploadGrace <= 0 {
		cfg.UploadGrace = 24 * time.Hour
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	d := cfg.Driver
	if d == nil {
		if cfg.RootDir == "" {
			return nil, errors.New("registry: RootDir or Driver is required")
		}
		d, err = filesystem.New(cfg.RootDir)
		if err != nil {
			return nil, err
		}
	}
	key := cfg.SigningKey
	if key == nil {
		if cfg.SigningKeyFile == "" {
			if cfg.RootDir == "" {
				return nil, errors.New("registry: SigningKeyFile or SigningKey is required without RootDir")
			}
			cfg.SigningKeyFile = filepath.Join(cfg.RootDir, "token-signing-key.pem")
		}
		if key, err = loadOrCreateKey(cfg.SigningKeyFile); err != nil {
			return nil, fmt.Errorf("registry: signing key: %w", err)
		}
	}
	realm := trimSlash(cfg.PublicURL) + "/token"
	sg, err := newSigner(key, "berth-registry", cfg.Service)
	if err != nil {
		return nil, err
	}
	r := &Registry{
		cfg:       cfg,
		authz:     authz,
		hooks:     hooks,
		store:     storage.New(d),
		log:       cfg.Logger,
		signer:    sg,
		realm:     realm,
		challenge: fmt.Sprintf(`Bearer realm=%q,service=%q`, realm, cfg.Service),
		tags:      newLRU[tagKey, tagEntry](16384, 0),
		manifests: newLRU[manifestKey, *cachedManifest](8192, 64<<20),
		basic:     newBasicCache(),
		stop:      make(chan struct{}),
	}
	if cfg.Metrics != nil {
		r.metrics, err = newMetrics(cfg.Metrics)
		if err != nil {
			return nil, err
		}
	}
	r.wg.Add(1)
	go r.janitor()
	return r, nil
}

func trimSlash(s string) string {
	for len(s) > 0 && s[len(s)-1] == '/' {
		s = s[:len(s)-1]
	}
	return s
}

// challengeFor is the `Bearer realm="…",service="…"` challenge of req, and the token realm in it.
func (r *Registry) challengeFor(req *http.Request) (challenge, realm string) {
	if r.cfg.URLFor == nil {
		return r.challenge, r.realm
	}
	base := trimSlash(r.cfg.URLFor(req))
	service := r.cfg.Service
	if u, err := url.Parse(base); err == nil && u.Host != "" {
		service = u.Host
	}
	realm = base + "/token"
	return fmt.Sprintf(`Bearer realm=%q,service=%q`, realm, service), realm
}

// Close stops background work. In-flight requests are the caller's server's
// business.
func (r *Registry) Close() error {
	r.closeOnce.Do(func() { close(r.stop) })
	r.wg.Wait()
	return nil
}

func (r *Registry) janitor() {
	defer r.wg.Done()
	every := min(max(r.cfg.UploadGrace/2, time.Second), time.Hour)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-t.C:
			r.purgeUploads()
		}
	}
}

func (r *Registry) purgeUploads() {
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		select {
		case <-r.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	defer cancel()
	n, err := r.store.PurgeUploads(ctx, time.Now().Add(-r.cfg.UploadGrace))
	if err != nil && !errors.Is(err, context.Canceled) {
		r.log.Warn("registry: purging abandoned uploads", "err", err)
	}
	if n > 0 {
		r.log.Info("registry: purged abandoned uploads", "count", n)
	}
}

// IssueToken signs a registry token for subj with exactly the given access
// (no Authorizer call), e.g. short-lived push tokens for BuildKit or pull
// tokens for the scanner. ttl <= 0 uses Config.TokenTTL.
func (r *Registry) IssueToken(subj Subject, access []Access, ttl time.Duration) (string, error) {
	if ttl <= 0 {
		ttl = r.cfg.TokenTTL
	}
	cp := make([]Access, len(access))
	for i, a := range access {
		cp[i] = Access{Type: a.Type, Name: a.Name, Actions: append([]string(nil), a.Actions...)}
	}
	tok, _, err := r.signer.issue(subj, cp, nil, ttl)
	return tok, err
}

func checkName(name string) error {
	if !reference.ValidName(name) {
		return ErrNameInvalid(fmt.Sprintf("invalid repository name %q", name))
	}
	return nil
}

// ResolveTag returns the digest a tag points at.
func (r *Registry) ResolveTag(ctx context.Context, name, tag string) (string, error) {
	if err := checkName(name); err != nil {
		return "", err
	}
	if !reference.ValidTag(tag) {
		return "", ErrManifestInvalid(fmt.Sprintf("invalid tag %q", tag))
	}
	dg, err := r.resolveTag(ctx, name, tag)
	if err != nil {
		return "", err
	}
	return dg.String(), nil
}

// GetManifest returns a manifest by tag or digest.
func (r *Registry) GetManifest(ctx context.Context, name, ref string) (mediaType string, payload []byte, dgst string, err error) {
	if err := checkName(name); err != nil {
		return "", nil, "", err
	}
	dg, err := r.resolveReference(ctx, name, ref)
	if err != nil {
		return "", nil, "", err
	}
	m, err := r.loadManifest(ctx, name, dg)
	if err != nil {
		return "", nil, "", err
	}
	return m.mediaType, m.payload, dg.String(), nil
}

// OpenBlob opens a blob of the repository; the caller closes it.
func (r *Registry) OpenBlob(ctx context.Context, name, dgst string) (io.ReadCloser, int64, error) {
	if err := checkName(name); err != nil {
		return nil, 0, err
	}
	dg, err := reference.Parse(dgst)
	if err != nil {
		return nil, 0, ErrDigestInvalid(err.Error())
	}
	size, err := r.store.RepoBlobStat(ctx, name, dg)
	if err != nil {
		return nil, 0, storageErr(err)
	}
	rc, err := r.store.BlobReader(ctx, dg, 0)
	if err != nil {
		return nil, 0, storageErr(err)
	}
	return rc, size, nil
}

// Referrers lists the manifests whose subject is dgst (what GET /v2/<name>/referrers/<digest> answers).
func (r *Registry) Referrers(ctx context.Context, name, dgst string) ([]manifest.Descriptor, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	dg, err := reference.Parse(dgst)
	if err != nil {
		return nil, ErrDigestInvalid(err.Error())
	}
	raw, err := r.store.Referrers(ctx, name, dg)
	if err != nil {
		return nil, storageErr(err)
	}
	out := make([]manifest.Descriptor, 0, len(raw))
	for _, b := range raw {
		var d manifest.Descriptor
		if json.Unmarshal(b, &d) == nil {
			out = append(out, d)
		}
	}
	return out, nil
}

// ListTags lists a repository's tags, sorted.
func (r *Registry) ListTags(ctx context.Context, name string) ([]string, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	tags, err := r.store.Tags(ctx, name)
	if err != nil {
		return nil, storageErr(err)
	}
	return tags, nil
}

// DeleteTag removes a tag (the manifest stays, reachable by digest).
func (r *Registry) DeleteTag(ctx context.Context, name, tag string) error {
	if err := checkName(name); err != nil {
		return err
	}
	if !reference.ValidTag(tag) {
		return ErrManifestInvalid(fmt.Sprintf("invalid tag %q", tag))
	}
	return r.deleteTag(ctx, name, tag)
}

// DeleteManifest removes a manifest, the tags pointing at it and its referrer
// entry.
func (r *Registry) DeleteManifest(ctx context.Context, name, dgst string) error {
	if err := checkName(name); err != nil {
		return err
	}
	dg, err := reference.Parse(dgst)
	if err != nil {
		return ErrDigestInvalid(err.Error())
	}
	return r.deleteManifest(ctx, name, dg)
}

// DeleteRepository removes every manifest, tag, blob link, referrer entry and
// upload session of the repository, so that nothing stays readable under its
// name, not even by digest, when the name is used again. Blob data shared
// with other repositories stays; the garbage collector frees the rest.
func (r *Registry) DeleteRepository(ctx context.Context, name string) error {
	if err := checkName(name); err != nil {
		return err
	}
	r.epoch.Add(1)
	err := r.store.DeleteRepository(ctx, name)
	r.epoch.Add(1)
	r.forgetRepository(name)
	return err
}

// forgetRepository drops a repository's cached tags and manifests.
func (r *Registry) forgetRepository(name string) {
	r.tags.removeIf(func(k tagKey, _ tagEntry) bool { return k.name == name })
	r.manifests.removeIf(func(k manifestKey, _ *cachedManifest) bool { return k.name == name })
}

// storageErr maps storage errors to registry errors.
func storageErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, storage.ErrBlobUnknown):
		return ErrBlobUnknown("blob unknown to registry")
	case errors.Is(err, storage.ErrManifestUnknown), errors.Is(err, storage.ErrTagUnknown):
		return ErrManifestUnknown("manifest unknown")
	case errors.Is(err, storage.ErrUploadUnknown):
		return ErrBlobUploadUnknown("blob upload unknown to registry")
	case errors.Is(err, storage.ErrRepoUnknown):
		return ErrNameUnknown("repository name not known to registry")
	case errors.Is(err, storage.ErrDigestMismatch):
		return ErrDigestInvalid("provided digest did not match uploaded content")
	}
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return err
}
