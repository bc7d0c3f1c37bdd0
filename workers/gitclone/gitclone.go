// Package gitclone fetches the source of a build: a shallow clone of one
// branch or tag, checked out at the exact commit the build was asked for.
//
//	head, err := gitclone.Clone(ctx, gitclone.CloneRequest{
//		URL:         "https://git.example.com/team/app.git",
//		Ref:         gitclone.BranchRef("main"),
//		Commit:      webhookCommit, // optional
//		Dir:         workDir,
//		Credentials: &gitclone.Credentials{Password: token},
//	}, logWriter)
//
// It speaks http(s), ssh (URL or scp-style git@host:path), git:// and local
// repositories (file:// or a plain path) through go-git; local repositories
// use the git-upload-pack binary. Credentials never appear in errors or in
// the progress output.
package gitclone

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/transport"

	"github.com/berth-dev/berth/webhooks/outbound"
)

// Errors callers can branch on (errors.Is); the returned errors wrap them
// with the details.
var (
	ErrInvalidURL         = errors.New("invalid git URL")
	ErrInvalidRequest     = errors.New("invalid clone request")
	ErrInvalidCredentials = errors.New("invalid git credentials")
	ErrAuth               = errors.New("git authentication failed")
	ErrRepoNotFound       = errors.New("git repository not found")
	ErrRefNotFound        = errors.New("git ref not found")
	ErrCommitNotFound     = errors.New("git commit not found")
)

// CloneRequest says what to fetch and where to put it.
type CloneRequest struct {
	// URL of the repository: https://, http://, ssh://, scp-style
	// git@host:path, git://, file:// or a local path.
	URL string
	// Ref is the full name of the branch or tag to clone, e.g.
	// refs/heads/main or refs/tags/v1 (see BranchRef, TagRef). Empty means
	// the remote's default branch.
	Ref string
	// Commit, when set, is the full SHA-1 the checkout must be at. When the
	// ref has moved on since, the commit is fetched by SHA or by deepening
	// the ref's history.
	Commit string
	// Dir is the destination; it must not exist or be empty.
	Dir         string
	Credentials *Credentials
	// Submodules checks out submodules, recursively.
	Submodules bool
	// Depth of history to fetch: 0 means 1 (the usual for builds); a
	// negative value fetches the full history.
	Depth int
	// Guard, when set, confines the clone to https, http and ssh, and its connections to the addresses the
	// guard allows (the code sources of non-administrators, SSRF). Submodules are not fetched under a guard.
	Guard *outbound.Guard
}

// BranchRef returns the full ref name of a branch ("main" →
// "refs/heads/main"); a full ref name is returned unchanged.
func BranchRef(name string) string { return fullRef("refs/heads/", name) }

// TagRef returns the full ref name of a tag ("v1" → "refs/tags/v1"); a full
// ref name is returned unchanged.
func TagRef(name string) string { return fullRef("refs/tags/", name) }

func fullRef(prefix, name string) string {
	if strings.HasPrefix(name, "refs/") {
		return name
	}
	return prefix + name
}

var shaRE = regexp.MustCompile(`^[0-9a-f]{40}$`)

// maxDepth asks the server for the whole history, as `git fetch --unshallow`.
const maxDepth = 1<<31 - 1

// deepenSteps are the depths tried, in order, to reach a commit that is no
// longer the tip of its ref when the server cannot send it by SHA.
var deepenSteps = []int{50, maxDepth}

// Clone clones req.URL into req.Dir and checks out req.Commit, or the head
// of req.Ref when no commit is given, as a detached HEAD. It returns the
// checked-out commit. Progress lines (the server's messages included) are
// written to progress, which may be nil. On error the caller removes Dir.
func Clone(ctx context.Context, req CloneRequest, progress io.Writer) (string, error) {
	if progress == nil {
		progress = io.Discard
	}
	if err := req.validate(); err != nil {
		return "", err
	}
	src, err := newSource(req.URL, req.Credentials, progress)
	if err != nil {
		return "", err
	}
	if err := src.guard(ctx, req.Guard); err != nil {
		return "", err
	}
	ctx = withGuard(ctx, req.Guard)
	depth := req.Depth
	switch {
	case depth == 0:
		depth = 1
	case depth < 0:
		depth = 0 // go-git: full history
	}

	what := req.Ref
	if what == "" {
		what = "default branch"
	}
	fmt.Fprintf(progress, "cloning %s (%s) into %s\n", src.display, what, req.Dir)

	repo, err := git.PlainCloneContext(ctx, req.Dir, false, &git.CloneOptions{
		URL:           src.url,
		Auth:          src.auth,
		ReferenceName: plumbing.ReferenceName(req.Ref),
		SingleBranch:  true,
		Depth:         depth,
		NoCheckout:    true,
		Tags:          git.NoTags,
		Progress:      progress,
	})
	if err != nil {
		return "", src.wrap(err, req.Ref)
	}

	head, err := repo.Head()
	if err != nil {
		return "", fmt.Errorf("clone %s: read HEAD: %w", src.display, err)
	}
	target, err := peelToCommit(repo, head.Hash())
	if err != nil {
		return "", fmt.Errorf("clone %s: %s: %w", src.display, what, err)
	}

	if req.Commit != "" && target.String() != req.Commit {
		want := plumbing.NewHash(req.Commit)
		fmt.Fprintf(progress, "%s is at %s; fetching commit %s\n", what, short(target), short(want))
		ref := req.Ref
		if ref == "" {
			ref = head.Name().String() // the default branch, as cloned
		}
		if err := ensureCommit(ctx, repo, src, ref, want, depth, progress); err != nil {
			return "", err
		}
		target = want
	}

	wt, err := repo.Worktree()
	if err != nil {
		return "", err
	}
	if err := wt.Checkout(&git.CheckoutOptions{Hash: target, Force: true}); err != nil {
		return "", fmt.Errorf("checkout %s: %w", short(target), err)
	}
	if c, err := repo.CommitObject(target); err == nil {
		// The commit's subject says which change is built; it is the author's text, shown as the log is.
		subject, _, _ := strings.Cut(strings.TrimSpace(c.Message), "\n")
		fmt.Fprintf(progress, "checked out %s: %s\n", target, subject)
	} else {
		fmt.Fprintf(progress, "checked out %s\n", target)
	}

	if req.Submodules {
		if err := updateSubmodules(ctx, wt, src, req.Credentials, progress); err != nil {
			return "", err
		}
	}
	return target.String(), nil
}

