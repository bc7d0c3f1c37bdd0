package buildkit

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ErrNoSandbox means builds cannot get a network of their own on this machine. Berth then refuses to run
// them rather than let them share the host's network.
var ErrNoSandbox = errors.New("no build sandbox")

// CNIBinaryDirs are where the CNI plugins are looked for: Debian's containernetworking-plugins, then the
// upstream default.
var CNIBinaryDirs = []string{"/usr/lib/cni", "/opt/cni/bin"}

// cniPlugins are the CNI plugins a sandbox uses (loopback is BuildKit's own addition).
var cniPlugins = []string{"bridge", "host-local", "loopback", "firewall"}

// BlockedRanges are the IPv4 destinations a build may not reach unless allowed (DaemonConfig.AllowCIDRs):
// private and shared address space, loopback, link-local (cloud metadata at 169.254.169.254), "this
// network", multicast and reserved. The Berth host itself is never reachable from a build.
var BlockedRanges = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("10.0.0.0/8"),
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("127.0.0.0/8"),
	netip.MustParsePrefix("169.254.0.0/16"),
	netip.MustParsePrefix("172.16.0.0/12"),
	netip.MustParsePrefix("192.168.0.0/16"),
	netip.MustParsePrefix("224.0.0.0/3"), // multicast, reserved, broadcast
}

// sandboxPool is where a daemon's build subnet (one /24) is chosen from.
var sandboxPool = netip.MustParsePrefix("10.213.0.0/16")

// CheckSandbox reports whether builds can run in a network of their own here: root, the CNI plugins
// (bridge, host-local, loopback, firewall), nft and iptables. It returns the CNI plugin directory, or an
// error matching ErrNoSandbox that says what is missing and how to install it.
func CheckSandbox() (cniBinDir string, err error) {
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, fmt.Sprintf("root (running as uid %d)", os.Geteuid()))
	}
	for _, dir := range CNIBinaryDirs {
		ok := true
		for _, p := range cniPlugins {
			if !isExecutable(filepath.Join(dir, p)) {
				ok = false
			}
		}
		if ok {
			cniBinDir = dir
			break
		}
	}
	if cniBinDir == "" {
		missing = append(missing, fmt.Sprintf("the CNI plugins %s in %s (apt-get install containernetworking-plugins)",
			strings.Join(cniPlugins, ", "), strings.Join(CNIBinaryDirs, " or ")))
	}
	for _, tool := range []string{"nft", "iptables"} {
		if _, err := exec.LookPath(tool); err != nil {
			pkg := map[string]string{"nft": "nftables", "iptables": "iptables"}[tool]
			missing = append(missing, fmt.Sprintf("%s (apt-get install %s)", tool, pkg))
		}
	}
	if len(missing) > 0 {
		return "", fmt.Errorf("%w: builds run in a network namespace of their own, which needs %s; without it a build "+
			"could reach the host's loopback services, cloud metadata and private networks, so Berth does not run builds",
			ErrNoSandbox, strings.Join(missing, ", "))
	}
	return cniBinDir, nil
}

// sandbox is the network of one daemon's builds: a CNI bridge of its own on a /24 of sandboxPool, and an
// nftables table of its own (one inet table, one bridge table) that keeps builds off the host and off private
// ranges. Every name derives from the daemon's root, so a daemon restarted on the same root replaces what a
// killed one left behind and touches nothing else.
type sandbox struct {
	id       string // 10 hex digits of the root's hash
	bridge   string // the bridge interface, "bk" + id (at most 15 bytes)
	table    string // nftables table name, in families inet and bridge
	network  string // CNI network name
	subnet   netip.Prefix
	gateway  netip.Addr
	binDir   string
	confPath string
	ipamDir  string
	allow    []netip.Prefix
	dns      []netip.Addr
	search   []string
}

func newSandbox(root, binDir string, allow []netip.Prefix) (*sandbox, error) {
	sum := sha256.Sum256([]byte(root))
	id := hex.EncodeToString(sum[:5])
	s := &sandbox{id: id, bridge: "bk" + id, table: "berth_" + id, network: "berth-" + id, binDir: binDir,
		confPath: filepath.Join(root, "cni", "berth.conflist"), ipamDir: filepath.Join(root, "cni", "ipam")}
	for _, p := range allow {
		if !p.Addr().Is4() {
			return nil, fmt.Errorf("build allow CIDR %s: builds have IPv4 only", p)
		}
		s.allow = append(s.allow, p.Masked())
	}
	var err error
	if s.subnet, err = s.pickSubnet(binary.BigEndian.Uint16(sum[5:7])); err != nil {
		return nil, err
	}
	s.gateway = s.subnet.Addr().Next()
	s.dns, s.search = hostDNS()
	return s, nil
}

