// Package buildkit runs Dockerfile builds on BuildKit and pushes the
// results: Daemon starts and stops a buildkitd child process (all-in-one
// mode), Builder is a client of any buildkitd (child or remote, per region).
//
//	d, err := buildkit.Start(ctx, buildkit.DaemonConfig{RootDir: dataDir + "/buildkit"})
//	b, err := buildkit.NewBuilder(ctx, d.Addr())
//	res, err := b.Build(ctx, buildkit.BuildRequest{
//		ContextDir: src, ImageRef: "registry:5000/team/app:latest",
//		CacheRef: "registry:5000/team/app:buildcache", Auth: pushCreds,
//	}, logWriter)
//
// The build log written to the progress writer is BuildKit's plain progress
// output, as `buildctl --progress=plain` prints it.
package buildkit

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/url"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/moby/buildkit/client"
	"github.com/moby/buildkit/exporter/containerimage/exptypes"
	"github.com/moby/buildkit/session"
	"github.com/moby/buildkit/session/auth"
	"github.com/moby/buildkit/util/progress/progressui"
	"github.com/tonistiigi/fsutil"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
)

// BuildRequest is one Dockerfile build whose image is pushed to ImageRef.
type BuildRequest struct {
	// ContextDir is the build context: the checked-out repository joined
	// with the rule's dockerfile_dir.
	ContextDir string
	// DockerfileDir holds the Dockerfile; empty means ContextDir.
	DockerfileDir string
	// DockerfileName defaults to "Dockerfile".
	DockerfileName string
	BuildArgs      map[string]string
	// Target is the stage to build; empty means the last one.
	Target string
	// Platforms such as linux/amd64; empty means the daemon's default.
	Platforms []string
	// ImageRef is the image to push, host:port/namespace/repo:tag.
	ImageRef string
	// CacheNamespace scopes the build's cache mounts (RUN --mount=type=cache) and the cached results of its RUN
	// steps: builds share a cache mount only when they have the same namespace and id, and reuse a RUN step's
	// result only from a build of the same namespace. It is also the hostname RUN steps see. Berth gives each
	// repository its own (CacheNamespace); empty means BuildKit's single global namespace.
	CacheNamespace string
	// CacheRef is the registry cache kept beside the image
	// (host:port/namespace/repo:buildcache), exported with mode=max and
	// imported on the next build. Empty means no registry cache.
	CacheRef string
	// NoCache ignores all cache: BuildKit's local cache (no-cache), the
	// registry cache (neither imported nor exported), and base image tags
	// are resolved again (image-resolve-mode=pull).
	NoCache bool
	// Insecure: the registry speaks plain HTTP (or unverified TLS); applies
	// to the push and the registry cache. Pulls (FROM) from a plain-HTTP
	// registry other than localhost/127.0.0.1 also need the host in the
	// daemon's config (DaemonConfig.InsecureRegistries).
	Insecure bool
	// Auth returns credentials for a registry host ("127.0.0.1:5000"),
	// asked by the daemon for pulls, pushes and cache. The daemon fetches
	// bearer tokens from the registry's token realm with them (basic auth),
	// so a short-lived token works as the secret. Empty strings mean
	// anonymous; a nil Auth means anonymous everywhere.
	Auth func(host string) (username, secret string)
	// Provenance, when set, has BuildKit attach SLSA provenance (attest:provenance, mode=max) to the image: the
	// pushed tag is then an image index holding an attestation manifest beside each platform image.
	Provenance *Provenance
}

// Provenance is what a build's SLSA provenance names beyond what BuildKit records of the build itself (its
// frontend, Dockerfile, build args, base images, steps): where the build context came from.
type Provenance struct {
	// BuilderID is the provenance's builder.id, a URI naming the builder (Berth's build).
	BuilderID string
	// Source is the Git URL the context was cloned from; credentials in it are dropped. Revision is the commit.
	Source, Revision string
	// ContextDir is the build context's directory in the repository ("/" for the root).
	ContextDir string
	// Version is the SLSA provenance version: ProvenanceV02 (default, what `cosign verify-attestation --type
	// slsaprovenance` reads) or ProvenanceV1.
	Version string
}

// SLSA provenance versions BuildKit writes.
const (
	ProvenanceV02 = "v0.2"
	ProvenanceV1  = "v1"
)

