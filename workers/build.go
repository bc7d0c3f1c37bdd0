package workers

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"

	"github.com/berth-dev/berth/pipeline"
	"github.com/berth-dev/berth/store"
	"github.com/berth-dev/berth/store/secretbox"
	"github.com/berth-dev/berth/webhooks/outbound"
	"github.com/berth-dev/berth/workers/buildkit"
	"github.com/berth-dev/berth/workers/gitclone"
)

// BuildRunner runs build:run tasks: it clones the source at the build's commit, builds it on BuildKit and
// pushes the image and its registry cache into Berth's registry, keeping the build record's status, stage
// times and log in the store as it goes.
//
// A task delivered again after its worker died finds the build CLONING/BUILDING/PUSHING from the dead attempt
// and starts it over from the clone (every stage is idempotent: a fresh checkout, a build pushed by tag).
// A canceled build's task is dropped, or finds the build CANCELED and does nothing.
type BuildRunner struct {
	Store store.Store
	// Box opens the source's sealed credentials.
	Box *secretbox.Box
	// Builder returns the BuildKit client of this worker's region; its error (e.g. one matching
	// buildkit.ErrNoBuilder) fails the build with that message.
	Builder func(ctx context.Context) (*buildkit.Builder, error)
	// Registry is the host[:port] of Berth's registry, the images' destination; Insecure when it speaks
	// plain HTTP.
	Registry string
	Insecure bool
	// Credentials issues the build's short-lived push login.
	Credentials *pipeline.BuildCredentials
	// WorkDir holds the checkouts while they build.
	WorkDir string
	// Checkouts, when set, keeps recent checkouts of exact commits, so a build of a commit this worker has
	// checked out already skips the clone.
	Checkouts *gitclone.Checkouts
	// SourceGuard confines the clones of sources the administrator did not set (pipeline.CloneGuard).
	SourceGuard *outbound.Guard
	// Worker names this process in build records (host/pid).
	Worker string
	Logger *slog.Logger
	// AfterPush is the SCANNING stage: when set, it runs after a successful push with the build in SCANNING,
	// and returns the final status (SUCCESS, or BLOCKED when the security policy blocks the image) with a
	// reason. nil ends builds at SUCCESS after the push.
	AfterPush func(ctx context.Context, b *store.Build, log *pipeline.LogWriter) (status, reason string, err error)
	// Signer, when set, has BuildKit attach SLSA provenance to every image, and signs the pushed image and
	// attests its provenance with the instance's key during PUSHING (SPEC §15). nil: neither.
	Signer *Signer
	// SBOMScanner makes the SBOM (CycloneDX) of each image a signed build pushed, attested after SCANNING.
	SBOMScanner Scanner
	// HeartbeatInterval overrides pipeline.HeartbeatInterval (tests).
	HeartbeatInterval time.Duration
}

// stopped says why a build's context was canceled by the runner itself.
var (
	errCanceled   = errors.New("the build was canceled")
	errSuperseded = errors.New("a newer attempt of the build took over")
)

// buildFailure is an error that ends the build as FAILED with a message for the user.
type buildFailure struct{ msg string }

func (e *buildFailure) Error() string { return e.msg }

func failf(format string, args ...any) error { return &buildFailure{msg: fmt.Sprintf(format, args...)} }

func (d Deps) runBuild(ctx context.Context, t *asynq.Task) error {
	if d.Builds == nil {
		return fmt.Errorf("%w: this worker was started without a build runner", asynq.SkipRetry)
	}
	return d.Builds.Run(ctx, t)
}

