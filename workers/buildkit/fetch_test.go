package buildkit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/berth-dev/berth/workers/buildkit/buildkittest"
)

// countingServer answers every request with its body and counts them.
type countingServer struct {
	host string // host:port
	body string
	n    atomic.Int64
}

// serveCounting serves on a new listener at addr (host:port) until the test ends.
func serveCounting(t *testing.T, addr, body string) *countingServer {
	t.Helper()
	ln, err := net.Listen("tcp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	s := &countingServer{host: ln.Addr().String(), body: body}
	srv := &http.Server{Handler: s}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return s
}

func (s *countingServer) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	s.n.Add(1)
	io.WriteString(w, s.body)
}

// port is the server's port.
func (s *countingServer) port() string {
	_, p, _ := net.SplitHostPort(s.host)
	return p
}

// reachFromHost fails the test unless the host itself gets url's answer (so a refused build is the sandbox's
// doing), then forgets the request.
func (s *countingServer) reachFromHost(t *testing.T, url string) {
	t.Helper()
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("the host cannot reach %s itself: %v", url, err)
	}
	resp.Body.Close()
	s.n.Store(0)
}

func randomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// addHostAddrs puts addrs (each a /32) on the host's lo until the test ends: the host's own addresses, as a
// cloud host's metadata service is reached from it. (This kernel has no dummy interfaces.)
func addHostAddrs(t *testing.T, addrs ...string) {
	t.Helper()
	for _, a := range addrs {
		if out, err := exec.Command("ip", "addr", "add", a+"/32", "dev", "lo").CombinedOutput(); err != nil {
			t.Fatalf("ip addr add %s/32 dev lo: %v: %s", a, err, out)
		}
		t.Cleanup(func() {
			if out, err := exec.Command("ip", "addr", "del", a+"/32", "dev", "lo").CombinedOutput(); err != nil {
				t.Errorf("ip addr del %s/32 dev lo: %v: %s", a, err, out)
			}
		})
	}
}

// hostsCacheAge is how long a Go program (buildkitd, this test) may keep reading a stale /etc/hosts.
const hostsCacheAge = 5 * time.Second

// addHostsNames adds a made-up name for each of addrs to the host's /etc/hosts until the test ends, waits until
// Go programs read the file again, checks that the names resolve here, and returns them.
func addHostsNames(t *testing.T, addrs ...string) []string {
	t.Helper()
	var names []string
	var lines strings.Builder
	for _, a := range addrs {
		name := "berth-test-" + randomHex(t, 4) + ".test"
		names = append(names, name)
		lines.WriteString(a + " " + name + " # added by a Berth test; safe to remove\n")
	}
	old, err := os.ReadFile("/etc/hosts")
	if err != nil {
		t.Fatal(err)
	}
	add := lines.String()
	if len(old) > 0 && old[len(old)-1] != '\n' {
		add = "\n" + add
	}
	// Written in place: /etc/hosts may be a bind mount.
	if err := os.WriteFile("/etc/hosts", append(old, add...), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		now, err := os.ReadFile("/etc/hosts")
		if err == nil {
			err = os.WriteFile("/etc/hosts", []byte(strings.Replace(string(now), add, "", 1)), 0o644)
		}
		if err != nil {
			t.Errorf("remove %v from /etc/hosts: %v", names, err)
		}
	})
	time.Sleep(hostsCacheAge + 500*time.Millisecond)
	for i, name := range names {
		if got, err := net.DefaultResolver.LookupHost(t.Context(), name); err != nil || len(got) == 0 || got[0] != addrs[i] {
			t.Fatalf("%s resolves to %v (%v) on the host, want %s", name, got, err, addrs[i])
		}
	}
	return names
}

// refusedRE matches how a build's log names a fetch the sandbox refused: a connection refused (by the
// firewall's reset, or by nothing listening in buildkitd's namespace; Git says it could not connect), or the
// registry path's 403.
var refusedRE = regexp.MustCompile(`(?i)connection refused|couldn't connect to server|invalid response status 403`)

