package buildkit

import (
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/berth-dev/berth/workers/buildkit/buildkittest"
)

// l2Script starts both builds' RUN step: the gateway, an ARP entry for it, and the build's own IPv6
// link-local address (none when IPv6 is off); at the barrier it learns the other build's (or "none"), and
// pings it in the background.
const l2Script = `bb=/bin/busybox
gw=$($bb ip route | $bb awk '/^default/ {print $3}')
ifc=$($bb ip route | $bb awk '/^default/ {print $5}')
arp() { $bb awk -v g="$gw" '$1 == g {print $4}' /proc/net/arp; }
$bb ping -c 1 -W 2 "$gw" >/dev/null 2>&1
echo "L2 arp-before $(arp)"
self6=$($bb ip -6 addr show dev "$ifc" scope link 2>/dev/null | $bb awk '/inet6/ {sub("/.*", "", $2); print $2; exit}')
echo "L2 self6 ${self6:-none}"
peer=$($bb wget -q -O - "http://$BARRIER/barrier?me=$ME&addr=${self6:-none}") || echo "L2 no-barrier"
echo "L2 peer6 $peer"
if [ -n "$peer" ] && [ "$peer" != none ]; then
  $bb ping -6 -c 3 -w 3 "$peer%$ifc" 2>&1 | $bb sed 's/^/L2 ping6 /' &
fi
`

// victimScript watches its ARP entry for the gateway while the other build claims the gateway's address.
const victimScript = l2Script + `for i in 1 2 3 4 5 6 7 8 9 10; do $bb sleep 0.3; echo "L2 arp-after $(arp)"; done
wait
true
`

// spooferScript broadcasts gratuitous ARP for the gateway's address from its own MAC.
const spooferScript = l2Script + `/garp "$ifc" "$gw" 3s 2>&1 | $bb sed 's/^/L2 /'
wait
true
`

var (
	l2LineRE = regexp.MustCompile(`L2 (arp-before|arp-after|self6|peer6|ping6|garp:|no-barrier)(.*)$`)
	fromRE   = regexp.MustCompile(`from ([0-9a-f:]*[0-9a-f])`)
)

// l2Report is what one build's log says.
type l2Report struct {
	arpBefore string
	arpAfter  []string
	self6     string   // its IPv6 link-local address, or "none"
	peer6     string   // the other build's, as the barrier told it
	replies6  []string // addresses that answered its ping to peer6
	garp      string
	barrier   bool
}

func parseL2(log string) l2Report {
	r := l2Report{barrier: true}
	for _, line := range strings.Split(log, "\n") {
		m := l2LineRE.FindStringSubmatch(line)
		if m == nil || strings.Contains(line, "echo ") {
			continue
		}
		v := strings.TrimSpace(m[2])
		switch m[1] {
		case "arp-before":
			r.arpBefore = v
		case "arp-after":
			r.arpAfter = append(r.arpAfter, v)
		case "self6":
			r.self6 = v
		case "peer6":
			r.peer6 = v
		case "ping6":
			if f := fromRE.FindStringSubmatch(v); f != nil {
				r.replies6 = append(r.replies6, f[1])
			}
		case "garp:":
			r.garp = v
		case "no-barrier":
			r.barrier = false
		}
	}
	return r
}