// Run handles one build:run task.
func (r *BuildRunner) Run(ctx context.Context, t *asynq.Task) error {
	var p pipeline.BuildTask
	if err := json.Unmarshal(t.Payload(), &p); err != nil || p.BuildID == "" {
		return fmt.Errorf("%w: bad build task payload", asynq.SkipRetry)
	}
	log := r.logger().With("build", p.BuildID)
	now := time.Now().UTC()
	var prev string
	var attempt int
	b, err := r.Store.UpdateBuild(ctx, p.BuildID, func(b *store.Build) error {
		if store.BuildFinal(b.Status) {
			return pipeline.ErrBuildFinished
		}
		prev = b.Status
		b.Attempt++
		attempt = b.Attempt
		b.Worker, b.Heartbeat, b.Error, b.Digest = r.Worker, now, "", ""
		b.EnterStage(store.BuildCloning, now)
		return nil
	})
	switch {
	case errors.Is(err, store.ErrNotFound):
		log.Info("build task for a build that no longer exists (its repository was deleted?)")
		return nil
	case errors.Is(err, pipeline.ErrBuildFinished):
		return nil // canceled while queued, or finished by an earlier delivery
	case err != nil:
		return err
	}
	blog, err := pipeline.OpenLog(ctx, r.Store, b, r.logger())
	if err != nil {
		return err
	}
	defer blog.Close()
	if prev != store.BuildQueued {
		blog.Printf("attempt %d: the worker of the previous attempt stopped during %s; starting again from the clone", attempt, prev)
	}
	log.Info("build started", "repository", b.Repository, "ref", b.Ref, "attempt", attempt)

	bctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		r.heartbeat(bctx, cancel, b.ID, attempt)
	}()
	digest, runErr := r.run(bctx, b, blog)
	cancel(nil)
	wg.Wait()

	status, reason := store.BuildSuccess, ""
	switch cause := context.Cause(bctx); {
	case runErr == nil:
		status, reason, runErr = r.afterPush(ctx, b.ID, digest, blog)
		if runErr != nil {
			return r.fail(ctx, b.ID, blog, runErr)
		}
	case errors.Is(cause, errCanceled), errors.Is(runErr, errCanceled):
		blog.Printf("canceled; the build stopped")
		return nil
	case errors.Is(cause, errSuperseded):
		return nil
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return r.fail(ctx, b.ID, blog, failf("timed out: an attempt may take at most %s", pipeline.BuildTimeout))
	case ctx.Err() != nil:
		// Canceled through the queue (the record says so), or the worker is shutting down: then the queue
		// runs the task again, from the clone.
		if nb, err := r.Store.BuildByID(context.WithoutCancel(ctx), b.ID); err == nil && store.BuildFinal(nb.Status) {
			blog.Printf("%s; the build stopped", strings.ToLower(nb.Status))
			return nil
		}
		blog.Printf("the worker is stopping; the build will run again")
		return ctx.Err()
	default:
		return r.fail(ctx, b.ID, blog, runErr)
	}
	end := time.Now().UTC()
	blog.Printf("%s: %s:%s %s", status, b.Repository, b.ImageTag, digest)
	blog.Close()
	_, err = r.Store.UpdateBuild(context.WithoutCancel(ctx), b.ID, func(b *store.Build) error {
		if store.BuildFinal(b.Status) || b.Attempt != attempt {
			return pipeline.ErrBuildFinished
		}
		b.Digest = digest
		b.Finish(status, reason, end)
		return nil
	})
	if errors.Is(err, pipeline.ErrBuildFinished) {
		return nil
	}
	log.Info("build finished", "status", status, "digest", digest, "took", end.Sub(b.CreatedAt).Round(time.Millisecond))
	return err
}

// fail ends the build as FAILED with err's message. Build failures are final (the task is not retried); only
// failures to record that are returned to the queue.
func (r *BuildRunner) fail(ctx context.Context, id string, blog *pipeline.LogWriter, err error) error {
	msg := err.Error()
	blog.Printf("FAILED: %s", msg)
	blog.Close()
	_, uerr := r.Store.UpdateBuild(context.WithoutCancel(ctx), id, func(b *store.Build) error {
		if store.BuildFinal(b.Status) {
			return pipeline.ErrBuildFinished
		}
		b.Finish(store.BuildFailed, msg, time.Now().UTC())
		return nil
	})
	if uerr != nil && !errors.Is(uerr, pipeline.ErrBuildFinished) {
		return uerr
	}
	r.logger().Info("build failed", "build", id, "err", msg)
	return nil
}

// heartbeat renews the build's heartbeat until ctx ends, and cancels the build when the record says it was
// canceled (the queue's cancel message may not reach this worker) or another attempt took it over.
func (r *BuildRunner) heartbeat(ctx context.Context, cancel context.CancelCauseFunc, id string, attempt int) {
	every := r.HeartbeatInterval
	if every <= 0 {
		every = pipeline.HeartbeatInterval
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		_, err := r.Store.UpdateBuild(ctx, id, func(b *store.Build) error {
			switch {
			case b.Status == store.BuildCanceled:
				return errCanceled
			case b.Attempt != attempt:
				return errSuperseded
			case store.BuildFinal(b.Status):
				return errCanceled
			}
			b.Heartbeat = time.Now().UTC()
			return nil
		})
		switch {
		case errors.Is(err, errCanceled), errors.Is(err, errSuperseded), errors.Is(err, store.ErrNotFound):
			if errors.Is(err, store.ErrNotFound) {
				err = errCanceled
			}
			cancel(err)
			return
		case err != nil && ctx.Err() == nil:
			r.logger().Warn("build heartbeat", "build", id, "err", err)
		}
	}
}

