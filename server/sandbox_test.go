package server_test

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/berth-dev/berth/server/app"
	"github.com/berth-dev/berth/server/app/apptest"
	"github.com/berth-dev/berth/workers/buildkit"
	"github.com/berth-dev/berth/workers/buildkit/buildkittest"
)

// probeScript runs in a build. Each probe prints "PROBE <name> <target> reached|blocked"; they run at once,
// so refused connections cost one timeout in all.
const probeScript = `bb=/bin/busybox
gw=$($bb ip route | $bb awk '/^default/ {print $3}')
echo "PROBE gateway $gw"
say() { if [ $2 = 0 ]; then echo "PROBE $1 reached"; else echo "PROBE $1 blocked ${3:-timed out}"; fi; }
tcp() { e=$($bb timeout 8 $bb nc -w 5 "$2" "$3" </dev/null 2>&1 >/dev/null); say "$1 $2:$3" $? "$e"; }
web() { e=$($bb timeout 8 $bb wget -q -O /dev/null "http://$2/" 2>&1); say "$1 $2" $? "$e"; }
sock() { if [ -e "$2" ]; then say "$1 $2" 0; else say "$1 $2" 1 "no such file"; fi; }
`

// TestBuildSandbox: a build's RUN steps reach a web server standing for the internet (and a private address
// --build-allow-cidr allows), but none of the Berth host's services, whether by 127.0.0.1, the bridge's
// gateway (the host) or the host's own address, nor cloud metadata at 169.254.169.254, nor a private LAN.
// The host itself reaches every one of them, so each "blocked" is the sandbox's doing. An ADD of Berth's own
// /readyz (what buildkitd fetches itself) is refused as well.
func TestBuildSandbox(t *testing.T) {
	_, err := buildkit.FindBinary()
	need(t, "buildkitd (scripts/install-buildkit.sh), runc or root", err)
	_, err = buildkit.CheckSandbox()
	need(t, "the build sandbox (containernetworking-plugins, nftables, iptables)", err)

	metadata := netip.MustParseAddr("169.254.169.254")
	lan, allowed := randomAddr(t, "192.168"), randomAddr(t, "10.254")
	fake, err := buildkittest.StartNetwork(metadata, lan, allowed)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fake.Close)

	// Berth starts buildkitd itself, as `berth serve` does.
	in := apptest.Start(t, apptest.Options{Configure: func(c *app.Config) {
		c.BuildAllow = []string{allowed.String() + "/32"}
	}})
	// Berth also served on every interface, as --addr 0.0.0.0:5000 would.
	ln, err := net.Listen("tcp", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: in.Handler}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	allPort := ln.Addr().(*net.TCPAddr).Port
	hostIP := outboundAddr(t)

	// Every target is reachable from the host: a blocked probe is the sandbox at work.
	for _, u := range []string{"http://" + in.Host + "/healthz", fmt.Sprintf("http://%s:%d/healthz", hostIP, allPort),
		"http://" + metadata.String() + "/", "http://" + lan.String() + "/", "http://" + fake.Addr.String() + "/"} {
		c := http.Client{Timeout: 5 * time.Second}
		resp, err := c.Get(u)
		if err != nil {
			t.Fatalf("the host cannot reach %s itself: %v", u, err)
		}
		resp.Body.Close()
	}

	_, berthPort, _ := net.SplitHostPort(in.Host)
	var blocked []string // probe lines
	tcpAll := func(name, port string) {
		for _, h := range []string{"127.0.0.1", "$gw", hostIP.String()} {
			blocked = append(blocked, fmt.Sprintf("tcp %s %s %s", name, h, port))
		}
	}
	tcpAll("berth", berthPort)
	tcpAll("berth-all-interfaces", fmt.Sprint(allPort))
	endpoint := func(name, addr string) {
		if path, ok := strings.CutPrefix(addr, "unix://"); ok {
			blocked = append(blocked, fmt.Sprintf("sock %s %s", name, path))
		} else if _, port, err := net.SplitHostPort(addr); err == nil {
			tcpAll(name, port)
		} else {
			blocked = append(blocked, fmt.Sprintf("sock %s %s", name, addr))
		}
	}
	if in.MongoURI != "" { // the embedded store is a file of the data dir, mode 0600, no endpoint
		endpoint("store", storeEndpoint(t, in.MongoURI))
	}
	endpoint("queue", queueEndpoint(t, in.Redis))
	blocked = append(blocked, "web metadata "+metadata.String(), "web lan "+lan.String())
	reached := []string{"web internet " + fake.Addr.String(), "web allowed " + allowed.String()}

	if r := in.Admin(t, "POST", "/api/v1/namespaces", map[string]any{"name": "library", "default_visibility": "PUBLIC"}); r.Status != 201 {
		t.Fatalf("namespace: %s", r.Body)
	}
	base := pushBusybox(t, in)
	if r := in.Admin(t, "POST", "/api/v1/namespaces", map[string]any{"name": "team"}); r.Status != 201 {
		t.Fatalf("namespace: %s", r.Body)
	}
	if r := in.Admin(t, "POST", "/api/v1/namespaces/team/repositories", map[string]any{"name": "probe"}); r.Status != 201 {
		t.Fatalf("repository: %s", r.Body)
	}
	const repo = "team/probe"
	script := func(lines []string) string {
		s := probeScript
		for _, l := range lines {
			s += l + " &\n"
		}
		return s + "wait\n"
	}
	g := newGitRepo(t)
	g.commit(t, map[string]string{
		"Dockerfile": "FROM " + base + "\nCOPY blocked.sh reached.sh /\n" +
			"RUN /bin/busybox sh /blocked.sh\n" +
			// A build may reach the internet: this step fails the build otherwise.
			"RUN /bin/busybox sh /reached.sh && /bin/busybox wget -q -O /fetched.txt http://" + fake.Addr.String() + "/\n",
		"blocked.sh": script(blocked),
		"reached.sh": script(reached),
	}, "probes")
	if r := in.Admin(t, "PUT", "/api/v1/repositories/"+repo+"/source", map[string]any{"provider": "github", "url": g.URL}); r.Status != 201 {
		t.Fatalf("put source: %d %s", r.Status, r.Body)
	}
	r := in.Admin(t, "POST", "/api/v1/repositories/"+repo+"/build-rules", map[string]any{"source_type": "BRANCH", "source_ref": "main"})
	if r.Status != 201 {
		t.Fatalf("rule: %d %s", r.Status, r.Body)
	}
	ruleID := r.JSON["id"].(string)
	start := time.Now()
	r = in.Admin(t, "POST", "/api/v1/repositories/"+repo+"/build-rules/"+ruleID+"/builds", nil)
	if r.Status != 202 {
		t.Fatalf("build now: %d %s", r.Status, r.Body)
	}
	b := waitBuild(t, in, repo, r.JSON["id"].(string), buildTimeout)
	log := buildLog(t, in, repo, r.JSON["id"].(string))
	requireSuccess(t, in, repo, b)
	t.Logf("MEASURE sandboxed probe build (buildkitd start included): %v", time.Since(start).Round(time.Millisecond))

	if files := pulledFiles(t, in.Host+"/"+repo+":latest"); files["fetched.txt"] != buildkittest.NetworkBody {
		t.Errorf("fetched.txt = %q, want the fake internet's answer", files["fetched.txt"])
	}
	results := map[string]string{} // "name target" → "reached" or "blocked REASON"
	gw := ""
	for _, line := range strings.Split(log, "\n") {
		_, rest, ok := strings.Cut(line, "PROBE ")
		if !ok || strings.Contains(line, "echo") {
			continue
		}
		f := strings.Fields(rest)
		switch {
		case len(f) == 2 && f[0] == "gateway":
			gw = f[1]
		case len(f) >= 3:
			results[f[0]+" "+f[1]] = strings.Join(f[2:], " ")
		}
	}
	if gw == "" {
		t.Fatalf("the build log has no gateway:\n%s", log)
	}
	check := func(lines []string, want string) {
		for _, l := range lines {
			f := strings.Fields(l)
			target := f[2]
			if f[0] == "tcp" {
				target = strings.ReplaceAll(f[2], "$gw", gw) + ":" + f[3]
			}
			got := results[f[1]+" "+target]
			if want == "reached" && got != want || want == "blocked" && !blockedRE.MatchString(got) {
				t.Errorf("%s %s: %q, want %s", f[1], target, got, want)
			}
		}
	}
	check(blocked, "blocked")
	check(reached, "reached")
	if t.Failed() {
		t.Logf("build log:\n%s", log)
	}
	t.Logf("%d targets blocked, %d reached; gateway %s, host %s", len(blocked), len(reached), gw, hostIP)

	bk := in.BuildkitAddr()
	if !strings.HasPrefix(bk, "unix://") {
		t.Fatalf("Berth's buildkitd listens on %q, want a unix socket", bk)
	}

	// What buildkitd fetches itself goes through the sandbox too: ADD of Berth's own /readyz (its listener is
	// the registry's) is refused by the registry path, while FROM of Berth's registry works.
	g.commit(t, map[string]string{"Dockerfile": "FROM " + base + "\nADD http://" + in.Host + "/readyz /readyz\n"}, "add readyz")
	r = in.Admin(t, "POST", "/api/v1/repositories/"+repo+"/build-rules/"+ruleID+"/builds", nil)
	if r.Status != 202 {
		t.Fatalf("build now: %d %s", r.Status, r.Body)
	}
	b = waitBuild(t, in, repo, r.JSON["id"].(string), buildTimeout)
	log = buildLog(t, in, repo, r.JSON["id"].(string))
	if b["status"] != "FAILED" || !strings.Contains(log, "invalid response status 403") || !strings.Contains(log, "FROM "+base) {
		t.Errorf("ADD of Berth's /readyz: build %v (%v), want FAILED by the sandbox's 403; log:\n%s", b["status"], b["error"], log)
	}
}

