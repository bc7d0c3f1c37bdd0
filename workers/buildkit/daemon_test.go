package buildkit

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pelletier/go-toml/v2"
)

func TestDaemonConfigTOML(t *testing.T) {
	cfg := DaemonConfig{InsecureRegistries: []string{"127.0.0.1:5000", "registry.internal:8443"}, GCKeepBytes: 1 << 30}
	sb := &sandbox{confPath: "/var/lib/berth/buildkit/cni/berth.conflist", binDir: "/usr/lib/cni",
		dns: []netip.Addr{netip.MustParseAddr("10.255.255.53")}, search: []string{"corp.example"}}
	text := daemonConfigTOML(cfg, "/var/lib/berth/buildkit", "unix:///tmp/berth-bk-x/buildkitd.sock", sb)
	var got struct {
		Root   string
		GRPC   struct{ Address []string } `toml:"grpc"`
		Worker struct {
			OCI struct {
				Enabled       bool
				GC            bool   `toml:"gc"`
				ReservedSpace int64  `toml:"reservedSpace"`
				MaxUsedSpace  int64  `toml:"maxUsedSpace"`
				NetworkMode   string `toml:"networkMode"`
				CNIConfigPath string `toml:"cniConfigPath"`
				CNIBinaryPath string `toml:"cniBinaryPath"`
			} `toml:"oci"`
			Containerd struct{ Enabled bool } `toml:"containerd"`
		} `toml:"worker"`
		DNS struct {
			Nameservers   []string `toml:"nameservers"`
			SearchDomains []string `toml:"searchDomains"`
		} `toml:"dns"`
		Registry map[string]struct {
			HTTP     bool `toml:"http"`
			Insecure bool `toml:"insecure"`
		} `toml:"registry"`
	}
	if err := toml.Unmarshal([]byte(text), &got); err != nil {
		t.Fatalf("%v\n%s", err, text)
	}
	if got.Root != "/var/lib/berth/buildkit" || len(got.GRPC.Address) != 1 || !strings.HasPrefix(got.GRPC.Address[0], "unix://") {
		t.Errorf("root/address wrong:\n%s", text)
	}
	if !got.Worker.OCI.Enabled || !got.Worker.OCI.GC || got.Worker.Containerd.Enabled {
		t.Errorf("workers wrong:\n%s", text)
	}
	if o := got.Worker.OCI; o.NetworkMode != "cni" || o.CNIConfigPath != sb.confPath || o.CNIBinaryPath != "/usr/lib/cni" {
		t.Errorf("builds are not on the CNI network: %+v\n%s", o, text)
	}
	if d := got.DNS; len(d.Nameservers) != 1 || d.Nameservers[0] != "10.255.255.53" || len(d.SearchDomains) != 1 {
		t.Errorf("dns = %+v\n%s", d, text)
	}
	if got.Worker.OCI.MaxUsedSpace != 1<<30 || got.Worker.OCI.ReservedSpace != 1<<29 {
		t.Errorf("gc sizes wrong:\n%s", text)
	}
	for _, h := range cfg.InsecureRegistries {
		if r, ok := got.Registry[h]; !ok || !r.HTTP || !r.Insecure {
			t.Errorf("registry %s missing or not insecure:\n%s", h, text)
		}
	}
}

func TestDefaultSocketPath(t *testing.T) {
	sock, dir := defaultSocketPath("/var/lib/berth/buildkit")
	if sock != "/var/lib/berth/buildkit/buildkitd.sock" || dir != "" {
		t.Errorf("short root: %s %s", sock, dir)
	}
	long := "/" + strings.Repeat("very-long-directory-name/", 6) + "buildkit"
	sock, dir = defaultSocketPath(long)
	if len(sock) > maxSocketPath || !strings.HasPrefix(filepath.Base(dir), "berth-bk-") || filepath.Dir(sock) != dir {
		t.Errorf("long root: %s %s", sock, dir)
	}
	if again, _ := defaultSocketPath(long); again != sock {
		t.Errorf("socket path is not stable: %s then %s", sock, again)
	}
}

func TestFindBinaryMissing(t *testing.T) {
	t.Chdir(t.TempDir())
	t.Setenv("PATH", t.TempDir())
	_, err := FindBinary()
	if !errors.Is(err, ErrNoBuilder) {
		t.Fatalf("err = %v, want ErrNoBuilder", err)
	}
	if !strings.Contains(err.Error(), "no builder: install buildkitd and runc (task install-buildkit) or set --buildkit-addr") {
		t.Errorf("error does not tell what to do: %v", err)
	}
	t.Log(err)

	_, err = Start(t.Context(), DaemonConfig{RootDir: t.TempDir()})
	if !errors.Is(err, ErrNoBuilder) {
		t.Fatalf("Start err = %v, want ErrNoBuilder", err)
	}
}