// enter moves the build to stage, unless it was canceled or taken over meanwhile.
func (r *BuildRunner) enter(ctx context.Context, id, stage string) (*store.Build, error) {
	return r.Store.UpdateBuild(ctx, id, func(b *store.Build) error {
		if store.BuildFinal(b.Status) {
			return errCanceled
		}
		if b.Status == stage {
			return store.ErrNoChange
		}
		b.EnterStage(stage, time.Now().UTC())
		return nil
	})
}

// checkImmutable fails a build whose tag exists and is immutable (SPEC §14) before it clones: its push
// would be refused at the end.
func (r *BuildRunner) checkImmutable(ctx context.Context, b *store.Build) error {
	ns, name, _ := strings.Cut(b.Repository, "/")
	repo, err := r.Store.GetRepository(ctx, ns, name)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if !repo.TagImmutable(b.ImageTag) {
		return nil
	}
	if _, err := r.Store.GetImageVersion(ctx, b.Repository, b.ImageTag); errors.Is(err, store.ErrNotFound) {
		return nil // its first push makes it
	} else if err != nil {
		return err
	}
	return failf("tag %s is immutable in %s: it exists, and a build would move it; build to another tag, or change the repository's immutable_tags",
		b.ImageTag, b.Repository)
}

// run clones, builds and pushes; it returns the pushed digest.
func (r *BuildRunner) run(ctx context.Context, b *store.Build, blog *pipeline.LogWriter) (string, error) {
	if err := r.checkImmutable(ctx, b); err != nil {
		return "", err
	}
	dir := filepath.Join(r.WorkDir, b.ID)
	_ = os.RemoveAll(dir) // left by an attempt that died
	defer os.RemoveAll(dir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("work dir: %w", err)
	}

	// CLONING
	src, err := r.Store.GetSource(ctx, b.Repository)
	if errors.Is(err, store.ErrNotFound) {
		return "", failf("%s has no code source any more (it was disconnected): connect one with PUT …/source", b.Repository)
	}
	if err != nil {
		return "", err
	}
	creds, err := pipeline.GitCredentials(r.Box, src)
	if err != nil {
		return "", failf("%v", err)
	}
	ref := gitclone.BranchRef(b.Ref)
	commit := b.Commit
	if b.RefType == store.RuleTag {
		ref = gitclone.TagRef(b.Ref)
		// A tag push may name the tag object rather than its commit; a clone of the tag peels it.
		commit = ""
	}
	checkout, release, err := r.checkout(ctx, b, src, ref, commit, creds, filepath.Join(dir, "src"), blog)
	if err != nil {
		return "", err
	}
	defer release()
	contextDir, err := insideCheckout(checkout, b.Spec.DockerfileDir)
	if err != nil {
		return "", err
	}

	// BUILDING
	if _, err := r.enter(ctx, b.ID, store.BuildBuilding); err != nil {
		return "", err
	}
	image := r.Registry + "/" + b.Repository + ":" + b.ImageTag
	blog.Printf("BUILDING %s from %s (%s)%s", image, path.Join("/", b.Spec.DockerfileDir, b.Spec.DockerfileName),
		cacheMode(b.NoCache), platformsNote(b.Spec.Platforms))
	for k := range b.Spec.BuildArgs {
		// Rules are checked when written; a rule stored before the check existed is caught here.
		if err := buildkit.CheckBuildArg(k); err != nil {
			return "", failf("%v", err)
		}
	}
	ns, name, _ := strings.Cut(b.Repository, "/")
	repo, err := r.Store.GetRepository(ctx, ns, name)
	if errors.Is(err, store.ErrNotFound) {
		return "", failf("repository %s was deleted", b.Repository)
	}
	if err != nil {
		return "", err
	}
	builder, err := r.Builder(ctx)
	if err != nil {
		return "", failf("%v", err)
	}
	user, password := r.Credentials.Issue(b.Repository, pipeline.BuildTimeout+5*time.Minute)
	req := buildkit.BuildRequest{
		ContextDir: contextDir, DockerfileName: b.Spec.DockerfileName, BuildArgs: b.Spec.BuildArgs,
		Target: b.Spec.Target, Platforms: b.Spec.Platforms, ImageRef: image, NoCache: b.NoCache, Insecure: r.Insecure,
		CacheNamespace: buildkit.CacheNamespace(repo.FullName, repo.CreatedAt),
		Auth: func(host string) (string, string) {
			if host == r.Registry {
				return user, password
			}
			return "", ""
		},
	}
	if !b.NoCache {
		req.CacheRef = r.Registry + "/" + b.Repository + ":buildcache"
	}
	if r.Signer != nil {
		req.Provenance = provenanceFor(b, src, r.registryURL())
	}
	// PUSHING starts when BuildKit starts pushing (the push is part of the solve). It is recorded aside, so
	// the progress stream never waits for the store.
	var pushing sync.WaitGroup
	var enteredPushing atomic.Bool
	watch := &pushWatcher{w: blog, onPush: func() {
		pushing.Add(1)
		go func() {
			defer pushing.Done()
			if _, err := r.enter(ctx, b.ID, store.BuildPushing); err != nil && ctx.Err() == nil {
				r.logger().Warn("enter PUSHING", "build", b.ID, "err", err)
			} else if err == nil {
				enteredPushing.Store(true)
			}
		}()
	}}
	buildStart := time.Now()
	res, err := builder.Build(ctx, req, watch)
	pushing.Wait()
	if err != nil {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		return "", failf("%v", err)
	}
	blog.Printf("built and pushed %s in %s: %d of %d steps cached", res.Digest, time.Since(buildStart).Round(time.Millisecond),
		res.CachedSteps, res.TotalSteps)

	// PUSHING: BuildKit pushed; the registry's hooks recorded the image version.
	if !enteredPushing.Load() {
		if _, err := r.enter(ctx, b.ID, store.BuildPushing); err != nil {
			return "", err
		}
	}
	if err := r.checkPushed(ctx, b, res.Digest); err != nil {
		blog.Printf("warning: %v", err)
	}
	if r.Signer != nil {
		signStart := time.Now()
		n, err := r.Signer.SignBuild(ctx, r.target(b.Repository, user, password), b, res.Digest, r.registryURL())
		if err != nil {
			if ctx.Err() != nil {
				return "", ctx.Err()
			}
			return "", failf("sign %s: %v", res.Digest, err)
		}
		blog.Printf("signed %s and attested its provenance (%s) in %s", res.Digest, platformImages(n),
			time.Since(signStart).Round(time.Millisecond))
	}
	return res.Digest, nil
}