// attrs sets the frontend attributes of p: attest:provenance, and vcs:* which BuildKit copies into the
// provenance's metadata (https://docs.docker.com/build/metadata/attestations/slsa-definitions/).
func (p *Provenance) attrs(attrs map[string]string) error {
	version := p.Version
	if version == "" {
		version = ProvenanceV02
	}
	if version != ProvenanceV02 && version != ProvenanceV1 {
		return fmt.Errorf("build: provenance version %q is not %s or %s", version, ProvenanceV02, ProvenanceV1)
	}
	att := "mode=max,version=" + version
	if p.BuilderID != "" {
		if strings.ContainsAny(p.BuilderID, ",\"\n") {
			return fmt.Errorf("build: provenance builder id %q may not hold commas, quotes or newlines", p.BuilderID)
		}
		att += ",builder-id=" + p.BuilderID
	}
	attrs["attest:provenance"] = att
	if p.Source != "" {
		attrs["vcs:source"] = RedactURL(p.Source)
	}
	if p.Revision != "" {
		attrs["vcs:revision"] = p.Revision
	}
	if p.ContextDir != "" {
		attrs["vcs:localdir:context"] = p.ContextDir
		attrs["vcs:localdir:dockerfile"] = p.ContextDir
	}
	return nil
}

// RedactURL is a Git URL without the credentials it may hold, as provenance and logs may show it: an http(s)
// URL loses its user info (https://user:token@host/…, or a token given as the user), any other its password
// (ssh://git@host/… keeps "git"). A URL that does not parse as one (scp-like git@host:path) holds no password.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" || u.User == nil {
		return raw
	}
	if u.Scheme == "http" || u.Scheme == "https" {
		u.User = nil
	} else {
		u.User = url.User(u.User.Username())
	}
	return u.String()
}

// BuildResult describes a pushed image.
type BuildResult struct {
	// Digest of the pushed manifest (or index, for several platforms).
	Digest string
	// CachedSteps of TotalSteps Dockerfile steps came from cache. Steps are
	// the instructions BuildKit runs (RUN, COPY, ADD, …), FROM excluded.
	CachedSteps, TotalSteps int
}

// Builder runs builds on one BuildKit daemon. It is safe for concurrent use.
type Builder struct {
	c *client.Client
}

// NewBuilder connects to the daemon at addr (unix:///…, tcp://…). The
// connection is made lazily; Ping checks it.
func NewBuilder(ctx context.Context, addr string, opts ...client.ClientOpt) (*Builder, error) {
	c, err := client.New(ctx, addr, opts...)
	if err != nil {
		return nil, fmt.Errorf("buildkit client %s: %w", addr, err)
	}
	return &Builder{c: c}, nil
}

// Ping checks that the daemon answers and has a worker.
func (b *Builder) Ping(ctx context.Context) error {
	ws, err := b.c.ListWorkers(ctx)
	if err != nil {
		return fmt.Errorf("buildkit: %w", err)
	}
	if len(ws) == 0 {
		return errors.New("buildkit: the daemon has no workers")
	}
	return nil
}

// Prune removes all of the daemon's build cache (buildctl prune --all) and
// returns the bytes freed.
func (b *Builder) Prune(ctx context.Context) (int64, error) {
	ch := make(chan client.UsageInfo)
	var freed int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		for u := range ch {
			freed += u.Size
		}
	}()
	err := b.c.Prune(ctx, ch, client.PruneAll)
	close(ch)
	<-done
	if err != nil {
		return freed, fmt.Errorf("buildkit prune: %w", err)
	}
	return freed, nil
}

// Close closes the connection to the daemon.
func (b *Builder) Close() error { return b.c.Close() }

