package outbound

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
)

// Guard keeps Berth's own outbound connections to user-chosen hosts off the addresses a user must not reach
// through Berth (SSRF): loopback, private, link-local, shared, multicast, unspecified and reserved ranges, in
// every IPv4 and IPv6 form, unless Allow holds them. Triggers use it through Deliverer; code sources of
// non-administrators (the clone and "build now") through DialContext. The zero value refuses every non-public
// address. It is safe for concurrent use as long as its fields are not changed.
type Guard struct {
	// Allow lists non-public prefixes that may nevertheless be reached (see ParseAllowCIDRs).
	Allow []netip.Prefix
	// Flag is the server flag that fills Allow, named in refusals; "" means AllowFlag.
	Flag string
	// Resolver resolves host names; nil means net.DefaultResolver.
	Resolver Resolver
	// Dialer connects to vetted addresses; nil means a net.Dialer.
	Dialer Dialer
}

// Check resolves host exactly once (an IP literal is not looked up) and returns its addresses, or a
// *RefusedError when any of them is refused: a name that resolves to one public and one private address is
// refused, since a client may use either.
func (g *Guard) Check(ctx context.Context, host string) ([]netip.Addr, error) {
	addrs, err := resolve(ctx, g.Resolver, host)
	if err != nil {
		return nil, err
	}
	if err := g.vet(host, addrs); err != nil {
		return nil, err
	}
	return addrs, nil
}

func (g *Guard) vet(host string, addrs []netip.Addr) error {
	for _, a := range addrs {
		if kind := classify(a); kind != "" && !allowed(a, g.Allow) {
			return &RefusedError{Host: host, Addr: a, Kind: kind, Flag: g.Flag}
		}
	}
	return nil
}

// DialContext connects to address ("host:port") the way Check allows: the host is resolved once, every
// address is vetted, and only vetted addresses are dialled, so DNS cannot change between the check and the
// connection. Use it as an http.Transport's DialContext (with Proxy nil), and every connection of a request,
// its redirects' included, is vetted.
func (g *Guard) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		return nil, fmt.Errorf("refusing to dial %q: %w", address, err)
	}
	addrs, err := g.Check(ctx, host)
	if err != nil {
		return nil, err
	}
	var dialer Dialer = &net.Dialer{}
	if g.Dialer != nil {
		dialer = g.Dialer
	}
	var errs []error
	for _, a := range addrs {
		conn, err := dialer.DialContext(ctx, network, net.JoinHostPort(a.Unmap().WithZone("").String(), port))
		if err == nil {
			return conn, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return nil, errors.Join(errs...)
}

// resolve returns the host's addresses, looking a name up exactly once.
func resolve(ctx context.Context, r Resolver, host string) ([]netip.Addr, error) {
	if a, err := netip.ParseAddr(host); err == nil {
		return []netip.Addr{a}, nil
	}
	if r == nil {
		r = net.DefaultResolver
	}
	addrs, err := r.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return nil, fmt.Errorf("resolving %s: %w", host, err)
	}
	if len(addrs) == 0 {
		return nil, fmt.Errorf("resolving %s: no addresses", host)
	}
	return addrs, nil
}