// target is repository in Berth's registry, reached with a build login.
func (r *BuildRunner) target(repository, user, password string) Target {
	return Target{Registry: r.Registry, Repository: repository, Insecure: r.Insecure, Username: user, Password: password}
}

// registryURL is the URL of Berth's registry (and API) as builds reach it: the provenance's builder id.
func (r *BuildRunner) registryURL() string {
	if r.Insecure {
		return "http://" + r.Registry
	}
	return "https://" + r.Registry
}

// checkout clones src at the build's commit into dir, or reuses a checkout of that very commit kept in
// r.Checkouts. The returned release ends the build's use of it.
func (r *BuildRunner) checkout(ctx context.Context, b *store.Build, src *store.Source, ref, commit string,
	creds *gitclone.Credentials, dir string, blog *pipeline.LogWriter) (checkout string, release func(), err error) {
	key := checkoutKey(src, commit)
	if r.Checkouts != nil && key != "" {
		if d, release, ok := r.Checkouts.Get(key); ok {
			blog.Printf("CLONING skipped: %s %s at %s is checked out on this worker already", src.URL, ref, commit)
			return d, release, nil
		}
		if dir, err = r.Checkouts.NewDir(); err != nil {
			return "", nil, fmt.Errorf("work dir: %w", err)
		}
	}
	blog.Printf("CLONING %s %s at %s", src.URL, ref, orHead(b.Commit))
	cloneStart := time.Now()
	head, err := gitclone.Clone(ctx, gitclone.CloneRequest{URL: src.URL, Ref: ref, Commit: commit, Dir: dir,
		Credentials: creds, Guard: pipeline.CloneGuard(r.SourceGuard, src)}, blog)
	if err != nil {
		_ = os.RemoveAll(dir)
		if ctx.Err() != nil {
			return "", nil, ctx.Err()
		}
		return "", nil, failf("clone: %v", err)
	}
	blog.Printf("cloned in %s", time.Since(cloneStart).Round(time.Millisecond))
	release = func() { _ = os.RemoveAll(dir) }
	if r.Checkouts != nil && key != "" && head == commit {
		release = r.Checkouts.Put(key, dir)
	}
	if head != b.Commit {
		if _, err := r.Store.UpdateBuild(ctx, b.ID, func(nb *store.Build) error { nb.Commit = head; return nil }); err != nil {
			release()
			return "", nil, err
		}
		b.Commit = head
	}
	return dir, release, nil
}