// Build builds req and pushes the image, writing the build log to progress
// (nil discards it). Canceling ctx stops the build; the error then matches
// ctx.Err().
func (b *Builder) Build(ctx context.Context, req BuildRequest, progress io.Writer) (BuildResult, error) {
	opt, err := solveOpt(req)
	if err != nil {
		return BuildResult{}, err
	}

	statusCh := make(chan *client.SolveStatus)
	displayCh := make(chan *client.SolveStatus)
	steps := newStepCounter()
	var resp *client.SolveResponse

	// The display and the counter must drain the status channel to its end
	// even when the build fails or is canceled: BuildKit closes it then.
	var eg errgroup.Group
	eg.Go(func() error {
		defer close(displayCh)
		for s := range statusCh {
			steps.add(s)
			if progress != nil {
				displayCh <- s
			}
		}
		return nil
	})
	if progress != nil {
		eg.Go(func() error {
			d, err := progressui.NewDisplay(progress, progressui.PlainMode)
			if err != nil {
				for range displayCh {
				}
				return err
			}
			_, err = d.UpdateFrom(context.WithoutCancel(ctx), displayCh)
			return err
		})
	}
	var solveErr error
	eg.Go(func() error {
		resp, solveErr = b.c.Solve(ctx, nil, opt, statusCh)
		return nil
	})
	displayErr := eg.Wait()

	cached, total := steps.counts()
	res := BuildResult{CachedSteps: cached, TotalSteps: total}
	if solveErr != nil {
		if ctx.Err() != nil {
			return res, fmt.Errorf("build %s: %w", req.ImageRef, context.Cause(ctx))
		}
		return res, fmt.Errorf("build %s: %w", req.ImageRef, solveErr)
	}
	if displayErr != nil {
		return res, fmt.Errorf("build %s: progress: %w", req.ImageRef, displayErr)
	}
	res.Digest = resp.ExporterResponse[exptypes.ExporterImageDigestKey]
	if res.Digest == "" {
		return res, fmt.Errorf("build %s: BuildKit returned no image digest", req.ImageRef)
	}
	return res, nil
}

func solveOpt(req BuildRequest) (client.SolveOpt, error) {
	if req.ContextDir == "" {
		return client.SolveOpt{}, errors.New("build: ContextDir is required")
	}
	if req.ImageRef == "" {
		return client.SolveOpt{}, errors.New("build: ImageRef is required")
	}
	dfDir := req.DockerfileDir
	if dfDir == "" {
		dfDir = req.ContextDir
	}
	dfName := req.DockerfileName
	if dfName == "" {
		dfName = "Dockerfile"
	}
	if filepath.IsAbs(dfName) || strings.Contains(filepath.ToSlash(dfName), "../") {
		return client.SolveOpt{}, fmt.Errorf("build: Dockerfile name %q must be relative to its directory", dfName)
	}
	ctxFS, err := fsutil.NewFS(req.ContextDir)
	if err != nil {
		return client.SolveOpt{}, fmt.Errorf("build context: %w", err)
	}
	dfFS, err := fsutil.NewFS(dfDir)
	if err != nil {
		return client.SolveOpt{}, fmt.Errorf("build Dockerfile dir: %w", err)
	}

	// "cmdline" set makes the Dockerfile frontend build itself rather than hand the build to a frontend image
	// named by a "# syntax=" line: such a frontend chooses its cache mount ids itself, out of CacheNamespace.
	attrs := map[string]string{"filename": dfName, "cmdline": ""}
	if req.Target != "" {
		attrs["target"] = req.Target
	}
	for k, v := range req.BuildArgs {
		if err := CheckBuildArg(k); err != nil {
			return client.SolveOpt{}, fmt.Errorf("build: %w", err)
		}
		attrs["build-arg:"+k] = v
	}
	if req.CacheNamespace != "" {
		attrs["build-arg:"+cacheNSArg] = req.CacheNamespace
		// BuildKit leaves cache mount ids out of a RUN step's cache key, so a step that read a planted cache
		// mount would be reused by the same step of another repository. The hostname of RUN steps is in the
		// key: set per repository, it keeps their results apart too.
		attrs["hostname"] = req.CacheNamespace
	}
	if len(req.Platforms) > 0 {
		attrs["platform"] = strings.Join(req.Platforms, ",")
	}
	if req.Provenance != nil {
		if err := req.Provenance.attrs(attrs); err != nil {
			return client.SolveOpt{}, err
		}
	}
	if req.NoCache {
		attrs["no-cache"] = "" // empty: every stage
		// Re-resolve base image tags from the registry (docker build --pull).
		attrs["image-resolve-mode"] = "pull"
	}

	image := map[string]string{"name": req.ImageRef, "push": "true"}
	if req.Insecure {
		image["registry.insecure"] = "true"
	}
	opt := client.SolveOpt{
		Frontend:      "dockerfile.v0",
		FrontendAttrs: attrs,
		LocalMounts:   map[string]fsutil.FS{"context": ctxFS, "dockerfile": dfFS},
		Exports:       []client.ExportEntry{{Type: client.ExporterImage, Attrs: image}},
		Session:       []session.Attachable{&authProvider{creds: req.Auth}},
	}
	if req.CacheRef != "" && !req.NoCache {
		cache := map[string]string{"ref": req.CacheRef}
		if req.Insecure {
			cache["registry.insecure"] = "true"
		}
		export := map[string]string{"mode": "max"}
		for k, v := range cache {
			export[k] = v
		}
		opt.CacheImports = []client.CacheOptionsEntry{{Type: "registry", Attrs: cache}}
		opt.CacheExports = []client.CacheOptionsEntry{{Type: "registry", Attrs: export}}
	}
	return opt, nil
}

