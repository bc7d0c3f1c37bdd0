package app

import (
	"net/netip"
	"testing"
)

func TestBuildAllowCIDR(t *testing.T) {
	c, err := ParseConfig("serve", []string{"--build-allow-cidr", "10.20.0.0/16", "--build-allow-cidr", "192.168.1.7,172.16.0.0/12"})
	if err != nil {
		t.Fatal(err)
	}
	got, err := parseBuildAllow(c.BuildAllow)
	want := []netip.Prefix{netip.MustParsePrefix("10.20.0.0/16"), netip.MustParsePrefix("192.168.1.7/32"), netip.MustParsePrefix("172.16.0.0/12")}
	if err != nil || len(got) != len(want) {
		t.Fatalf("got %v %v", got, err)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("[%d] = %s, want %s", i, got[i], want[i])
		}
	}
	for in, msg := range map[string]string{
		"fd00::/8":    "--build-allow-cidr fd00::/8: builds have IPv4 only; give an IPv4 range like 10.20.0.0/16",
		"10.0.0.0/33": `--build-allow-cidr: "10.0.0.0/33" is not a CIDR prefix like 10.0.0.0/8 or fd00::/8: netip.ParsePrefix("10.0.0.0/33"): prefix length out of range`,
	} {
		if _, err := parseBuildAllow([]string{in}); err == nil || err.Error() != msg {
			t.Errorf("%s: %v, want %s", in, err, msg)
		}
	}
}
