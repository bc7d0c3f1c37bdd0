package gitclone

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"regexp"
	"strings"

	"github.com/go-git/go-git/v5/plumbing/transport"

	"github.com/berth-dev/berth/webhooks/outbound"
)

// SourceAllowFlag is the server flag that lets non-administrators' code sources reach private addresses.
const SourceAllowFlag = "--source-allow-cidr"

// Errors of CheckSource, besides ErrInvalidURL and outbound.ErrRefused.
var (
	// ErrLocalSource: the URL names a repository on the Berth host's own disk (file://, in any spelling, or
	// a plain path). Only the administrator may connect one.
	ErrLocalSource = errors.New("a local repository on the Berth host")
)

// Remote is a clone URL as the clone reads it — go-git's own endpoint parsing, the one Clone and ResolveRef
// use — normalised: scheme and host lower-case, IPv6 hosts without brackets, scp-style user@host:path as ssh.
// Judging a URL by its Remote, never by its text, is what keeps "FILE:///…" or "/srv/repo" from passing for
// something else.
type Remote struct {
	Scheme      string // "https", "http", "ssh", "git" or "file" (a plain path is "file" too)
	User        string
	HasPassword bool
	Host        string
	Port        int // 0: the scheme's default (scp-style URLs say 22)
	Path        string
	// Explicit tells a URL with a scheme ("x://…") from scp-style and plain-path forms.
	Explicit bool
}

// ParseRemote parses raw the way the clone will.
func ParseRemote(raw string) (Remote, error) {
	ep, err := transport.NewEndpoint(raw)
	if err != nil {
		return Remote{}, scrub(fmt.Errorf("%w: %v", ErrInvalidURL, err), urlSecrets(raw))
	}
	return Remote{
		Scheme:      strings.ToLower(ep.Protocol),
		User:        ep.User,
		HasPassword: ep.Password != "",
		Host:        strings.ToLower(strings.TrimSuffix(strings.TrimPrefix(ep.Host, "["), "]")),
		Port:        ep.Port,
		Path:        ep.Path,
		Explicit:    schemeRE.MatchString(raw),
	}, nil
}

// schemeRE is go-git's own test for "a URL with a scheme" (internal/url.MatchesScheme).
var schemeRE = regexp.MustCompile(`^[^:]+://`)

// hostRE is a DNS name, or an IPv4 literal; IPv6 literals are checked with netip.
var hostRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9._-]*[a-z0-9])?$`)

// MaxSourceURL bounds a code source's URL.
const MaxSourceURL = 2048

// CheckSource applies the code source rules to raw, on its parsed, normalised Remote, and returns that Remote:
//   - https, http or ssh (URL or scp-style user@host:path) with a host and a repository path; no password in
//     the URL (credentials belong in the source's token, password or key), no query or fragment;
//   - file:///absolute/path, in any spelling, only when admin (ErrLocalSource otherwise); a plain path is
//     never a URL;
//   - when guard is set and the caller is not admin, the host must not resolve to an address guard refuses
//     (an error wrapping outbound.ErrRefused). A name that does not resolve now is accepted: the clone checks
//     again when it connects.
func CheckSource(ctx context.Context, raw string, admin bool, guard *outbound.Guard) (Remote, error) {
	if raw == "" || len(raw) > MaxSourceURL || strings.ContainsFunc(raw, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return Remote{}, fmt.Errorf("%w: url must be 1 to %d characters without spaces or control characters", ErrInvalidURL, MaxSourceURL)
	}
	r, err := ParseRemote(raw)
	if err != nil {
		return Remote{}, err
	}
	if r.HasPassword {
		return Remote{}, fmt.Errorf("%w: url must not carry a password: give it as token or password, which are stored encrypted and never shown", ErrInvalidURL)
	}
	switch r.Scheme {
	case "https", "http", "ssh":
	case "file":
		if !admin {
			return Remote{}, ErrLocalSource
		}
		if !r.Explicit || r.Host != "" || !strings.HasPrefix(r.Path, "/") {
			return Remote{}, fmt.Errorf("%w: a local repository is given as file:///absolute/path on the Berth host", ErrInvalidURL)
		}
		return r, nil
	default:
		return Remote{}, fmt.Errorf("%w: url %q is not a clone URL: use https://host/path, ssh://user@host/path or user@host:path (scheme %q is not supported)", ErrInvalidURL, raw, r.Scheme)
	}
	if !validHost(r.Host) {
		return Remote{}, fmt.Errorf("%w: url %q has no valid host name or address", ErrInvalidURL, raw)
	}
	// The clone hands go-git the URL re-rendered (scp-style becomes ssh://…): it must read back as the same.
	ep, _ := transport.NewEndpoint(raw)
	ep.Password = ""
	if again, err := ParseRemote(ep.String()); err != nil || again.Scheme != r.Scheme || again.Host != r.Host {
		return Remote{}, fmt.Errorf("%w: url %q is not a clone URL: use https://host/path, ssh://user@host/path or user@host:path", ErrInvalidURL, raw)
	}
	if p := strings.Trim(r.Path, "/"); p == "" || p == "~" {
		return Remote{}, fmt.Errorf("%w: url %q needs a repository path after the host", ErrInvalidURL, raw)
	}
	if r.Explicit {
		u, err := url.Parse(raw)
		if err != nil {
			return Remote{}, fmt.Errorf("%w: %v", ErrInvalidURL, err)
		}
		if u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.Contains(raw, "#") {
			return Remote{}, fmt.Errorf("%w: url must not have a query or a fragment", ErrInvalidURL)
		}
	}
	if guard != nil && !admin {
		if _, err := guard.Check(ctx, r.Host); errors.Is(err, outbound.ErrRefused) {
			return Remote{}, err
		}
	}
	return r, nil
}

func validHost(h string) bool {
	if a, err := netip.ParseAddr(h); err == nil {
		return a.Zone() == ""
	}
	return len(h) <= 253 && hostRE.MatchString(h)
}