// cacheNSArg is the Dockerfile frontend's option naming the cache-mount namespace.
const cacheNSArg = "BUILDKIT_CACHE_MOUNT_NS"

// ErrReservedBuildArg: a build argument named BUILDKIT_* steers BuildKit itself (its frontend, cache-mount
// namespace, inline cache, syntax), so builds may not set one.
var ErrReservedBuildArg = errors.New("build args named BUILDKIT_* are reserved")

// CheckBuildArg refuses build argument names that BuildKit reads as its own options (BUILDKIT_*, in any
// case). The error matches ErrReservedBuildArg.
func CheckBuildArg(name string) error {
	if len(name) >= len("BUILDKIT_") && strings.EqualFold(name[:len("BUILDKIT_")], "BUILDKIT_") {
		return fmt.Errorf("%w: %s configures BuildKit itself (cache-mount namespace, inline cache, frontend), which Berth sets; rename the argument", ErrReservedBuildArg, name)
	}
	return nil
}

// CacheNamespace is the cache-mount namespace of a repository's builds: a digest of its full name and its
// creation time, so every repository, including one created again under a deleted one's name, has cache
// mounts of its own, and no build argument can name another's.
func CacheNamespace(repository string, created time.Time) string {
	sum := sha256.Sum256([]byte(repository + "\x00" + strconv.FormatInt(created.UnixMilli(), 10)))
	return "berth-" + hex.EncodeToString(sum[:16])
}

// authProvider answers the daemon's credential requests for registries
// from the build's Auth func. Token fetching and token authorities are left
// unimplemented, so the daemon fetches registry tokens itself with these
// credentials (the standard Docker token flow).
type authProvider struct {
	auth.UnimplementedAuthServer
	creds func(host string) (username, secret string)
}

func (p *authProvider) Register(s *grpc.Server) { auth.RegisterAuthServer(s, p) }

func (p *authProvider) Credentials(_ context.Context, req *auth.CredentialsRequest) (*auth.CredentialsResponse, error) {
	if p.creds == nil {
		return &auth.CredentialsResponse{}, nil
	}
	user, secret := p.creds(req.GetHost())
	return &auth.CredentialsResponse{Username: user, Secret: secret}, nil
}

// stepRE matches the vertices the Dockerfile frontend names after its
// instructions: "[2/3] RUN …", "[build 1/2] COPY …", "[linux/arm64 stage-1
// 3/4] ADD …". FROM steps are left out: they are pulls, not build steps, and
// BuildKit marks them inconsistently (DONE on a fully cached rebuild, CACHED
// under no-cache once the layers are local).
var stepRE = regexp.MustCompile(`^\[[^\]]*\b\d+/\d+\] `)

func isStep(name string) bool {
	loc := stepRE.FindStringIndex(name)
	return loc != nil && !strings.HasPrefix(name[loc[1]:], "FROM ")
}

// stepCounter counts distinct Dockerfile build steps (deduplicated by
// vertex digest) and how many were cached. Internal vertices (loading the
// Dockerfile and context, exporting, pushing) are not steps.
type stepCounter struct {
	mu     sync.Mutex
	cached map[string]bool // vertex digest → cached
}

func newStepCounter() *stepCounter { return &stepCounter{cached: map[string]bool{}} }

func (c *stepCounter) add(s *client.SolveStatus) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, v := range s.Vertexes {
		if !isStep(v.Name) {
			continue
		}
		d := v.Digest.String()
		c.cached[d] = c.cached[d] || v.Cached
	}
}

func (c *stepCounter) counts() (cached, total int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, ok := range c.cached {
		if ok {
			cached++
		}
	}
	return cached, len(c.cached)
}
