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
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/berth-dev/berth/workers/buildkit/netns"
)

// ErrNoSandbox means builds cannot get a network of their own on this machine. Berth then refuses to run
// them rather than let them share the host's network.
var ErrNoSandbox = errors.New("no build sandbox")

// CNIBinaryDirs are where the CNI plugins are looked for: Debian's containernetworking-plugins, then the
// upstream default.
var CNIBinaryDirs = []string{"/usr/lib/cni", "/opt/cni/bin"}

// cniPlugins are the CNI plugins a sandbox uses (loopback is BuildKit's own addition).
var cniPlugins = []string{"bridge", "host-local", "loopback", "firewall", "tuning"}

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
	// Cloud hosts' services outside those ranges: Azure's WireServer (Alibaba's metadata, 100.100.100.200, is in
	// 100.64.0.0/10).
	netip.MustParsePrefix("168.63.129.16/32"),
}

// sandboxPool is where a daemon's build subnet (one /24) is chosen from.
var sandboxPool = netip.MustParsePrefix("10.213.0.0/16")

// CheckSandbox reports whether builds can run in a network of their own here: root, the CNI plugins
// (bridge, host-local, loopback, firewall, tuning), nft, iptables, ip, nsenter and unshare. It returns the CNI
// plugin directory, or an error matching ErrNoSandbox that says what is missing and how to install it.
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
	for _, tool := range []string{"nft", "iptables", "ip", "nsenter", "unshare"} {
		if _, err := exec.LookPath(tool); err != nil {
			pkg := map[string]string{"nft": "nftables", "iptables": "iptables", "ip": "iproute2", "nsenter": "util-linux",
				"unshare": "util-linux"}[tool]
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

// sandbox is the network of one daemon: buildkitd runs in a network namespace of its own, joined to the host
// by a veth pair on a /30 whose only way out is the host's filter (an nftables table of the host's: no host
// address, no refused range, but the builds' name servers), so everything buildkitd fetches for a build (ADD
// URLs, Git sources, FROM images, cache imports) meets the same rules as RUN steps. Berth's registry is reached
// through registryPath, a listener inside the namespace. RUN steps run on a CNI bridge inside that
// namespace (a /25), behind a second copy of the rules, and may not reach one another: the bridge carries IPv4
// and ARP only, between builds no IPv4 at all, and no ARP that claims the gateway's address.
// Every name derives from the daemon's root, so a daemon restarted on the same root replaces what a killed one
// left behind and touches nothing else.
type sandbox struct {
	id       string       // 10 hex digits of the root's hash
	bridge   string       // the builds' bridge interface (in the namespace), "bk" + id (at most 15 bytes)
	table    string       // nftables table name, in families inet and bridge
	network  string       // CNI network name
	netns    string       // buildkitd's network namespace, /run/netns/NAME
	vethHost string       // the host's end of the veth pair, "bh" + id
	vethNS   string       // the namespace's end, "bn" + id
	subnet   netip.Prefix // the builds' bridge: the low half of a /24 of sandboxPool
	gateway  netip.Addr
	link     netip.Prefix // the veth pair's /30, at the top of the same /24
	hostAddr netip.Addr   // the host's end of link
	nsAddr   netip.Addr   // the namespace's end of link
	binDir   string
	confPath string
	ipamDir  string
	allow    []netip.Prefix
	dns      []netip.Addr
	search   []string
	// ownResolv: buildkitd sees resolvConf as /etc/resolv.conf (the host's names a loopback resolver).
	ownResolv bool

	mu    sync.Mutex
	paths map[string]*registryPath // registry host:port → its path
}

func newSandbox(root, binDir string, allow []netip.Prefix) (*sandbox, error) {
	sum := sha256.Sum256([]byte(root))
	id := hex.EncodeToString(sum[:5])
	s := &sandbox{id: id, bridge: "bk" + id, table: "berth_" + id, network: "berth-" + id, netns: "berth-bk-" + id,
		vethHost: "bh" + id, vethNS: "bn" + id, binDir: binDir, paths: map[string]*registryPath{},
		confPath: filepath.Join(root, "cni", "berth.conflist"), ipamDir: filepath.Join(root, "cni", "ipam")}
	for _, p := range allow {
		if !p.Addr().Is4() {
			return nil, fmt.Errorf("build allow CIDR %s: builds have IPv4 only", p)
		}
		s.allow = append(s.allow, p.Masked())
	}
	var err error
	block, err := s.pickSubnet(binary.BigEndian.Uint16(sum[5:7]))
	if err != nil {
		return nil, err
	}
	s.subnet = netip.PrefixFrom(block.Addr(), 25)
	s.gateway = s.subnet.Addr().Next()
	b := block.Addr().As4()
	b[3] = 252
	s.link = netip.PrefixFrom(netip.AddrFrom4(b), 30)
	s.hostAddr = s.link.Addr().Next()
	s.nsAddr = s.hostAddr.Next()
	s.dns, s.search = hostDNS()
	return s, nil
}

// pickSubnet returns the first /24 of sandboxPool, starting at start, that no route or interface address
// of the host overlaps, except this sandbox's own veth and bridge (left behind by a daemon that was killed).
func (s *sandbox) pickSubnet(start uint16) (netip.Prefix, error) {
	used, err := usedPrefixes(s.vethHost, s.bridge)
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
// interfaces named skip.
func usedPrefixes(skip ...string) ([]netip.Prefix, error) {
	var used []netip.Prefix
	data, err := os.ReadFile("/proc/net/route")
	if err != nil {
		return nil, fmt.Errorf("read the routing table: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 8 || f[0] == "Iface" || slices.Contains(skip, f[0]) {
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
		if slices.Contains(skip, ifc.Name) {
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
			// Builds have IPv4 only: no IPv6 link-local addresses to reach one another by.
			map[string]any{"type": "tuning", "sysctl": map[string]string{
				"net.ipv6.conf.all.disable_ipv6":     "1",
				"net.ipv6.conf.default.disable_ipv6": "1",
			}},
			// Accepts the builds' traffic in FORWARD where a policy drops it.
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

// sets renders the address sets both rulesets use: allowed (--build-allow-cidr), blocked (BlockedRanges) and
// dns (the builds' name servers).
func (s *sandbox) sets(b *strings.Builder) {
	set := func(name string, ps []string, interval bool) {
		fmt.Fprintf(b, "  set %s {\n    type ipv4_addr\n", name)
		if interval {
			b.WriteString("    flags interval\n")
		}
		if len(ps) > 0 {
			fmt.Fprintf(b, "    elements = { %s }\n", strings.Join(ps, ", "))
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
	set("allowed", allow, true)
	set("blocked", blocked, true)
	set("dns", dns, false)
	// refuse answers at once, so a build fails fast: TCP gets a reset, the rest "administratively prohibited"
	// (which the kernel rate-limits; those past the limit time out).
	b.WriteString(`  chain refuse {
    meta l4proto tcp reject with tcp reset
    reject with icmpx type admin-prohibited
  }
`)
}

// filterChains renders the input and forward chains that confine traffic coming in on interface in: to the
// name servers, allowed ranges and public addresses; never to this host (the namespace the rules are in).
func filterChains(b *strings.Builder, in string) {
	fmt.Fprintf(b, `  chain input {
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
`, strconv.Quote(in))
}

// filterTable writes the start of a script that replaces the sandbox's tables (inet and bridge; declaring then
// deleting makes the script replace a table left behind, atomically) and the inet table, whose chains confine
// what comes in on interface in (filterChains), with more chains after them.
func (s *sandbox) filterTable(b *strings.Builder, in, more string) {
	for _, fam := range []string{"inet", "bridge"} {
		fmt.Fprintf(b, "table %s %s\ndelete table %s %s\n", fam, s.table, fam, s.table)
	}
	fmt.Fprintf(b, "table inet %s {\n", s.table)
	s.sets(b)
	filterChains(b, in)
	b.WriteString(more + "}\n")
}

// ruleset is the nftables script of buildkitd's namespace: RUN steps on the bridge reach what the host's
// rules let through, not buildkitd's namespace itself (nor the registry path in it), and not one another.
// A drop or reject in any base chain is final in nftables, whatever other tables (CNI's iptables rules) accept.
func (s *sandbox) ruleset() string {
	var b strings.Builder
	s.filterTable(&b, s.bridge, "")
	// The bridge table sees every bridge of the namespace, which has only the builds'.
	// Between builds on the bridge: IPv4 and ARP only, from any port (IPv6, VLAN tags and the rest are dropped);
	// no IPv4 from one build to another; no ARP from a port that claims the gateway's address (the gateway's
	// own ARP leaves from the bridge itself, never from a port).
	fmt.Fprintf(&b, `table bridge %[1]s {
  chain prerouting {
    type filter hook prerouting priority filter - 10; policy accept;
    ether type != { ip, arp } drop
    ether type arp arp saddr ip %[2]s drop
  }
  chain forward {
    type filter hook forward priority filter - 10; policy accept;
    ether type ip ip daddr %[3]s drop
  }
}
`, s.table, s.gateway, s.subnet)
	return b.String()
}

// hostRuleset is the nftables script of the host: what comes from buildkitd's namespace (buildkitd's own
// fetches, and the builds' traffic, masqueraded by CNI) reaches the name servers, allowed ranges and public
// addresses, masqueraded again on its way out; never an address of the host. It also removes the bridge
// table an earlier Berth kept on the host.
func (s *sandbox) hostRuleset() string {
	var b strings.Builder
	s.filterTable(&b, s.vethHost, fmt.Sprintf(`  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    ip saddr %s oifname != %s masquerade
  }
`, s.link, strconv.Quote(s.vethHost)))
	return b.String()
}

// nsPath is the namespace's file, for setns.
func (s *sandbox) nsPath() string { return filepath.Join("/run/netns", s.netns) }

// resolvConf is the resolv.conf buildkitd sees in place of the host's when the host's names a loopback
// resolver (systemd-resolved's 127.0.0.53), which the namespace cannot reach: the builds' name servers
// (upstream of it, reachable through the veth).
func (s *sandbox) resolvConf() string { return filepath.Join(filepath.Dir(s.confPath), "resolv.conf") }

// loopbackResolver reports whether the host's /etc/resolv.conf names a loopback name server.
func loopbackResolver() bool {
	data, err := os.ReadFile("/etc/resolv.conf")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "nameserver" {
			if a, err := netip.ParseAddr(f[1]); err == nil && a.IsLoopback() {
				return true
			}
		}
	}
	return false
}

// forwardRules are the iptables FORWARD rules that let the namespace's traffic through a host whose policy
// drops forwarded packets (Docker's does); the nftables table above has refused what it must before them.
func (s *sandbox) forwardRules() [][]string {
	c := []string{"-m", "comment", "--comment", "berth build sandbox " + s.id}
	return [][]string{
		append([]string{"FORWARD", "-i", s.vethHost, "-j", "ACCEPT"}, c...),
		append([]string{"FORWARD", "-o", s.vethHost, "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "ACCEPT"}, c...),
	}
}

// up makes buildkitd's namespace and its veth pair, installs both rulesets, the name servers and the CNI
// configuration. What a killed daemon on the same root left behind is removed first.
func (s *sandbox) up(ctx context.Context) error {
	s.removeNet(ctx)
	if err := s.writeConfig(); err != nil {
		return fmt.Errorf("build sandbox: write CNI config: %w", err)
	}
	fail := func(err error) error { return fmt.Errorf("%w: %v", ErrNoSandbox, err) }
	in := func(args ...string) []string { return append([]string{"-n", s.netns}, args...) }
	steps := [][]string{
		{"netns", "add", s.netns},
		{"link", "add", s.vethHost, "type", "veth", "peer", "name", s.vethNS, "netns", s.netns},
		{"addr", "add", netip.PrefixFrom(s.hostAddr, s.link.Bits()).String(), "dev", s.vethHost},
		{"link", "set", s.vethHost, "up"},
		in("link", "set", "lo", "up"),
		in("addr", "add", netip.PrefixFrom(s.nsAddr, s.link.Bits()).String(), "dev", s.vethNS),
		in("link", "set", s.vethNS, "up"),
		in("route", "add", "default", "via", s.hostAddr.String()),
	}
	for _, st := range steps {
		if err := ipCmd(ctx, st...); err != nil {
			return fail(err)
		}
	}
	for _, kv := range [][2]string{
		{"net.ipv6.conf.all.disable_ipv6", "1"}, {"net.ipv6.conf.default.disable_ipv6", "1"},
		{"net.ipv4.ip_forward", "1"},
	} {
		if err := netns.WriteSysctl(s.nsPath(), kv[0], kv[1]); err != nil && !strings.Contains(kv[0], "ipv6") {
			return fail(err)
		}
	}
	_ = os.WriteFile("/proc/sys/net/ipv6/conf/"+s.vethHost+"/disable_ipv6", []byte("1"), 0o644)
	// The host forwards the namespace's traffic (as CNI's bridge plugin on the host did before).
	if err := os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1"), 0o644); err != nil {
		return fail(fmt.Errorf("enable IPv4 forwarding: %w", err))
	}
	s.ownResolv = len(s.dns) > 0 && loopbackResolver()
	if s.ownResolv {
		var rc strings.Builder
		for _, a := range s.dns {
			fmt.Fprintf(&rc, "nameserver %s\n", a)
		}
		if len(s.search) > 0 {
			fmt.Fprintf(&rc, "search %s\n", strings.Join(s.search, " "))
		}
		if err := os.WriteFile(s.resolvConf(), []byte(rc.String()), 0o644); err != nil {
			return fail(err)
		}
	}
	if err := nft(ctx, s.hostRuleset()); err != nil {
		return fail(fmt.Errorf("install the host's firewall rules: %v", err))
	}
	if err := nftIn(ctx, s.netns, s.ruleset()); err != nil {
		return fail(fmt.Errorf("install the builds' firewall rules: %v", err))
	}
	for _, r := range s.forwardRules() {
		if out, err := exec.CommandContext(ctx, "iptables", append([]string{"-w", "-I"}, r...)...).CombinedOutput(); err != nil {
			return fail(fmt.Errorf("iptables -I %s: %v: %s", strings.Join(r, " "), err, bytes.TrimSpace(out)))
		}
	}
	return nil
}

// command wraps buildkitd's command line so that it runs in the namespace. nsenter (and unshare, and sh)
// exec what follows, so the process is buildkitd's. Not `ip netns exec`: it mounts a new /sys, without the
// cgroup file systems runc needs.
func (s *sandbox) command(bin string, args ...string) *exec.Cmd {
	argv := []string{"--net=" + s.nsPath(), "--"}
	if s.ownResolv {
		// A mount namespace of buildkitd's own, where /etc/resolv.conf is the namespace's.
		argv = append(argv, "unshare", "--mount", "--propagation", "slave", "--",
			"/bin/sh", "-c", `mount --bind "$1" /etc/resolv.conf && shift && exec "$@"`, "sh", s.resolvConf())
	}
	return exec.Command("nsenter", append(append(argv, bin), args...)...)
}

// allowRegistry opens the path from the namespace to registry hostport (see registryPath); a second call for
// the same registry reuses it.
func (s *sandbox) allowRegistry(ctx context.Context, hostport string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.paths[hostport]; ok {
		return nil
	}
	rp, err := openRegistryPath(ctx, s.netns, s.nsPath(), hostport)
	if err != nil {
		return err
	}
	s.paths[hostport] = rp
	return nil
}

// dropRegistry closes the path to registry hostport.
func (s *sandbox) dropRegistry(hostport string) {
	s.mu.Lock()
	rp := s.paths[hostport]
	delete(s.paths, hostport)
	s.mu.Unlock()
	if rp != nil {
		rp.close()
	}
}

// removeNet removes the namespace (and with it the veth pair and the builds' bridge), the iptables rules, and from an earlier Berth, a bridge on the host. Errors are reported by down, not here.
func (s *sandbox) removeNet(ctx context.Context) []error {
	var errs []error
	if _, err := os.Stat(s.nsPath()); err == nil {
		if err := ipCmd(ctx, "netns", "delete", s.netns); err != nil {
			errs = append(errs, err)
		}
	}
	for _, ifc := range []string{s.vethHost, s.bridge} {
		if _, err := net.InterfaceByName(ifc); err == nil {
			if err := ipCmd(ctx, "link", "delete", ifc); err != nil {
				errs = append(errs, err)
			}
		}
	}
	for _, r := range s.forwardRules() {
		for range 10 { // a rule inserted twice by killed daemons is there twice
			if exec.CommandContext(ctx, "iptables", append([]string{"-w", "-D"}, r...)...).Run() != nil {
				break
			}
		}
	}
	return errs
}

// down closes the registry paths and removes everything up made, once the daemon has stopped.
func (s *sandbox) down() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s.mu.Lock()
	paths := s.paths
	s.paths = map[string]*registryPath{}
	s.mu.Unlock()
	for _, rp := range paths {
		rp.close()
	}
	errs := s.removeNet(ctx)
	for _, fam := range []string{"inet", "bridge"} {
		if err := nft(ctx, fmt.Sprintf("table %s %s\ndelete table %s %s\n", fam, s.table, fam, s.table)); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("build sandbox cleanup: %w", err)
	}
	return nil
}

func ipCmd(ctx context.Context, args ...string) error {
	if out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput(); err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// ipNS runs ip in network namespace ns.
func ipNS(ctx context.Context, ns string, args ...string) error {
	return ipCmd(ctx, append([]string{"-n", ns}, args...)...)
}

// nftIn runs an nftables script in network namespace ns.
func nftIn(ctx context.Context, ns, script string) error {
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", ns, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("nft in %s: %v: %s", ns, err, bytes.TrimSpace(out))
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