// checkoutKey names a checkout of commit from src: the Berth repository, the URL and the (sealed) credentials,
// so that no build reads a checkout its own source could not have cloned. "" when commit is not known.
func checkoutKey(src *store.Source, commit string) string {
	if len(commit) != 40 {
		return ""
	}
	h := sha256.New()
	for _, part := range []string{src.Repository, src.URL, src.Username, src.Password, src.SSHKey, commit} {
		fmt.Fprintf(h, "%d:%s\n", len(part), part)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// afterPush runs the SCANNING stage when one is configured, then attests the image's SBOM when builds are
// signed: the scan has analysed the image's layers by then, so the SBOM reads them from the scanner's cache.
func (r *BuildRunner) afterPush(ctx context.Context, id, digest string, blog *pipeline.LogWriter) (status, reason string, err error) {
	if r.AfterPush == nil {
		return store.BuildSuccess, "", nil
	}
	b, err := r.enter(ctx, id, store.BuildScanning)
	if err != nil {
		return "", "", err
	}
	status, reason, err = r.AfterPush(ctx, b, blog)
	if err != nil || r.Signer == nil || r.SBOMScanner == nil {
		return status, reason, err
	}
	start := time.Now()
	user, password := r.Credentials.Issue(b.Repository, pipeline.ScanTaskTimeout)
	n, err := r.Signer.AttestSBOM(ctx, r.target(b.Repository, user, password), r.SBOMScanner, digest)
	switch {
	case err != nil && ctx.Err() != nil:
		return "", "", ctx.Err()
	case err != nil:
		// The image is built, pushed, signed and judged; only its SBOM is missing, which the log says.
		blog.Printf("warning: no SBOM attested: %v", err)
	default:
		blog.Printf("attested the SBOM of %s (%s) in %s", digest, platformImages(n), time.Since(start).Round(time.Millisecond))
	}
	return status, reason, nil
}

// checkPushed confirms that the tag shows in the repository's versions at the pushed digest.
func (r *BuildRunner) checkPushed(ctx context.Context, b *store.Build, digest string) error {
	var last string
	for range 20 {
		v, err := r.Store.GetImageVersion(ctx, b.Repository, b.ImageTag)
		if err == nil && v.Digest == digest {
			return nil
		}
		if err == nil {
			last = v.Digest
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	if last != "" {
		return fmt.Errorf("tag %s is at %s, not the pushed %s (pushed over meanwhile?)", b.ImageTag, last, digest)
	}
	return fmt.Errorf("tag %s was pushed but its image version is not recorded yet", b.ImageTag)
}

// insideCheckout returns the build context: dir (a clean path from the repository root) inside checkout,
// refusing one that escapes it through a symbolic link.
func insideCheckout(checkout, dir string) (string, error) {
	root, err := filepath.EvalSymlinks(checkout)
	if err != nil {
		return "", err
	}
	p, err := filepath.EvalSymlinks(filepath.Join(root, filepath.FromSlash(dir)))
	if err != nil {
		return "", failf("dockerfile_dir %s does not exist in the repository at this commit", dir)
	}
	if p != root && !strings.HasPrefix(p, root+string(filepath.Separator)) {
		return "", failf("dockerfile_dir %s leads outside the repository (a symbolic link)", dir)
	}
	if fi, err := os.Stat(p); err != nil || !fi.IsDir() {
		return "", failf("dockerfile_dir %s is not a directory in the repository", dir)
	}
	return p, nil
}

// pushWatcher passes BuildKit's progress on and calls onPush once, when a line shows the push has begun.
type pushWatcher struct {
	w      *pipeline.LogWriter
	once   sync.Once
	onPush func()
}

var pushMarks = [][]byte{[]byte(" pushing layers"), []byte(" pushing manifest for ")}

func (p *pushWatcher) Write(b []byte) (int, error) {
	for _, m := range pushMarks {
		if bytes.Contains(b, m) {
			p.once.Do(p.onPush)
			break
		}
	}
	return p.w.Write(b)
}

func orHead(commit string) string {
	if commit == "" {
		return "its head"
	}
	return commit
}

func cacheMode(noCache bool) string {
	if noCache {
		return "no cache"
	}
	return "cache on"
}

func platformsNote(ps []string) string {
	if len(ps) == 0 {
		return ""
	}
	return " for " + strings.Join(ps, ", ")
}

func (r *BuildRunner) logger() *slog.Logger {
	if r.Logger == nil {
		return slog.Default()
	}
	return r.Logger
}

// platformImages counts platform images for the build log: "1 platform image", "2 platform images".
func platformImages(n int) string {
	if n == 1 {
		return "1 platform image"
	}
	return strconv.Itoa(n) + " platform images"
}
