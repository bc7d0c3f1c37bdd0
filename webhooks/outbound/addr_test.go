package outbound

import (
	"crypto/tls"
	"crypto/x509"
	"net/netip"
	"strings"
	"testing"
)

func tlsConfigWithRoots(roots *x509.CertPool) *tls.Config {
	return &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
}

func TestClassify(t *testing.T) {
	for addr, want := range map[string]string{
		"8.8.8.8":           "",
		"93.184.215.14":     "",
		"172.32.0.1":        "",
		"100.128.0.1":       "",
		"169.255.0.1":       "",
		"2606:4700::1111":   "",
		"::ffff:8.8.8.8":    "",
		"64:ff9b::808:808":  "",
		"2002:808:808::":    "",
		"127.0.0.1":         "a loopback address",
		"::1":               "a loopback address",
		"fe80::1%eth0":      "a link-local address",
		"fc00::1":           "a private address",
		"fec0::1":           "a reserved address",
		"::127.0.0.1":       "a reserved address",
		"198.18.0.1":        "a reserved address",
		"192.0.0.8":         "a reserved address",
		"::ffff:0.0.0.0":    "the IPv4-mapped form of an unspecified address",
		"::ffff:100.64.0.1": "the IPv4-mapped form of a shared (CGNAT) address",
	} {
		if got := classify(netip.MustParseAddr(addr)); got != want {
			t.Errorf("classify(%s) = %q, want %q", addr, got, want)
		}
	}
}

func TestParseAllowCIDRs(t *testing.T) {
	got, err := ParseAllowCIDRs([]string{" 10.0.0.0/8 ", "", "192.168.1.20", "fd00::/8", "::ffff:172.16.0.0/108", "10.1.2.3/8"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"10.0.0.0/8", "192.168.1.20/32", "fd00::/8", "172.16.0.0/12", "10.0.0.0/8"}
	if len(got) != len(want) {
		t.Fatalf("got %v", got)
	}
	for i := range want {
		if got[i].String() != want[i] {
			t.Errorf("entry %d = %s, want %s", i, got[i], want[i])
		}
	}
	for _, bad := range []string{"10.0.0.0/33", "example.com", "10.0.0", "fe80::1%eth0", "10.0.0.0/"} {
		if _, err := ParseAllowCIDRs([]string{bad}); err == nil || !strings.Contains(err.Error(), AllowFlag) {
			t.Errorf("ParseAllowCIDRs(%q) = %v", bad, err)
		}
	}
}

func TestAllowed(t *testing.T) {
	allow := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("fd00::/8")}
	for addr, want := range map[string]bool{
		"127.0.0.1":        true,
		"::ffff:127.0.0.1": true,
		"fd12::1":          true,
		"10.0.0.1":         false,
		"::1":              false,
	} {
		if got := allowed(netip.MustParseAddr(addr), allow); got != want {
			t.Errorf("allowed(%s) = %v", addr, got)
		}
	}
}
