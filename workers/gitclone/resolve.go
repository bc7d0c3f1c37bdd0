package gitclone

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/storage/memory"

	"github.com/berth-dev/berth/webhooks/outbound"
)

// RefType says whether a name is a branch or a tag (build rules' source_type).
type RefType string

const (
	Branch RefType = "branch"
	Tag    RefType = "tag"
)

// FullRef returns the full ref name for name: a branch "main" is
// refs/heads/main, a tag "v1" is refs/tags/v1. A name that already starts
// with refs/ is returned as is.
func (t RefType) FullRef(name string) (string, error) {
	switch t {
	case Branch:
		return BranchRef(name), nil
	case Tag:
		return TagRef(name), nil
	default:
		return "", fmt.Errorf("%w: ref type %q is neither %q nor %q", ErrInvalidRequest, t, Branch, Tag)
	}
}

// ResolveRef asks the remote (like git ls-remote) which commit a branch or
// tag points at; annotated tags are peeled to their commit. It is how "build
// now" finds the head of a rule's branch or tag. An unknown name returns an
// error matching ErrRefNotFound. A non-nil guard confines it as CloneRequest.Guard does a clone.
func ResolveRef(ctx context.Context, url string, refType RefType, name string, creds *Credentials, guard *outbound.Guard) (commit string, ref string, err error) {
	ref, err = refType.FullRef(name)
	if err != nil {
		return "", "", err
	}
	if name == "" || plumbing.ReferenceName(ref).Validate() != nil {
		return "", "", fmt.Errorf("%w: %q is not a valid %s name", ErrInvalidRequest, name, refType)
	}
	src, refs, err := lsRemote(ctx, url, creds, guard, git.AppendPeeled)
	if src != nil && err != nil {
		return "", "", src.wrap(err, ref)
	}
	if err != nil {
		return "", "", err
	}

	var direct, peeled string
	for _, r := range refs {
		switch r.Name().String() {
		case ref:
			if r.Type() == plumbing.HashReference {
				direct = r.Hash().String()
			}
		case ref + "^{}":
			peeled = r.Hash().String()
		}
	}
	switch {
	case peeled != "":
		return peeled, ref, nil
	case direct != "":
		return direct, ref, nil
	}
	kind := "branch"
	if strings.HasPrefix(ref, "refs/tags/") {
		kind = "tag"
	}
	return "", "", fmt.Errorf("%w: %s %q does not exist in %s", ErrRefNotFound, kind, name, src.display)
}

// MaxRefs bounds the branches, and apart the tags, ListRefs returns.
const MaxRefs = 1000

// Refs are a remote's branch and tag names, sorted; Truncated says more than MaxRefs of either were cut.
type Refs struct {
	Branches  []string `json:"branches"`
	Tags      []string `json:"tags"`
	Truncated bool     `json:"truncated"`
}

// ListRefs asks the remote (like git ls-remote --heads --tags) for its branches and tags, for pickers. A
// non-nil guard confines it as CloneRequest.Guard does a clone.
func ListRefs(ctx context.Context, url string, creds *Credentials, guard *outbound.Guard) (*Refs, error) {
	src, list, err := lsRemote(ctx, url, creds, guard, git.IgnorePeeled)
	out := &Refs{Branches: []string{}, Tags: []string{}}
	switch {
	case errors.Is(err, transport.ErrEmptyRemoteRepository):
		return out, nil
	case src != nil && err != nil:
		return nil, src.wrap(err, "")
	case err != nil:
		return nil, err
	}
	for _, r := range list {
		n := r.Name()
		switch {
		case n.IsBranch():
			out.Branches = append(out.Branches, n.Short())
		case n.IsTag():
			out.Tags = append(out.Tags, n.Short())
		}
	}
	slices.Sort(out.Branches)
	slices.Sort(out.Tags)
	for _, l := range []*[]string{&out.Branches, &out.Tags} {
		if len(*l) > MaxRefs {
			*l, out.Truncated = (*l)[:MaxRefs], true
		}
	}
	return out, nil
}

// lsRemote lists the refs of the remote at url (git ls-remote), confined by guard when it is not nil. The
// source is nil when the error is about the URL or the guard's refusal; else listing failed and src.wrap words
// the error.
func lsRemote(ctx context.Context, url string, creds *Credentials, guard *outbound.Guard, peel git.PeelingOption) (*source, []*plumbing.Reference, error) {
	src, err := newSource(url, creds, nil)
	if err != nil {
		return nil, nil, err
	}
	if err := src.guard(ctx, guard); err != nil {
		return nil, nil, err
	}
	remote := git.NewRemote(memory.NewStorage(), &config.RemoteConfig{Name: git.DefaultRemoteName, URLs: []string{src.url}})
	refs, err := remote.ListContext(withGuard(ctx, guard), &git.ListOptions{Auth: src.auth, PeelingOption: peel})
	return src, refs, err
}