// blockedRE matches the failures of a connection the sandbox stopped (or that had nothing to reach in the build's
// own namespace), as busybox nc and wget print them; anything else (a crash, a typo) is not "blocked".
var blockedRE = regexp.MustCompile(`^blocked (.*(Connection refused|Host is unreachable|No route to host|Network is unreachable|timed out)|no such file)$`)

// randomAddr returns an address in prefix16 ("192.168") unlikely to be in use.
func randomAddr(t *testing.T, prefix16 string) netip.Addr {
	t.Helper()
	n := time.Now().UnixNano()
	return netip.MustParseAddr(fmt.Sprintf("%s.%d.%d", prefix16, 100+n%100, 2+(n/100)%200))
}

// outboundAddr is the host's own address on its default route (a UDP "connection" sends nothing).
func outboundAddr(t *testing.T) netip.Addr {
	t.Helper()
	c, err := net.Dial("udp", "203.0.113.1:9")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).AddrPort().Addr().Unmap()
}

// storeEndpoint is where the store listens: unix://path (mongodb://%2F…sock/, which url.Parse refuses) or
// host:port.
func storeEndpoint(t *testing.T, uri string) string {
	t.Helper()
	if rest, ok := strings.CutPrefix(uri, "mongodb://%2F"); ok {
		p, err := url.PathUnescape("%2F" + strings.TrimSuffix(rest, "/"))
		if err != nil {
			t.Fatal(err)
		}
		return "unix://" + p
	}
	u, err := url.Parse(uri)
	if err != nil {
		t.Fatal(err)
	}
	return u.Host
}

// queueEndpoint is where the queue listens: unix://path or host:port.
func queueEndpoint(t *testing.T, r asynq.RedisConnOpt) string {
	t.Helper()
	switch o := r.(type) {
	case asynq.RedisClientOpt:
		if o.Network == "unix" {
			return "unix://" + o.Addr
		}
		return o.Addr
	default:
		t.Fatalf("queue: %T", r)
		return ""
	}
}