func (r CloneRequest) validate() error {
	if r.URL == "" {
		return fmt.Errorf("%w: URL is empty", ErrInvalidRequest)
	}
	if r.Dir == "" {
		return fmt.Errorf("%w: Dir is empty", ErrInvalidRequest)
	}
	if r.Ref != "" && !strings.HasPrefix(r.Ref, "refs/heads/") && !strings.HasPrefix(r.Ref, "refs/tags/") {
		return fmt.Errorf("%w: ref %q must be a full branch or tag name (refs/heads/… or refs/tags/…)", ErrInvalidRequest, r.Ref)
	}
	if r.Ref != "" && plumbing.ReferenceName(r.Ref).Validate() != nil {
		return fmt.Errorf("%w: ref %q is not a valid ref name", ErrInvalidRequest, r.Ref)
	}
	if r.Commit != "" && !shaRE.MatchString(r.Commit) {
		return fmt.Errorf("%w: commit %q must be a full lowercase 40-character SHA-1", ErrInvalidRequest, r.Commit)
	}
	if r.Guard != nil && r.Submodules {
		return fmt.Errorf("%w: submodules are not fetched for a guarded source", ErrInvalidRequest)
	}
	if entries, err := os.ReadDir(r.Dir); err == nil && len(entries) > 0 {
		return fmt.Errorf("%w: %s is not empty", ErrInvalidRequest, r.Dir)
	}
	return nil
}

// ensureCommit makes want present in repo: first by asking for it by SHA
// (servers with uploadpack.allowReachableSHA1InWant or allowTipSHA1InWant),
// then by deepening the cloned ref's history.
func ensureCommit(ctx context.Context, repo *git.Repository, src *source, remoteRef string, want plumbing.Hash, depth int, progress io.Writer) error {
	fetch := func(spec string, depth int) error {
		err := repo.FetchContext(ctx, &git.FetchOptions{
			RemoteName: git.DefaultRemoteName,
			RefSpecs:   []config.RefSpec{config.RefSpec(spec)},
			Auth:       src.auth,
			Depth:      depth,
			Tags:       git.NoTags,
			Progress:   progress,
		})
		if errors.Is(err, git.NoErrAlreadyUpToDate) {
			return nil
		}
		return err
	}
	have := func() bool {
		_, err := repo.CommitObject(want)
		return err == nil
	}

	if have() {
		return nil // deeper history than the ref's tip was fetched already
	}
	err := fetch(want.String()+":refs/berth/commit", depth)
	switch {
	case err == nil && have():
		return nil
	case err == nil, errors.Is(err, git.ErrExactSHA1NotSupported):
		// Fall through to deepening.
	case ctx.Err() != nil:
		return ctx.Err()
	case errors.Is(err, transport.ErrAuthenticationRequired), errors.Is(err, transport.ErrAuthorizationFailed):
		return src.wrap(err, remoteRef)
	default:
		// Servers that do not allow arbitrary SHAs sometimes answer with a
		// protocol error ("not our ref") instead: deepen instead.
		fmt.Fprintf(progress, "fetch by SHA failed (%v); deepening %s\n", scrub(err, src.secrets), remoteRef)
	}

	if depth == 0 {
		// Already the full history of the ref: nothing to deepen.
		return src.commitNotFound(want, remoteRef)
	}
	// The same destinations a single-branch clone uses.
	spec := "+" + remoteRef + ":" + remoteRef
	if branch, ok := strings.CutPrefix(remoteRef, "refs/heads/"); ok {
		spec = "+" + remoteRef + ":refs/remotes/" + git.DefaultRemoteName + "/" + branch
	}
	for _, d := range deepenSteps {
		if err := fetch(spec, d); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return src.wrap(err, remoteRef)
		}
		if have() {
			return nil
		}
	}
	return src.commitNotFound(want, remoteRef)
}

