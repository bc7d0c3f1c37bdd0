// Package hook holds what every inbound Git provider parser shares: the push
// event they all produce, the errors callers branch on, and the helpers that
// check signatures, refs and commit ids the same way for every provider.
//
// It is a leaf package so that the provider packages (github, gitlab, gitea,
// bitbucket, generic) and the dispatcher in package inbound can both import
// it. Callers normally use the aliases in package inbound instead.
package hook

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxBody is the largest webhook body Berth accepts. The HTTP layer applies it
// (http.MaxBytesReader) before a body reaches Verify or Parse. Push payloads
// carry at most 20 commits on GitHub and GitLab, so 5 MiB leaves ample room.
const MaxBody = 5 << 20

// Ref types of a PushEvent.
const (
	RefTypeBranch = "branch"
	RefTypeTag    = "tag"
)

// PushEvent is a branch or tag push, created, updated or deleted, as any
// provider reports it.
type PushEvent struct {
	// Ref is the full ref, e.g. refs/heads/main or refs/tags/v1.2.
	Ref string
	// RefType is RefTypeBranch or RefTypeTag.
	RefType string
	// Name is Ref without its refs/heads/ or refs/tags/ prefix.
	Name string
	// Commit is the lowercase hex id of the commit to build; empty when
	// Deleted. Providers that name only a tag object (not its commit) give
	// that id; a clone of the tag by name peels it.
	Commit string
	// Before is the previous value of the ref; empty when the ref was created.
	Before string
	// Pusher is the provider's user name of whoever pushed, for display only.
	Pusher string
	// Deleted is true when the push deleted the ref; such events start nothing.
	Deleted bool
	// DeliveryID identifies the delivery for deduplication; never empty
	// (a hash of the body when the provider sent no id).
	DeliveryID string
	// Provider is the provider name, e.g. "github".
	Provider string
	// CloneURL is the repository's clone URL as the payload states it. It is
	// informational: builds clone the URL configured for the repository,
	// never this one.
	CloneURL string
}

// Errors callers branch on. Every error returned by Verify and Parse in the
// provider packages wraps one of them.
var (
	// ErrBadSignature: the signature or token is missing or does not match.
	// The HTTP layer answers 401 and enqueues nothing.
	ErrBadSignature = errors.New("webhook signature is missing or invalid")
	// ErrIgnoredEvent: a well-formed delivery that is not a branch or tag push
	// (GitHub ping, issue events, notes refs…). The HTTP layer answers 202
	// and enqueues nothing.
	ErrIgnoredEvent = errors.New("webhook event ignored")
	// ErrInvalidPayload: the body or headers are not a valid push delivery.
	// The HTTP layer answers 400.
	ErrInvalidPayload = errors.New("webhook payload is invalid")
)

// Invalid returns an error wrapping ErrInvalidPayload.
func Invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidPayload, fmt.Sprintf(format, args...))
}

// Ignored returns an error wrapping ErrIgnoredEvent.
func Ignored(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrIgnoredEvent, fmt.Sprintf(format, args...))
}

// BadSignature returns an error wrapping ErrBadSignature.
func BadSignature(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrBadSignature, fmt.Sprintf(format, args...))
}

// SplitRef splits a full ref into its type and short name. Refs other than
// branches and tags give ErrIgnoredEvent; a name git would refuse gives
// ErrInvalidPayload.
func SplitRef(ref string) (refType, name string, err error) {
	switch {
	case strings.HasPrefix(ref, "refs/heads/"):
		refType, name = RefTypeBranch, strings.TrimPrefix(ref, "refs/heads/")
	case strings.HasPrefix(ref, "refs/tags/"):
		refType, name = RefTypeTag, strings.TrimPrefix(ref, "refs/tags/")
	case ref == "":
		return "", "", Invalid("ref is missing")
	default:
		return "", "", Ignored("ref %q is neither a branch nor a tag", truncate(ref, 100))
	}
	if err := CheckRefName(name); err != nil {
		return "", "", err
	}
	return refType, name, nil
}

// maxRefName bounds branch and tag names; git has no limit, but a name this
// long is an attack, not a branch.
const maxRefName = 1024