// pickSubnet returns the first /24 of sandboxPool, starting at start, that no route or interface address
// of the host overlaps, except this sandbox's own bridge (left behind by a daemon that was killed).
func (s *sandbox) pickSubnet(start uint16) (netip.Prefix, error) {
	used, err := usedPrefixes(s.bridge)
	if err != nil {
		return netip.Prefix{}, err
	}
	base := sandboxPool.Addr().As4()
	n := 1 << (24 - sandboxPool.Bits())
	for i := range n {
		k := (int(start) + i) % n
		b := base
		b[2] += byte(k)
		p := netip.PrefixFrom(netip.AddrFrom4(b), 24)
		free := true
		for _, u := range used {
			if u.Overlaps(p) {
				free = false
				break
			}
		}
		if free {
			return p, nil
		}
	}
	return netip.Prefix{}, fmt.Errorf("%w: every /24 of %s is in use on this host", ErrNoSandbox, sandboxPool)
}

// usedPrefixes lists the host's IPv4 routes (but default routes) and interface networks, leaving out the
// interface named skip.
func usedPrefixes(skip string) ([]netip.Prefix, error) {
	var used []netip.Prefix
	data, err := os.ReadFile("/proc/net/route")
	if err != nil {
		return nil, fmt.Errorf("read the routing table: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 8 || f[0] == "Iface" || f[0] == skip {
			continue
		}
		dst, err1 := strconv.ParseUint(f[1], 16, 32)
		mask, err2 := strconv.ParseUint(f[7], 16, 32)
		if err1 != nil || err2 != nil || mask == 0 {
			continue
		}
		var d, m [4]byte
		binary.LittleEndian.PutUint32(d[:], uint32(dst))
		binary.LittleEndian.PutUint32(m[:], uint32(mask))
		ones, _ := net.IPMask(m[:]).Size()
		used = append(used, netip.PrefixFrom(netip.AddrFrom4(d), ones).Masked())
	}
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, err
	}
	for _, ifc := range ifs {
		if ifc.Name == skip {
			continue
		}
		addrs, _ := ifc.Addrs()
		for _, a := range addrs {
			if p, err := netip.ParsePrefix(a.String()); err == nil && p.Addr().Is4() {
				used = append(used, p.Masked())
			}
		}
	}
	return used, nil
}

// hostDNS returns the IPv4 name servers and search domains builds use: the host's, as BuildKit reads them
// (/etc/resolv.conf, or systemd-resolved's upstream list when that names only 127.0.0.53), loopback servers
// left out. None means BuildKit's public defaults.
func hostDNS() (servers []netip.Addr, search []string) {
	read := func(path string) (all []netip.Addr, srv []netip.Addr, search []string) {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, nil, nil
		}
		for _, line := range strings.Split(string(data), "\n") {
			f := strings.Fields(line)
			if len(f) < 2 {
				continue
			}
			switch f[0] {
			case "nameserver":
				if a, err := netip.ParseAddr(f[1]); err == nil {
					all = append(all, a)
					if a.Is4() && !a.IsLoopback() {
						srv = append(srv, a)
					}
				}
			case "search":
				search = f[1:]
			}
		}
		return all, srv, search
	}
	all, servers, search := read("/etc/resolv.conf")
	if len(all) == 1 && all[0] == netip.MustParseAddr("127.0.0.53") {
		_, servers, search = read("/run/systemd/resolve/resolv.conf")
	}
	return servers, search
}

// writeConfig writes the CNI network configuration BuildKit reads.
func (s *sandbox) writeConfig() error {
	conf := map[string]any{
		"cniVersion": "1.0.0",
		"name":       s.network,
		"plugins": []any{
			map[string]any{
				"type": "bridge", "bridge": s.bridge, "isGateway": true, "isDefaultGateway": true,
				"ipMasq": true, "hairpinMode": false,
				"ipam": map[string]any{
					"type":    "host-local",
					"ranges":  [][]map[string]string{{{"subnet": s.subnet.String(), "gateway": s.gateway.String()}}},
					"dataDir": s.ipamDir,
				},
			},
			// Accepts the builds' traffic in FORWARD where the host's policy drops it (Docker's does).
			map[string]any{"type": "firewall", "backend": "iptables"},
		},
	}
	data, err := json.MarshalIndent(conf, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(s.confPath), 0o700); err != nil {
		return err
	}
	return os.WriteFile(s.confPath, append(data, '\n'), 0o600)
}