// TestBuildFetchesSandboxed: what BuildKit itself fetches for a build (ADD <url>, ADD <git url>) reaches no
// host loopback service, whether named by 127.0.0.1, localhost or a name /etc/hosts gives a loopback address;
// not Berth's own listener but for the registry API; not cloud metadata (169.254.169.254, 100.100.100.200,
// 168.63.129.16, here on the host itself). Each build fails naming the refusal, and no request reaches the
// server, which the host itself reaches. ADD from a public address works, by address and by a name, and so
// does FROM Berth's registry.
func TestBuildFetchesSandboxed(t *testing.T) {
	b := testBuilder(t)
	start := time.Now()
	host := newTestRegistry(t)
	base := pushBusybox(t, host, nil)

	loop := serveCounting(t, "127.0.0.1:0", "loot from the host's loopback\n")
	loop.reachFromHost(t, "http://"+loop.host+"/s.txt")
	// Stands for Berth's own listener (API, console, /readyz beside the registry): a registry path opens to it.
	berth := serveCounting(t, "127.0.0.1:0", "berth's API\n")
	berth.reachFromHost(t, "http://"+berth.host+"/readyz")
	allowRegistry(t, berth.host)
	// Anything Git asks for (info/refs) counts: a real Git server is not needed to see that none arrives.
	git := serveCounting(t, "127.0.0.1:0", "")
	git.reachFromHost(t, "http://"+git.host+"/app.git/info/refs")
	metadata := []string{"169.254.169.254", "100.100.100.200", "168.63.129.16"}
	addHostAddrs(t, metadata...)
	meta := map[string]*countingServer{}
	for _, a := range metadata {
		meta[a] = serveCounting(t, a+":80", "instance credentials\n")
		meta[a].reachFromHost(t, "http://"+a+"/latest/meta-data/")
	}
	var public atomic.Int64
	internet, err := buildkittest.StartNetworkServing(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		public.Add(1)
		io.WriteString(w, buildkittest.NetworkBody)
	}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(internet.Close)
	// A name with a loopback address, and one with the public server's.
	names := addHostsNames(t, "127.0.0.1", internet.Addr.String())
	name, pubName := names[0], names[1]

	refused := []struct {
		name, url string
		srv       *countingServer
		logWants  string
	}{
		{"loopback address", "http://" + loop.host + "/s.txt", loop, ""},
		{"localhost", "http://localhost:" + loop.port() + "/s.txt", loop, ""},
		{"name in /etc/hosts", "http://" + name + ":" + loop.port() + "/s.txt", loop, ""},
		{"berth beside its registry", "http://" + berth.host + "/readyz", berth, ""},
		{"git context", "http://" + git.host + "/app.git", git, "git"},
	}
	for _, a := range metadata {
		refused = append(refused, struct {
			name, url string
			srv       *countingServer
			logWants  string
		}{"metadata " + a, "http://" + a + "/latest/meta-data/", meta[a], ""})
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFiles(t, dir, map[string]string{"Dockerfile": "FROM " + base + "\nADD " + tc.url + " /loot/\n"})
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			defer cancel()
			log := newLogWriter(t)
			began := time.Now()
			_, err := b.Build(ctx, BuildRequest{ContextDir: dir, ImageRef: host + "/team/loot:latest", Insecure: true}, log)
			if err == nil {
				t.Fatalf("ADD %s succeeded:\n%s", tc.url, log)
			}
			if !refusedRE.MatchString(log.String()) || !strings.Contains(log.String(), tc.logWants) {
				t.Errorf("the log does not name the refusal (%s):\n%s", refusedRE, log)
			}
			if n := tc.srv.n.Load(); n != 0 {
				t.Errorf("%d requests reached %s", n, tc.srv.host)
			}
			t.Logf("refused in %v: %v", time.Since(began).Round(time.Millisecond), err)
		})
	}

	t.Run("public address and FROM Berth's registry", func(t *testing.T) {
		dir := t.TempDir()
		// By address, and by a name (here from /etc/hosts) that resolves to it.
		writeFiles(t, dir, map[string]string{"Dockerfile": "FROM " + base + "\nADD http://" + internet.Addr.String() + "/pub.txt /pub.txt\n" +
			"ADD http://" + pubName + "/named.txt /named.txt\n"})
		req := BuildRequest{ContextDir: dir, ImageRef: host + "/team/public:latest", Insecure: true, NoCache: true}
		build(t, b, req)
		files, _ := imageFiles(t, req.ImageRef, nil)
		for _, f := range []string{"pub.txt", "named.txt"} {
			if files[f] != buildkittest.NetworkBody {
				t.Errorf("%s = %q, want the public server's answer", f, files[f])
			}
		}
		if public.Load() < 2 {
			t.Errorf("the public server saw %d requests, want 2", public.Load())
		}
	})
	t.Logf("MEASURE %d refused fetches and one public build (setup included, %v of it waiting for /etc/hosts): %v",
		len(refused), hostsCacheAge, time.Since(start).Round(time.Millisecond))
}
