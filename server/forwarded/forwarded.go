// Package forwarded owns what Berth believes about where a request comes from (SPEC §10, §13): the client's
// address and the URL the client used. X-Forwarded-For, X-Forwarded-Host and X-Forwarded-Proto count only when
// the request comes from a trusted proxy (--trusted-proxy); the external URL is --public-url when it is set,
// else the request's own.
//
// Resolver.Handler decides once per request, in front of everything (registry, API, console), and leaves the
// answer in the request's context; ClientIP, PublicURL and SameOrigin read it there, so in-process requests
// made with that context (the console's API calls) keep it.
package forwarded

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
)

// Resolver resolves requests' clients and URLs. Its zero value trusts no proxy and follows each request's Host.
type Resolver struct {
	trusted   []netip.Prefix
	publicURL string // "" = the request's own scheme://host
	public    string // publicURL's origin
}

// New returns a resolver trusting the proxies in trusted (CIDRs or single addresses, the values of
// --trusted-proxy) and answering publicURL as every request's external URL ("" = the request's own).
func New(trusted []string, publicURL string) (*Resolver, error) {
	rs := &Resolver{publicURL: strings.TrimRight(publicURL, "/")}
	for _, s := range trusted {
		p, err := parsePrefix(s)
		if err != nil {
			return nil, err
		}
		rs.trusted = append(rs.trusted, p)
	}
	if rs.publicURL != "" {
		u, err := url.Parse(rs.publicURL)
		if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
			return nil, fmt.Errorf("--public-url %q: give the URL clients use, like https://registry.example.com", publicURL)
		}
		rs.public = u.Scheme + "://" + u.Host
	}
	return rs, nil
}

func parsePrefix(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Masked(), nil
	}
	if a, err := netip.ParseAddr(s); err == nil {
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	return netip.Prefix{}, fmt.Errorf("--trusted-proxy %q: give the load balancer's address or network as a CIDR, like 10.0.0.0/8 or 192.0.2.7", s)
}

// Request is what the resolver decided about one request.
type Request struct {
	ClientIP  string // the client's address: the peer's, or the right-most untrusted X-Forwarded-For entry
	Origin    string // scheme://host[:port] the client used: the request's own, or X-Forwarded-Proto/-Host
	PublicURL string // --public-url, else Origin
	public    string // --public-url's origin, else Origin
}

type ctxKey struct{}

// Handler resolves every request before next serves it.
func (rs *Resolver) Handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		in := rs.Resolve(r)
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, in)))
	})
}

// Resolve decides where r comes from.
func (rs *Resolver) Resolve(r *http.Request) *Request {
	peer := addrOf(r.RemoteAddr)
	scheme, host := "http", r.Host
	if r.TLS != nil {
		scheme = "https"
	}
	in := &Request{ClientIP: hostOf(r.RemoteAddr)}
	if peer.IsValid() && rs.trusts(peer) {
		in.ClientIP = rs.client(r.Header.Values("X-Forwarded-For"), peer).String()
		if p := last(r.Header.Values("X-Forwarded-Proto")); p == "http" || p == "https" {
			scheme = p
		}
		if h := last(r.Header.Values("X-Forwarded-Host")); validHost(h) {
			host = h
		}
	}
	in.Origin = scheme + "://" + host
	in.PublicURL, in.public = in.Origin, in.Origin
	if rs.publicURL != "" {
		in.PublicURL, in.public = rs.publicURL, rs.public
	}
	return in
}

func (rs *Resolver) trusts(a netip.Addr) bool {
	for _, p := range rs.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// client is the right-most X-Forwarded-For address not in a trusted range, walking from the trusted peer
// leftwards; when every hop is trusted, the left-most. An entry that is no address ends the walk at the last
// trusted hop: nothing left of it can be believed.
func (rs *Resolver) client(xff []string, peer netip.Addr) netip.Addr {
	var hops []string
	for _, v := range xff {
		hops = append(hops, strings.Split(v, ",")...)
	}
	client := peer
	for i := len(hops) - 1; i >= 0; i-- {
		a := addrOf(strings.TrimSpace(hops[i]))
		if !a.IsValid() {
			break
		}
		client = a
		if !rs.trusts(a) {
			break
		}
	}
	return client
}

// addrOf parses an address with or without a port ("192.0.2.1", "192.0.2.1:80", "[2001:db8::1]:80", "::1").
func addrOf(s string) netip.Addr {
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap().WithZone("")
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap().WithZone("")
	}
	return netip.Addr{}
}

func hostOf(remoteAddr string) string {
	if a := addrOf(remoteAddr); a.IsValid() {
		return a.String()
	}
	if h, _, err := net.SplitHostPort(remoteAddr); err == nil {
		return h
	}
	return remoteAddr
}

// last is the last comma-separated value of a header: the one the nearest proxy set.
func last(values []string) string {
	if len(values) == 0 {
		return ""
	}
	v := values[len(values)-1]
	if i := strings.LastIndexByte(v, ','); i >= 0 {
		v = v[i+1:]
	}
	return strings.TrimSpace(v)
}

// validHost accepts host[:port] with a DNS name, an IPv4 address or a bracketed IPv6 address.
func validHost(h string) bool {
	if h == "" || len(h) > 255 {
		return false
	}
	u, err := url.Parse("http://" + h)
	return err == nil && u.Host == h && u.User == nil && u.Path == "" && u.RawQuery == "" && u.Fragment == "" &&
		!strings.ContainsAny(h, " \t\\\"'<>")
}

// Of is what was decided about r: by Handler, else (a request that did not pass it) from r alone, trusting no
// proxy.
func Of(r *http.Request) *Request {
	if in, ok := r.Context().Value(ctxKey{}).(*Request); ok {
		return in
	}
	return (&Resolver{}).Resolve(r)
}

// ClientIP is the address of r's client.
func ClientIP(r *http.Request) string { return Of(r).ClientIP }

// ClientIPFrom is the client address Handler left in ctx, else the host of remoteAddr.
func ClientIPFrom(ctx context.Context, remoteAddr string) string {
	if in, ok := ctx.Value(ctxKey{}).(*Request); ok {
		return in.ClientIP
	}
	return hostOf(remoteAddr)
}

// PublicURL is the external URL of Berth for r's client, without a trailing slash: --public-url, else the
// URL the client used (http://HOST of the request, or what a trusted proxy forwarded).
func PublicURL(r *http.Request) string { return Of(r).PublicURL }

// SameOrigin reports whether origin (an Origin header, scheme://host[:port]) is this site: the URL r's
// client used, or --public-url's origin.
func SameOrigin(r *http.Request, origin string) bool {
	in := Of(r)
	return origin != "" && (strings.EqualFold(origin, in.Origin) || strings.EqualFold(origin, in.public))
}
