package gitclone

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/plumbing/transport/client"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
	"golang.org/x/crypto/ssh"

	"github.com/berth-dev/berth/webhooks/outbound"
)

// A guarded clone (CloneRequest.Guard, ResolveRef's guard) connects only to addresses its outbound.Guard
// allows. go-git picks its http transport from a process-wide table, so this package installs, once, one that
// sends each request either the usual way or, when the request's context carries a guard, through a
// transport of its own: dialled by the guard (every connection, redirects' included, to a vetted address),
// never through a proxy, and never reusing a connection. ssh has no such hook; a guarded ssh clone dials the
// address the guard vetted, and checks the host key under the URL's host name.
func init() {
	c := githttp.NewClient(&http.Client{Transport: guardSwitch{}})
	client.InstallProtocol("http", c)
	client.InstallProtocol("https", c)
}

type guardKey struct{}

func withGuard(ctx context.Context, g *outbound.Guard) context.Context {
	if g == nil {
		return ctx
	}
	return context.WithValue(ctx, guardKey{}, g)
}

type guardSwitch struct{}

func (guardSwitch) RoundTrip(req *http.Request) (*http.Response, error) {
	g, _ := req.Context().Value(guardKey{}).(*outbound.Guard)
	if g == nil {
		return capRefs(http.DefaultTransport.RoundTrip(req))
	}
	t := &http.Transport{
		Proxy:               nil,
		DialContext:         g.DialContext,
		DisableKeepAlives:   true,
		ForceAttemptHTTP2:   true,
		TLSHandshakeTimeout: 10 * time.Second,
	}
	defer t.CloseIdleConnections()
	return capRefs(t.RoundTrip(req))
}

// MaxRefAdvertisement bounds the ref list a Git server may send (GET …/info/refs): ls-remote, "build now" and a
// clone's first step read it whole into memory, in the API process for the first two. Real repositories'
// lists are a few MiB at most.
const MaxRefAdvertisement = 32 << 20

// capRefs makes a ref advertisement's body fail past MaxRefAdvertisement.
func capRefs(resp *http.Response, err error) (*http.Response, error) {
	if err == nil && strings.HasSuffix(resp.Request.URL.Path, "/info/refs") {
		resp.Body = &cappedBody{ReadCloser: resp.Body, left: MaxRefAdvertisement}
	}
	return resp, err
}

type cappedBody struct {
	io.ReadCloser
	left int64
}

func (b *cappedBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		return 0, fmt.Errorf("the Git server's list of refs is larger than %d bytes", MaxRefAdvertisement)
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.ReadCloser.Read(p)
	b.left -= int64(n)
	return n, err
}

// guard confines s to what g allows: only http(s) and ssh, and for ssh the address g vetted.
func (s *source) guard(ctx context.Context, g *outbound.Guard) error {
	if g == nil {
		return nil
	}
	ep, err := transport.NewEndpoint(s.url)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidURL, err)
	}
	switch ep.Protocol {
	case "http", "https":
		return nil
	case "ssh":
	default:
		return fmt.Errorf("%w: %s is %s: this source may only use https, http or ssh", ErrLocalSource, s.display, ep.Protocol)
	}
	addrs, err := g.Check(ctx, ep.Host)
	if err != nil {
		return fmt.Errorf("git %s: %w", s.display, err)
	}
	hostPort := net.JoinHostPort(ep.Host, strconv.Itoa(sshPort(ep)))
	// go-git's ssh dials by itself: pick the first vetted address that answers, and name it in the URL.
	var errs []error
	pick := netip.Addr{}
	for _, a := range addrs {
		a = a.Unmap().WithZone("")
		conn, err := (&net.Dialer{Timeout: 10 * time.Second}).DialContext(ctx, "tcp", netip.AddrPortFrom(a, uint16(sshPort(ep))).String())
		if err == nil {
			conn.Close()
			pick = a
			break
		}
		errs = append(errs, err)
	}
	if !pick.IsValid() {
		return fmt.Errorf("git %s: %w", s.display, errors.Join(errs...))
	}
	ep.Host = pick.String()
	if pick.Is6() {
		ep.Host = "[" + ep.Host + "]"
	}
	s.url = ep.String()
	// The host key is checked under the name the URL gave, not the address dialled.
	wrapCB := func(cb ssh.HostKeyCallback) ssh.HostKeyCallback {
		if cb == nil {
			return nil
		}
		return func(_ string, remote net.Addr, key ssh.PublicKey) error { return cb(hostPort, remote, key) }
	}
	switch a := s.auth.(type) {
	case *gitssh.PublicKeys:
		a.HostKeyCallback = wrapCB(a.HostKeyCallback)
	case *gitssh.Password:
		a.HostKeyCallback = wrapCB(a.HostKeyCallback)
	}
	return nil
}
