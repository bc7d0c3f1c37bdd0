package buildkittest

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/berth-dev/berth/workers/buildkit/netns"
)

// NetworkBody is what a Network's web server answers.
const NetworkBody = "reached the fake network\n"

// Network is a network namespace standing for hosts away from the Berth host (the internet, a private LAN,
// a cloud metadata service): it answers HTTP on port 80, with NetworkBody, at Addr and at every extra
// address given to StartNetwork, all routed to it from the host. Nothing leaves the machine.
type Network struct {
	// Addr is the namespace's own address, in 198.18.0.0/15 (benchmarking, neither private nor link-local):
	// it stands for a public host.
	Addr netip.Addr
	name string
	veth string
	dir  string
	cmd  *exec.Cmd
	srv  *http.Server
	addr []netip.Addr
}

// StartNetwork creates the namespace, a veth pair to it on a random /30 of 198.18.0.0/15, host routes for
// extra (each a /32), and busybox httpd in it. It needs root, ip (iproute2) and busybox; Close removes all.
func StartNetwork(extra ...netip.Addr) (*Network, error) { return StartNetworkServing(nil, extra...) }

// StartNetworkServing is StartNetwork with h answering on port 80 in the namespace instead of busybox httpd
// (h runs in this process; its listener is the namespace's).
func StartNetworkServing(h http.Handler, extra ...netip.Addr) (*Network, error) {
	var rnd [6]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return nil, err
	}
	id := hex.EncodeToString(rnd[:3])
	k := binary.BigEndian.Uint16(rnd[4:]) % (1 << 15) // /30 blocks of 198.18.0.0/15
	base := uint32(198)<<24 | uint32(18)<<16 | uint32(k)<<2
	host := u32Addr(base + 1)
	n := &Network{Addr: u32Addr(base + 2), name: "berth-fakenet-" + id, veth: "bfn" + id, addr: extra}
	var err error
	if n.dir, err = os.MkdirTemp("", "berth-fakenet-"); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(n.dir, "index.html"), []byte(NetworkBody), 0o644); err != nil {
		n.Close()
		return nil, err
	}
	in := func(args ...string) []string { return append([]string{"-n", n.name}, args...) }
	steps := [][]string{
		{"netns", "add", n.name},
		{"link", "add", n.veth + "h", "type", "veth", "peer", "name", n.veth + "n"},
		{"link", "set", n.veth + "n", "netns", n.name},
		{"addr", "add", host.String() + "/30", "dev", n.veth + "h"},
		{"link", "set", n.veth + "h", "up"},
		in("link", "set", "lo", "up"),
		in("addr", "add", n.Addr.String()+"/30", "dev", n.veth+"n"),
		in("link", "set", n.veth+"n", "up"),
		in("route", "add", "default", "via", host.String()),
	}
	for _, a := range extra {
		steps = append(steps, in("addr", "add", a.String()+"/32", "dev", "lo"),
			[]string{"route", "add", a.String() + "/32", "via", n.Addr.String()})
	}
	for _, s := range steps {
		if out, err := exec.Command("ip", s...).CombinedOutput(); err != nil {
			n.Close()
			return nil, fmt.Errorf("ip %v: %v: %s", s, err, bytes.TrimSpace(out))
		}
	}
	if h != nil {
		ln, err := netns.Listen(filepath.Join("/run/netns", n.name), "tcp4", ":80")
		if err != nil {
			n.Close()
			return nil, err
		}
		n.srv = &http.Server{Handler: h}
		go n.srv.Serve(ln)
		return n, nil
	}
	n.cmd = exec.Command("ip", "netns", "exec", n.name, BusyboxBinary, "httpd", "-f", "-p", "80", "-h", n.dir)
	if err := n.cmd.Start(); err != nil {
		n.Close()
		return nil, fmt.Errorf("start httpd in %s: %w", n.name, err)
	}
	// httpd listens at once; give it a moment to bind.
	time.Sleep(100 * time.Millisecond)
	return n, nil
}

func u32Addr(v uint32) netip.Addr {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], v)
	return netip.AddrFrom4(b)
}

// Close stops the web server and removes the routes, the veth pair and the namespace.
func (n *Network) Close() {
	if n.srv != nil {
		n.srv.Close()
	}
	if n.cmd != nil && n.cmd.Process != nil {
		_ = n.cmd.Process.Kill()
		_ = n.cmd.Wait()
	}
	for _, a := range n.addr {
		_ = exec.Command("ip", "route", "del", a.String()+"/32", "via", n.Addr.String()).Run()
	}
	_ = exec.Command("ip", "link", "del", n.veth+"h").Run()
	_ = exec.Command("ip", "netns", "del", n.name).Run()
	if n.dir != "" {
		os.RemoveAll(n.dir)
	}
}