// ruleset is the nftables script that (re)creates the sandbox's tables. A drop or reject in any base chain is final in
// nftables, whatever other tables (Docker's, CNI's iptables rules) accept, so these rules hold on their own;
// they match only traffic from or to this sandbox's bridge and subnet.
func (s *sandbox) ruleset() string {
	var b strings.Builder
	br := strconv.Quote(s.bridge)
	set := func(name string, ps []string, interval bool) {
		fmt.Fprintf(&b, "  set %s {\n    type ipv4_addr\n", name)
		if interval {
			b.WriteString("    flags interval\n")
		}
		if len(ps) > 0 {
			fmt.Fprintf(&b, "    elements = { %s }\n", strings.Join(ps, ", "))
		}
		b.WriteString("  }\n")
	}
	var allow, blocked, dns []string
	for _, p := range s.allow {
		allow = append(allow, p.String())
	}
	for _, p := range BlockedRanges {
		blocked = append(blocked, p.String())
	}
	for _, a := range s.dns {
		dns = append(dns, a.String())
	}
	for _, fam := range []string{"inet", "bridge"} {
		// Declaring then deleting makes the script replace a table left behind, atomically.
		fmt.Fprintf(&b, "table %s %s\ndelete table %s %s\n", fam, s.table, fam, s.table)
	}
	fmt.Fprintf(&b, "table inet %s {\n", s.table)
	set("allowed", allow, true)
	set("blocked", blocked, true)
	set("dns", dns, false)
	// refuse answers at once, so a build fails fast: TCP gets a reset, the rest "administratively prohibited"
	// (which the kernel rate-limits; those past the limit time out).
	fmt.Fprintf(&b, `  chain refuse {
    meta l4proto tcp reject with tcp reset
    reject with icmpx type admin-prohibited
  }
  chain input {
    type filter hook input priority filter - 10; policy accept;
    iifname %[1]s ip daddr @dns meta l4proto { tcp, udp } th dport 53 accept
    iifname %[1]s goto refuse
  }
  chain forward {
    type filter hook forward priority filter - 10; policy accept;
    iifname %[1]s meta nfproto ipv6 goto refuse
    iifname %[1]s ip daddr @dns meta l4proto { tcp, udp } th dport 53 accept
    iifname %[1]s ip daddr @allowed accept
    iifname %[1]s ip daddr @blocked goto refuse
    oifname %[1]s ct state established,related accept
    oifname %[1]s drop
  }
}
`, br)
	// Builds on the bridge may not reach one another.
	fmt.Fprintf(&b, "table bridge %s {\n  chain forward {\n    type filter hook forward priority filter - 10; policy accept;\n"+
		"    ether type ip ip daddr %s drop\n  }\n}\n", s.table, s.subnet)
	return b.String()
}

// up installs the firewall tables and the CNI configuration.
func (s *sandbox) up(ctx context.Context) error {
	if err := s.writeConfig(); err != nil {
		return fmt.Errorf("build sandbox: write CNI config: %w", err)
	}
	if err := nft(ctx, s.ruleset()); err != nil {
		return fmt.Errorf("%w: install the firewall rules: %v", ErrNoSandbox, err)
	}
	return nil
}

// down removes the firewall tables and the bridge, once the daemon has stopped.
func (s *sandbox) down() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var errs []error
	for _, fam := range []string{"inet", "bridge"} {
		if err := nft(ctx, fmt.Sprintf("table %s %s\ndelete table %s %s\n", fam, s.table, fam, s.table)); err != nil {
			errs = append(errs, err)
		}
	}
	if _, err := net.InterfaceByName(s.bridge); err == nil {
		if out, err := exec.CommandContext(ctx, "ip", "link", "delete", s.bridge).CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("ip link delete %s: %v: %s", s.bridge, err, bytes.TrimSpace(out)))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("build sandbox cleanup: %w", err)
	}
	return nil
}

func nft(ctx context.Context, script string) error {
	cmd := exec.CommandContext(ctx, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("nft: %v: %s", err, bytes.TrimSpace(out))
	}
	return nil
}

// subnetLock serialises choosing a subnet and bringing the bridge up among the daemons of this host, so two
// starting at once do not pick the same /24. The returned func releases it.
func subnetLock() (func(), error) {
	f, err := os.OpenFile(filepath.Join(os.TempDir(), "berth-build-subnets.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, err
	}
	return func() { _ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }, nil
}

// workerTOML renders the [worker.oci] lines of the sandbox: the CNI network.
func (s *sandbox) workerTOML() string {
	return fmt.Sprintf("  networkMode = \"cni\"\n  cniConfigPath = %s\n  cniBinaryPath = %s\n  cniPoolSize = 2\n",
		strconv.Quote(s.confPath), strconv.Quote(s.binDir))
}

// dnsTOML renders the [dns] section: the name servers the firewall lets builds reach.
func (s *sandbox) dnsTOML() string {
	if len(s.dns) == 0 {
		return ""
	}
	var servers []string
	for _, a := range s.dns {
		servers = append(servers, strconv.Quote(a.String()))
	}
	var search []string
	for _, d := range s.search {
		search = append(search, strconv.Quote(d))
	}
	return fmt.Sprintf("\n[dns]\n  nameservers = [%s]\n  searchDomains = [%s]\n", strings.Join(servers, ", "), strings.Join(search, ", "))
}
