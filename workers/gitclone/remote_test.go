package gitclone

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/go-git/go-git/v5/plumbing/transport"

	"github.com/berth-dev/berth/webhooks/outbound"
)

// publicResolver resolves every name to a public address, except names under .internal (a private one) and
// localhost: the rules, not the machine's DNS, decide in these tests.
type publicResolver struct{}

func (publicResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	switch {
	case host == "localhost" || strings.HasSuffix(host, ".localhost"):
		return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
	case strings.HasSuffix(host, ".internal"):
		return []netip.Addr{netip.MustParseAddr("93.184.215.14"), netip.MustParseAddr("10.1.2.3")}, nil
	}
	return []netip.Addr{netip.MustParseAddr("93.184.215.14")}, nil
}

// TestCheckSource: every spelling of a local repository is local, whatever its case or form; a
// non-administrator's URL must lead to a public address; the administrator is exempt from the address rule.
func TestCheckSource(t *testing.T) {
	guard := &outbound.Guard{Resolver: publicResolver{}, Flag: SourceAllowFlag}
	ctx := context.Background()
	cases := []struct {
		url         string
		admin, user error // nil: accepted
	}{
		{"https://git.example.com/team/app.git", nil, nil},
		{"HTTPS://Git.Example.COM/team/app.git", nil, nil},
		{"git@github.com:team/app.git", nil, nil},
		{"ssh://git@git.example.com:2222/team/app.git", nil, nil},
		{"file:///srv/git/app.git", nil, ErrLocalSource},
		{"FILE:///etc/berth.git", nil, ErrLocalSource},
		{"File:///etc/berth.git", nil, ErrLocalSource},
		{"fIlE:///etc/berth.git", nil, ErrLocalSource},
		{"/etc/berth.git", ErrInvalidURL, ErrLocalSource},
		{"./repo", ErrInvalidURL, ErrLocalSource},
		{"repo.git", ErrInvalidURL, ErrLocalSource},
		{"file://host/etc/berth.git", ErrInvalidURL, ErrLocalSource},
		{"http://127.0.0.1:8080/team/app.git", nil, outbound.ErrRefused},
		{"http://localhost/team/app.git", nil, outbound.ErrRefused},
		{"https://git.internal/team/app.git", nil, outbound.ErrRefused},
		{"http://[::1]/team/app.git", nil, outbound.ErrRefused},
		{"http://[::ffff:127.0.0.1]/team/app.git", nil, outbound.ErrRefused},
		{"http://169.254.169.254/latest/meta-data.git", nil, outbound.ErrRefused},
		{"HTTP://10.0.0.8/team/app.git", nil, outbound.ErrRefused},
		{"git@127.0.0.1:team/app.git", nil, outbound.ErrRefused},
		{"git@[::1]:team/app.git", ErrInvalidURL, ErrInvalidURL},
		{"ssh://git@[fd00::1]/team/app.git", nil, outbound.ErrRefused},
		{"git://git.example.com/team/app.git", ErrInvalidURL, ErrInvalidURL},
		{"ftp://git.example.com/team/app.git", ErrInvalidURL, ErrInvalidURL},
		{"https://u:secret@git.example.com/a.git", ErrInvalidURL, ErrInvalidURL},
		{"https://git.example.com", ErrInvalidURL, ErrInvalidURL},
		{"https://git.example.com/a.git?x=1", ErrInvalidURL, ErrInvalidURL},
		{"https://git.example.com/a.git#frag", ErrInvalidURL, ErrInvalidURL},
		{"https://git.example.com/a b.git", ErrInvalidURL, ErrInvalidURL},
		{"https://git.example.com:port/a.git", ErrInvalidURL, ErrInvalidURL},
		{"", ErrInvalidURL, ErrInvalidURL},
	}
	for _, c := range cases {
		for _, admin := range []bool{true, false} {
			want := c.user
			if admin {
				want = c.admin
			}
			_, err := CheckSource(ctx, c.url, admin, guard)
			if (want == nil) != (err == nil) || (want != nil && !errors.Is(err, want)) {
				t.Errorf("CheckSource(%q, admin=%v) = %v, want %v", c.url, admin, err, want)
			}
		}
	}
	// --source-allow-cidr lets a private range in.
	allow := &outbound.Guard{Resolver: publicResolver{}, Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}
	if _, err := CheckSource(ctx, "http://127.0.0.1:8080/team/app.git", false, allow); err != nil {
		t.Fatalf("allowed range: %v", err)
	}
	_, err := CheckSource(ctx, "http://127.0.0.1:8080/team/app.git", false, guard)
	if err == nil || !strings.Contains(err.Error(), "127.0.0.1 is a loopback address") || !strings.Contains(err.Error(), SourceAllowFlag) {
		t.Fatalf("refusal: %v", err)
	}
}