// CheckRefName applies git's check-ref-format rules to a branch or tag name
// (the part after refs/heads/ or refs/tags/), plus two of Berth's own: the
// name is valid UTF-8 and does not start with '-', so it can never be read as
// an option by a tool it is passed to.
func CheckRefName(name string) error {
	bad := func(why string) error {
		return Invalid("ref name %q is not valid: %s", truncate(name, 100), why)
	}
	switch {
	case name == "":
		return Invalid("ref name is empty")
	case len(name) > maxRefName:
		return bad(fmt.Sprintf("longer than %d bytes", maxRefName))
	case !utf8.ValidString(name):
		return bad("not valid UTF-8")
	case name == "@":
		return bad(`it is "@"`)
	case strings.HasPrefix(name, "-"):
		return bad("it starts with '-'")
	case strings.HasSuffix(name, ".") || strings.HasSuffix(name, "/"):
		return bad("it ends with '.' or '/'")
	case strings.Contains(name, ".."):
		return bad(`it contains ".."`)
	case strings.Contains(name, "@{"):
		return bad(`it contains "@{"`)
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f || strings.ContainsRune(" ~^:?*[\\", r) {
			return bad(fmt.Sprintf("it contains %q", r))
		}
	}
	for _, part := range strings.Split(name, "/") {
		if part == "" {
			return bad("it has an empty path component")
		}
		if strings.HasPrefix(part, ".") || strings.HasSuffix(part, ".lock") {
			return bad("a path component starts with '.' or ends with \".lock\"")
		}
	}
	return nil
}

// IsZeroSHA reports whether s is a non-empty run of '0': the id providers
// send for "no commit" (before of a created ref, after of a deleted one).
// SHA-256 repositories send 64 zeros, SHA-1 ones 40.
func IsZeroSHA(s string) bool {
	return s != "" && strings.Trim(s, "0") == ""
}

// ParseSHA checks that s is a full SHA-1 (40) or SHA-256 (64) hex object id
// and returns it in lower case. Empty and all-zero ids give "".
func ParseSHA(field, s string) (string, error) {
	if s == "" || IsZeroSHA(s) {
		return "", nil
	}
	if len(s) != 40 && len(s) != 64 {
		return "", Invalid("%s %q is not a 40 or 64 digit commit id", field, truncate(s, 80))
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return "", Invalid("%s %q is not a hex commit id", field, truncate(s, 80))
		}
	}
	return strings.ToLower(s), nil
}

// RefUpdate is what a provider payload says about one ref; Event turns it
// into a checked PushEvent with the same rules for every provider.
type RefUpdate struct {
	Provider   string
	DeliveryID string
	Ref        string
	Before     string
	After      string
	// Commit is the commit the provider names separately from After
	// (GitHub head_commit.id, GitLab checkout_sha); After is used when empty.
	Commit string
	// Deleted is the provider's own "deleted" flag; an all-zero After also
	// marks a deletion.
	Deleted  bool
	Pusher   string
	CloneURL string
}

// Event checks the update and returns the push event.
func (u RefUpdate) Event() (*PushEvent, error) {
	refType, name, err := SplitRef(u.Ref)
	if err != nil {
		return nil, err
	}
	before, err := ParseSHA("before", u.Before)
	if err != nil {
		return nil, err
	}
	after, err := ParseSHA("after", u.After)
	if err != nil {
		return nil, err
	}
	ev := &PushEvent{
		Ref:        u.Ref,
		RefType:    refType,
		Name:       name,
		Before:     before,
		Pusher:     CleanText(u.Pusher, 256),
		Deleted:    u.Deleted || IsZeroSHA(u.After),
		DeliveryID: u.DeliveryID,
		Provider:   u.Provider,
		CloneURL:   cleanURL(u.CloneURL),
	}
	if ev.Deleted {
		return ev, nil
	}
	commit := after
	if u.Commit != "" {
		if commit, err = ParseSHA("commit", u.Commit); err != nil {
			return nil, err
		}
	}
	if commit == "" {
		return nil, Invalid("push to %s names no commit", u.Ref)
	}
	ev.Commit = commit
	return ev, nil
}

// CleanText makes a payload string safe to store and show: valid UTF-8, no
// control or format characters, at most max bytes (cut on a rune boundary).
func CleanText(s string, max int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			return -1
		}
		return r
	}, s)
	return strings.TrimSpace(truncate(s, max))
}

func cleanURL(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > 2048 || strings.IndexFunc(s, func(r rune) bool { return r <= ' ' || r == 0x7f }) >= 0 {
		return ""
	}
	return s
}

// truncate cuts s to at most max bytes without splitting a rune.
func truncate(s string, max int) string {
	if len(s) <= max {
		return s
	}
	s = s[:max]
	for len(s) > 0 {
		r, size := utf8.DecodeLastRuneInString(s)
		if r != utf8.RuneError || size > 1 {
			break
		}
		s = s[:len(s)-1]
	}
	return s
}