func TestStartFailsWithLog(t *testing.T) {
	// A "daemon" that exits at once: Start must say so with its output.
	script := filepath.Join(t.TempDir(), "buildkitd")
	if err := os.WriteFile(script, []byte("#!/bin/sh\necho 'cannot start: no overlay' >&2\nexit 3\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err := Start(t.Context(), DaemonConfig{Binary: script, RootDir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "cannot start: no overlay") {
		t.Fatalf("err = %v, want the daemon's stderr", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Errorf("Start took %v to notice the exit", time.Since(start))
	}
}

func TestDaemonStartStop(t *testing.T) {
	bin := requireBuildkit(t)
	// A root too long for a socket beside it.
	root := filepath.Join(t.TempDir(), strings.Repeat("d", 60), strings.Repeat("e", 40))
	var logBuf logWriter
	logBuf.t = t
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	start := time.Now()
	d, err := Start(ctx, DaemonConfig{Binary: bin, RootDir: root, InsecureRegistries: []string{"127.0.0.1:5999"}, GCKeepBytes: 64 << 20, LogWriter: &logBuf})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("MEASURE buildkitd ready in %v", time.Since(start).Round(time.Millisecond))
	sock := strings.TrimPrefix(d.Addr(), "unix://")
	if len(sock) > maxSocketPath || strings.HasPrefix(sock, root) {
		t.Errorf("socket %s for a long root", sock)
	}
	b, err := NewBuilder(ctx, d.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	if err := d.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	t.Logf("stopped in %v", time.Since(start).Round(time.Millisecond))
	if _, err := os.Stat(filepath.Dir(sock)); !os.IsNotExist(err) {
		t.Errorf("socket dir %s left behind", filepath.Dir(sock))
	}
	if err := d.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
	if !strings.Contains(logBuf.String(), "running server") {
		t.Logf("daemon log:\n%s", logBuf.String())
	}
}

// TestUnmountUnder: a namespace bind mount left in buildkitd's CNI pool (as a daemon that exits before tearing
// its pool down leaves it) is detached, so the root can be removed.
func TestUnmountUnder(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount")
	}
	root := t.TempDir()
	ns := filepath.Join(root, "net", "cni", "pool 1") // a space, escaped in mountinfo
	if err := os.MkdirAll(filepath.Dir(ns), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(ns, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("/proc/self/ns/net", ns, "", syscall.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(ns); err == nil || !strings.Contains(err.Error(), "busy") {
		t.Fatalf("removing a mounted namespace file: %v", err)
	}
	unmountUnder(filepath.Join(root, "net"))
	if err := os.RemoveAll(root); err != nil {
		t.Fatalf("after unmountUnder: %v", err)
	}
}

// TestDaemonKilledSandboxRemoved: a buildkitd that dies leaves its sandbox (namespace, veth pair, firewall
// tables, registry paths) until Stop, which removes all of it; a daemon started again on the same root finds
// nothing in its way.
func TestDaemonKilledSandboxRemoved(t *testing.T) {
	bin := requireBuildkit(t)
	root := t.TempDir()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	for round := range 2 {
		d, err := Start(ctx, DaemonConfig{Binary: bin, RootDir: root, Registries: []string{"127.0.0.1:5999"}})
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		sb := d.sandbox
		present := func() []string {
			var left []string
			if _, err := os.Stat(sb.nsPath()); err == nil {
				left = append(left, "namespace "+sb.netns)
			}
			if _, err := net.InterfaceByName(sb.vethHost); err == nil {
				left = append(left, "interface "+sb.vethHost)
			}
			if exec.Command("nft", "list", "table", "inet", sb.table).Run() == nil {
				left = append(left, "nft table "+sb.table)
			}
			return left
		}
		if got := present(); len(got) != 3 {
			t.Fatalf("round %d: a running daemon's sandbox has only %v", round, got)
		}
		_ = d.cmd.Process.Kill()
		<-d.Done()
		_ = d.Stop()
		if left := present(); len(left) > 0 {
			t.Errorf("round %d: after Stop of a killed daemon, left behind: %v", round, left)
		}
	}
}