// FuzzSourceURL: whatever a non-administrator's source URL is, when CheckSource accepts it, it is https,
// http or ssh to a host whose addresses the guard allows — never a file URL or a local path — and the clone
// reads it the same way (same protocol, same host).
func FuzzSourceURL(f *testing.F) {
	for _, s := range []string{
		"https://git.example.com/team/app.git", "git@github.com:team/app.git", "ssh://git@h:22/a", "FILE:///etc/x",
		"file:/etc/x", "/etc/x", "C:\\repo", "http://127.0.0.1/a", "http://[::ffff:10.0.0.1]/a", "git@[::1]:a",
		"http://0x7f000001/a", "ssh://h.internal/a", "a@b@c:d/e", "https://h/a?b", "HTTPS://H/%2e%2e/a",
		"http://h:99999/a", "ssh://[fe80::1%25eth0]/a", "x://y/z", "git@h:123:a/b",
	} {
		f.Add(s)
	}
	guard := &outbound.Guard{Resolver: publicResolver{}, Flag: SourceAllowFlag}
	f.Fuzz(func(t *testing.T, raw string) {
		r, err := CheckSource(context.Background(), raw, false, guard)
		if err != nil {
			if r != (Remote{}) {
				t.Fatalf("%q refused with a Remote: %+v", raw, r)
			}
			return
		}
		switch r.Scheme {
		case "https", "http", "ssh":
		default:
			t.Fatalf("%q accepted with scheme %q", raw, r.Scheme)
		}
		if r.Host == "" || r.HasPassword {
			t.Fatalf("%q accepted with host %q, password %v", raw, r.Host, r.HasPassword)
		}
		if _, err := guard.Check(context.Background(), r.Host); err != nil {
			t.Fatalf("%q accepted, but its host is refused: %v", raw, err)
		}
		src, err := newSource(raw, nil, nil)
		if err != nil {
			t.Fatalf("%q accepted, but the clone cannot read it: %v", raw, err)
		}
		ep, err := transport.NewEndpoint(src.url)
		if err != nil {
			t.Fatalf("%q: the clone's URL %q does not parse: %v", raw, src.url, err)
		}
		if ep.Protocol != r.Scheme || !strings.EqualFold(strings.Trim(ep.Host, "[]"), r.Host) {
			t.Fatalf("%q: checked as %s://%s, cloned as %s://%s", raw, r.Scheme, r.Host, ep.Protocol, ep.Host)
		}
	})
}

// countingServer counts the requests it gets and answers each with 404 and an HTML body.
func countingServer(t *testing.T, ip string) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var n atomic.Int64
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte("<!DOCTYPE HTML><title>internal admin panel</title>secret-remote-body"))
	}))
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, &n
}

// TestGuardedClone: a guarded clone and "build now" (ResolveRef) reach no refused address — not directly,
// not through a redirect from an allowed one — and connect where --source-allow-cidr allows; an unguarded
// one is unchanged. A remote's answer body never appears in an error.
func TestGuardedClone(t *testing.T) {
	requireGit(t)
	root := t.TempDir()
	newFixture(t, root, "app", false)
	base := newGitServer(t, root, "", "")
	ctx := testContext(t)
	refuse := &outbound.Guard{Flag: SourceAllowFlag}
	allow := &outbound.Guard{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, Flag: SourceAllowFlag}

	_, err := Clone(ctx, CloneRequest{URL: base + "/app.git", Ref: BranchRef("main"), Dir: t.TempDir(), Guard: refuse}, nil)
	if !errors.Is(err, outbound.ErrRefused) || !strings.Contains(err.Error(), SourceAllowFlag) {
		t.Fatalf("guarded clone of a loopback server: %v", err)
	}
	if _, _, err := ResolveRef(ctx, base+"/app.git", Branch, "main", nil, refuse); !errors.Is(err, outbound.ErrRefused) {
		t.Fatalf("guarded ResolveRef of a loopback server: %v", err)
	}
	if _, err := Clone(ctx, CloneRequest{URL: base + "/app.git", Ref: BranchRef("main"), Dir: t.TempDir(), Guard: allow}, nil); err != nil {
		t.Fatalf("clone in an allowed range: %v", err)
	}
	if _, err := Clone(ctx, CloneRequest{URL: base + "/app.git", Ref: BranchRef("main"), Dir: t.TempDir()}, nil); err != nil {
		t.Fatalf("unguarded clone: %v", err)
	}
	for _, u := range []string{"file://" + root + "/app.git", root + "/app.git"} {
		if _, err := Clone(ctx, CloneRequest{URL: u, Dir: t.TempDir(), Guard: allow}, nil); !errors.Is(err, ErrLocalSource) {
			t.Fatalf("guarded clone of %s: %v", u, err)
		}
	}

	// A redirect from an allowed address (127.0.0.2) to a refused one (127.0.0.1) is never followed there.
	inner, innerHits := countingServer(t, "127.0.0.1")
	redirector := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, inner.URL+r.URL.Path+"?"+r.URL.RawQuery, http.StatusFound)
	}))
	ln, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Fatal(err)
	}
	redirector.Listener.Close()
	redirector.Listener = ln
	redirector.Start()
	t.Cleanup(redirector.Close)
	only2 := &outbound.Guard{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}, Flag: SourceAllowFlag}
	_, _, err = ResolveRef(ctx, redirector.URL+"/app.git", Branch, "main", nil, only2)
	if !errors.Is(err, outbound.ErrRefused) || innerHits.Load() != 0 {
		t.Fatalf("redirect into a refused range: %v (the refused server saw %d requests)", err, innerHits.Load())
	}

	// The remote's 404 page stays out of the error, guarded or not.
	for _, g := range []*outbound.Guard{nil, allow} {
		_, _, err = ResolveRef(ctx, inner.URL+"/missing.git", Branch, "main", nil, g)
		if !errors.Is(err, ErrRepoNotFound) || strings.Contains(err.Error(), "DOCTYPE") || strings.Contains(err.Error(), "secret-remote-body") {
			t.Fatalf("404 answer: %v", err)
		}
	}
	if innerHits.Load() != 2 {
		t.Fatalf("the 404 server saw %d requests, want 2", innerHits.Load())
	}
}
