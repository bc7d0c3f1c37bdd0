package outbound

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// AllowFlag is the server flag that fills Deliverer.AllowCIDRs; refusals
// name it so the operator knows how to allow an internal receiver.
const AllowFlag = "--trigger-allow-cidr"

// ErrRefused is wrapped by every refusal of a delivery's destination address.
var ErrRefused = errors.New("trigger destination refused")

// RefusedError is a delivery refused because Host resolved to Addr, which is
// not a public address and not allowed by AllowCIDRs.
type RefusedError struct {
	Host string     // the URL's host
	Addr netip.Addr // the address refused
	Kind string     // e.g. "a loopback address"
	Flag string     // the flag that allows it; "" means AllowFlag
}

func (e *RefusedError) Error() string {
	flag := e.Flag
	if flag == "" {
		flag = AllowFlag
	}
	if a, err := netip.ParseAddr(e.Host); err == nil && a == e.Addr {
		return fmt.Sprintf("refused: %s is %s (allow it with %s)", e.Addr, e.Kind, flag)
	}
	return fmt.Sprintf("refused: %s resolves to %s, which is %s (allow it with %s)", e.Host, e.Addr, e.Kind, flag)
}

// Is makes errors.Is(err, ErrRefused) true.
func (e *RefusedError) Is(target error) bool { return target == ErrRefused }

type blockedRange struct {
	prefix netip.Prefix
	kind   string
}

func ranges(kind string, cidrs ...string) []blockedRange {
	var r []blockedRange
	for _, c := range cidrs {
		r = append(r, blockedRange{netip.MustParsePrefix(c), kind})
	}
	return r
}

// blocked lists the non-public ranges, most specific first where they nest.
var blocked = slices.Concat(
	ranges("an unspecified address", "0.0.0.0/32", "::/128"),
	ranges("a loopback address", "127.0.0.0/8", "::1/128"),
	ranges("a private address", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"),
	ranges("a link-local address", "169.254.0.0/16", "fe80::/10"),
	ranges("a shared (CGNAT) address", "100.64.0.0/10"),
	ranges("a multicast address", "224.0.0.0/4", "ff00::/8"),
	ranges("a broadcast address", "255.255.255.255/32"),
	ranges("a \"this network\" address", "0.0.0.0/8"),
	ranges("a reserved address", "240.0.0.0/4", "192.0.0.0/24", "198.18.0.0/15", "fec0::/10", "100::/64", "::/8"),
)

var (
	nat64     = netip.MustParsePrefix("64:ff9b::/96")
	sixToFour = netip.MustParsePrefix("2002::/16")
)

// classify returns why a is not a public address ("a loopback address"), or
// "" when it is public. IPv6 forms that embed an IPv4 address (IPv4-mapped,
// NAT64, 6to4) are judged by that address, since that is where they lead.
func classify(a netip.Addr) string {
	a = a.WithZone("")
	if a.Is4In6() {
		if k := classify(a.Unmap()); k != "" {
			return "the IPv4-mapped form of " + k
		}
		return ""
	}
	if a.Is6() {
		b := a.As16()
		if nat64.Contains(a) {
			if k := classify(netip.AddrFrom4([4]byte(b[12:16]))); k != "" {
				return "the NAT64 form of " + k
			}
			return "" // inside ::/8, but public through the NAT64 gateway
		}
		if sixToFour.Contains(a) {
			if k := classify(netip.AddrFrom4([4]byte(b[2:6]))); k != "" {
				return "the 6to4 form of " + k
			}
		}
	}
	for _, r := range blocked {
		if r.prefix.Contains(a) {
			return r.kind
		}
	}
	if !a.IsValid() {
		return "an invalid address"
	}
	return ""
}

// allowed reports whether a (or the IPv4 address it maps) is in allow.
func allowed(a netip.Addr, allow []netip.Prefix) bool {
	a = a.WithZone("")
	for _, p := range allow {
		if p.Contains(a) || p.Contains(a.Unmap()) {
			return true
		}
	}
	return false
}

// ParseAllowCIDRs parses the values of --trigger-allow-cidr: CIDR prefixes
// ("10.0.0.0/8", "fd00::/8") or single addresses ("192.168.1.20"). Blank
// entries are skipped; IPv4-mapped IPv6 prefixes become IPv4 prefixes.
func ParseAllowCIDRs(values []string) ([]netip.Prefix, error) {
	return ParseAllowFlag(AllowFlag, values)
}

// ParseAllowFlag is ParseAllowCIDRs for another flag of the same kind (e.g. --source-allow-cidr), named in
// its errors.
func ParseAllowFlag(flag string, values []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, v := range values {
		v = strings.TrimSpace(v)
		if v == "" {
			continue
		}
		var p netip.Prefix
		if strings.Contains(v, "/") {
			var err error
			if p, err = netip.ParsePrefix(v); err != nil {
				return nil, fmt.Errorf("%s %q is not a CIDR prefix like 10.0.0.0/8 or fd00::/8: %w", flag, v, err)
			}
		} else {
			a, err := netip.ParseAddr(v)
			if err != nil || a.Zone() != "" {
				return nil, fmt.Errorf("%s %q is neither a CIDR prefix like 10.0.0.0/8 nor an IP address", flag, v)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}