// TestBuildsL2Isolated: two builds running at once on the daemon's bridge can neither reach each other over
// IPv6 link-local (a ping to all nodes of the link, ff02::1) nor take the gateway's address by ARP: one build
// broadcasts gratuitous ARP claiming the gateway, from its own MAC (RUN steps keep CAP_NET_RAW), while the
// other watches its ARP entry for the gateway. A barrier on a stand-in for the internet starts both at once,
// and tells each the other's IPv6 link-local address (builds have none: disable_ipv6 is set in them).
// On the code before the bridge rules (commit 256c72d) the victim's entry for the gateway took the spoofer's
// MAC; IPv6 between builds was already refused where br_netfilter hands bridged traffic to the inet rules.
func TestBuildsL2Isolated(t *testing.T) {
	b := testBuilder(t)
	host := newTestRegistry(t)
	base := pushBusybox(t, host, nil)

	// The barrier: each build gives its name and IPv6 address, and gets the other's address once both came.
	var arrived atomic.Int32
	both := make(chan struct{})
	var addrMu sync.Mutex
	addrs := map[string]string{}
	internet, err := buildkittest.StartNetworkServing(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		me := r.URL.Query().Get("me")
		addrMu.Lock()
		addrs[me] = r.URL.Query().Get("addr")
		addrMu.Unlock()
		if arrived.Add(1) == 2 {
			close(both)
		}
		select {
		case <-both:
		case <-time.After(30 * time.Second):
		case <-r.Context().Done():
		}
		addrMu.Lock()
		defer addrMu.Unlock()
		for name, a := range addrs {
			if name != me {
				io.WriteString(w, a)
			}
		}
	}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(internet.Close)

	dir := t.TempDir()
	cmd := exec.Command("go", "build", "-o", filepath.Join(dir, "garp"), "./testdata/garp")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build testdata/garp: %v\n%s", err, out)
	}
	env := func(me string) string { return "ENV BARRIER=" + internet.Addr.String() + " ME=" + me + "\n" }
	writeFiles(t, dir, map[string]string{
		"victim/Dockerfile":  "FROM " + base + "\n" + env("victim") + "COPY victim.sh /\nRUN /bin/busybox sh /victim.sh\n",
		"victim/victim.sh":   victimScript,
		"spoofer/Dockerfile": "FROM " + base + "\n" + env("spoofer") + "COPY garp spoofer.sh /\nRUN /bin/busybox sh /spoofer.sh\n",
		"spoofer/spoofer.sh": spooferScript,
	})
	if err := os.Rename(filepath.Join(dir, "garp"), filepath.Join(dir, "spoofer", "garp")); err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	logs := map[string]string{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, name := range []string{"victim", "spoofer"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
			defer cancel()
			log := newLogWriter(t)
			_, err := b.Build(ctx, BuildRequest{ContextDir: filepath.Join(dir, name), ImageRef: host + "/team/" + name + ":latest",
				Insecure: true, NoCache: true}, log)
			if err != nil {
				t.Errorf("build %s: %v\n%s", name, err, log)
			}
			mu.Lock()
			logs[name] = log.String()
			mu.Unlock()
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	t.Logf("MEASURE two concurrent L2 probe builds: %v", time.Since(start).Round(time.Millisecond))
	victim, spoofer := parseL2(logs["victim"]), parseL2(logs["spoofer"])
	if !victim.barrier || !spoofer.barrier || arrived.Load() != 2 {
		t.Fatalf("the builds did not meet at the barrier (%d arrived):\n%s\n%s", arrived.Load(), logs["victim"], logs["spoofer"])
	}
	if victim.arpBefore == "" || len(victim.arpAfter) == 0 || !strings.HasPrefix(spoofer.garp, "sent") {
		t.Fatalf("the probes did not run (victim %+v, spoofer %+v):\n%s\n%s", victim, spoofer, logs["victim"], logs["spoofer"])
	}
	for _, r := range []l2Report{victim, spoofer} {
		if r.self6 != "none" {
			t.Errorf("a build has the IPv6 address %s: IPv6 is not disabled in build namespaces", r.self6)
		}
	}
	for _, mac := range victim.arpAfter {
		if mac != "" && mac != victim.arpBefore {
			t.Errorf("the other build took the gateway's address: the victim's ARP entry for it went from %s to %s (%s)",
				victim.arpBefore, mac, spoofer.garp)
			break
		}
	}
	for _, pair := range [][2]l2Report{{victim, spoofer}, {spoofer, victim}} {
		for _, a := range pair[0].replies6 {
			if a == pair[1].self6 {
				t.Errorf("a build reached the other over IPv6 link-local: %s answered its ping", a)
				break
			}
		}
	}
	t.Logf("victim: %+v", victim)
	t.Logf("spoofer: %+v", spoofer)
	if t.Failed() {
		t.Logf("victim's log:\n%s\nspoofer's log:\n%s", logs["victim"], logs["spoofer"])
	}
}
