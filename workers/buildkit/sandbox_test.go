package buildkit

import (
	"encoding/json"
	"errors"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestSandboxRules: the CNI config names the bridge and subnet the firewall rules guard, and nft accepts the
// rules (checked, not installed).
func TestSandboxRules(t *testing.T) {
	root := t.TempDir()
	s, err := newSandbox(root, "/usr/lib/cni", []netip.Prefix{netip.MustParsePrefix("10.20.0.0/16")})
	if err != nil {
		t.Fatal(err)
	}
	if !sandboxPool.Contains(s.subnet.Addr()) || s.subnet.Bits() != 25 || len(s.bridge) > 15 || len(s.vethHost) > 15 ||
		s.gateway != s.subnet.Addr().Next() || s.link.Overlaps(s.subnet) || !s.link.Contains(s.nsAddr) || !s.link.Contains(s.hostAddr) {
		t.Fatalf("sandbox %+v", s)
	}
	if err := s.writeConfig(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(root, "cni", "berth.conflist"))
	if err != nil {
		t.Fatal(err)
	}
	var conf struct {
		Name    string
		Plugins []struct {
			Type, Bridge string
			IPMasq       bool `json:"ipMasq"`
			IPAM         struct {
				Ranges  [][]struct{ Subnet, Gateway string }
				DataDir string `json:"dataDir"`
			}
		}
	}
	if err := json.Unmarshal(data, &conf); err != nil {
		t.Fatal(err)
	}
	if len(conf.Plugins) != 3 || conf.Plugins[0].Type != "bridge" || conf.Plugins[0].Bridge != s.bridge ||
		conf.Plugins[0].IPAM.Ranges[0][0].Subnet != s.subnet.String() || !strings.HasPrefix(conf.Plugins[0].IPAM.DataDir, root) ||
		conf.Plugins[1].Type != "tuning" || conf.Plugins[2].Type != "firewall" {
		t.Fatalf("CNI config:\n%s", data)
	}
	rules, host := s.ruleset(), s.hostRuleset()
	for _, want := range []string{"iifname \"" + s.bridge + "\" goto refuse", "10.20.0.0/16", "169.254.0.0/16", "168.63.129.16",
		"ip daddr " + s.subnet.String() + " drop", "ether type != { ip, arp } drop", "arp saddr ip " + s.gateway.String() + " drop"} {
		if !strings.Contains(rules, want) {
			t.Errorf("rules lack %q:\n%s", want, rules)
		}
	}
	for _, want := range []string{"iifname \"" + s.vethHost + "\" goto refuse", "10.20.0.0/16", "100.64.0.0/10", "168.63.129.16",
		"ip saddr " + s.link.String() + " oifname != \"" + s.vethHost + "\" masquerade"} {
		if !strings.Contains(host, want) {
			t.Errorf("host rules lack %q:\n%s", want, host)
		}
	}
	if _, err := exec.LookPath("nft"); err != nil || os.Geteuid() != 0 {
		t.Skip("nft and root are needed to check the rules")
	}
	for _, script := range []string{rules, host} {
		cmd := exec.Command("nft", "-c", "-f", "-")
		cmd.Stdin = strings.NewReader(script)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("nft -c: %v\n%s\n%s", err, out, script)
		}
	}

	if _, err := newSandbox(root, "/usr/lib/cni", []netip.Prefix{netip.MustParsePrefix("fd00::/8")}); err == nil {
		t.Error("an IPv6 allow CIDR was accepted")
	}
}

// TestNoSandboxRefuses: without nft (or the CNI plugins, or root) the daemon does not start, and says what to
// install, rather than run builds on the host's network.
func TestNoSandboxRefuses(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	_, err := CheckSandbox()
	if !errors.Is(err, ErrNoSandbox) || !strings.Contains(err.Error(), "nft (apt-get install nftables), iptables (apt-get install iptables)") {
		t.Fatalf("err = %v", err)
	}
	_, err = Start(t.Context(), DaemonConfig{Binary: "/bin/true", RootDir: t.TempDir()})
	if !errors.Is(err, ErrNoSandbox) {
		t.Fatalf("Start: %v, want ErrNoSandbox", err)
	}
	t.Log(err)
}

// TestSandboxCommandResolvConf: where the host's resolv.conf names a loopback resolver, buildkitd's command
// runs in the namespace with the sandbox's resolv.conf in place of the host's, which stays as it is.
func TestSandboxCommandResolvConf(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for a network namespace")
	}
	root := t.TempDir()
	s, err := newSandbox(root, "/usr/lib/cni", nil)
	if err != nil {
		t.Fatal(err)
	}
	s.netns = "berth-cmd-" + s.id
	if out, err := exec.Command("ip", "netns", "add", s.netns).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "delete", s.netns).Run() })
	if err := os.MkdirAll(filepath.Dir(s.resolvConf()), 0o700); err != nil {
		t.Fatal(err)
	}
	const conf = "nameserver 192.0.2.53\n"
	if err := os.WriteFile(s.resolvConf(), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	host, err := os.ReadFile("/etc/resolv.conf")
	if err != nil {
		t.Fatal(err)
	}
	for _, own := range []bool{false, true} {
		s.ownResolv = own
		out, err := s.command("/bin/sh", "-c", "cat /etc/resolv.conf; readlink /proc/self/ns/net").CombinedOutput()
		if err != nil {
			t.Fatalf("ownResolv %v: %v: %s", own, err, out)
		}
		want := string(host)
		if own {
			want = conf
		}
		hostNS, _ := os.Readlink("/proc/self/ns/net")
		got, ns, _ := strings.Cut(strings.TrimSuffix(string(out), "\n"), "net:")
		if got != want || "net:"+ns == hostNS {
			t.Errorf("ownResolv %v: resolv.conf %q, namespace net:%s (the host's is %s); want %q in another namespace", own, got, ns, hostNS, want)
		}
	}
	if now, _ := os.ReadFile("/etc/resolv.conf"); string(now) != string(host) {
		t.Errorf("the host's resolv.conf changed: %q", now)
	}
}
