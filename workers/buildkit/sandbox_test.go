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
	if !sandboxPool.Contains(s.subnet.Addr()) || s.subnet.Bits() != 24 || len(s.bridge) > 15 || s.gateway != s.subnet.Addr().Next() {
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
	if len(conf.Plugins) != 2 || conf.Plugins[0].Type != "bridge" || conf.Plugins[0].Bridge != s.bridge ||
		conf.Plugins[0].IPAM.Ranges[0][0].Subnet != s.subnet.String() || !strings.HasPrefix(conf.Plugins[0].IPAM.DataDir, root) ||
		conf.Plugins[1].Type != "firewall" {
		t.Fatalf("CNI config:\n%s", data)
	}
	rules := s.ruleset()
	for _, want := range []string{"iifname \"" + s.bridge + "\" goto refuse", "10.20.0.0/16", "169.254.0.0/16", "ip daddr " + s.subnet.String() + " drop"} {
		if !strings.Contains(rules, want) {
			t.Errorf("rules lack %q:\n%s", want, rules)
		}
	}
	if _, err := exec.LookPath("nft"); err != nil || os.Geteuid() != 0 {
		t.Skip("nft and root are needed to check the rules")
	}
	cmd := exec.Command("nft", "-c", "-f", "-")
	cmd.Stdin = strings.NewReader(rules)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft -c: %v\n%s\n%s", err, out, rules)
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