func (s *source) commitNotFound(want plumbing.Hash, ref string) error {
	return fmt.Errorf("%w: %s is not reachable from %s in %s (force-pushed or deleted?)", ErrCommitNotFound, want, ref, s.display)
}

// peelToCommit resolves an annotated tag to the commit it points at.
func peelToCommit(repo *git.Repository, h plumbing.Hash) (plumbing.Hash, error) {
	for range 10 {
		obj, err := repo.Object(plumbing.AnyObject, h)
		if err != nil {
			return plumbing.ZeroHash, fmt.Errorf("object %s: %w", short(h), err)
		}
		switch o := obj.(type) {
		case *object.Commit:
			return o.Hash, nil
		case *object.Tag:
			h = o.Target
		default:
			return plumbing.ZeroHash, fmt.Errorf("%s is a %s, not a commit", short(h), obj.Type())
		}
	}
	return plumbing.ZeroHash, fmt.Errorf("tag chain at %s is too long", short(h))
}

func updateSubmodules(ctx context.Context, wt *git.Worktree, src *source, creds *Credentials, progress io.Writer) error {
	subs, err := wt.Submodules()
	if err != nil {
		return fmt.Errorf("submodules: %w", err)
	}
	for _, sub := range subs {
		cfg := sub.Config()
		fmt.Fprintf(progress, "submodule %s\n", cfg.Path)
		// Credentials go only to the server they were given for.
		auth := src.auth
		if subEp, err := transport.NewEndpoint(cfg.URL); err == nil && subEp.Host != src.host && subEp.Protocol != "file" {
			auth = nil
		}
		err := sub.UpdateContext(ctx, &git.SubmoduleUpdateOptions{
			Init:              true,
			RecurseSubmodules: git.DefaultSubmoduleRecursionDepth,
			Auth:              auth,
			// Full history: the pinned commit need not be a branch tip.
			Depth: 0,
		})
		if err != nil {
			return fmt.Errorf("submodule %s: %w", cfg.Path, scrub(err, src.secrets))
		}
	}
	return nil
}

// wrap turns a go-git error into one of the package errors with the
// remote's safe URL, and scrubs any secret from the message.
func (s *source) wrap(err error, ref string) error {
	var kind error
	var hint string
	var noMatch git.NoMatchingRefSpecError
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err
	case errors.Is(err, transport.ErrAuthenticationRequired), errors.Is(err, transport.ErrAuthorizationFailed):
		kind, hint = ErrAuth, ": check the repository's username and token or key"
	case errors.Is(err, transport.ErrRepositoryNotFound):
		kind, hint = ErrRepoNotFound, " (or the credentials cannot see it)"
	case errors.Is(err, transport.ErrEmptyRemoteRepository):
		kind, hint = ErrRefNotFound, ": the repository is empty"
	case errors.As(err, &noMatch), errors.Is(err, plumbing.ErrReferenceNotFound):
		kind = ErrRefNotFound
		if ref != "" {
			hint = ": " + ref + " does not exist"
		}
	case isSSHAuthError(err):
		kind, hint = ErrAuth, ": check the repository's SSH key and known hosts"
	default:
		return fmt.Errorf("git %s: %w", s.display, scrub(err, s.secrets))
	}
	cause := scrub(err, s.secrets)
	msg := fmt.Sprintf("%v: %s%s", kind, s.display, hint)
	if !fromHTTPAnswer(err) {
		// Local detail (ssh, refs): useful and ours. An HTTP answer's text is the remote's body: never shown.
		msg += " (" + strings.TrimSpace(cause.Error()) + ")"
	}
	return &wrapped{kind: kind, err: cause, msg: msg}
}

// fromHTTPAnswer reports whether err is go-git's reading of an HTTP status, whose message carries the
// response body ("repository not found: <!DOCTYPE html>…").
func fromHTTPAnswer(err error) bool {
	return errors.Is(err, transport.ErrAuthenticationRequired) || errors.Is(err, transport.ErrAuthorizationFailed) ||
		errors.Is(err, transport.ErrRepositoryNotFound)
}

func isSSHAuthError(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "ssh: unable to authenticate") ||
		strings.Contains(msg, "ssh: handshake failed") ||
		strings.Contains(msg, "knownhosts:")
}

// wrapped is an error that matches both its package kind and its cause.
type wrapped struct {
	kind error
	err  error
	msg  string
}

func (e *wrapped) Error() string   { return e.msg }
func (e *wrapped) Unwrap() []error { return []error{e.kind, e.err} }

func short(h plumbing.Hash) string { return h.String()[:12] }
