package outbound

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"
)

const secret = "trigger-secret"

// fakeResolver answers from a table and counts lookups. After the first
// lookup of a host it answers from rebind instead, like a DNS rebinding
// attacker would.
type fakeResolver struct {
	mu      sync.Mutex
	answers map[string][]netip.Addr
	rebind  map[string][]netip.Addr
	calls   map[string]int
}

func newResolver() *fakeResolver {
	return &fakeResolver{answers: map[string][]netip.Addr{}, rebind: map[string][]netip.Addr{}, calls: map[string]int{}}
}

func (r *fakeResolver) set(host string, addrs ...string) {
	for _, a := range addrs {
		r.answers[host] = append(r.answers[host], netip.MustParseAddr(a))
	}
}

func (r *fakeResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls[host]++
	if r.calls[host] > 1 && r.rebind[host] != nil {
		return r.rebind[host], nil
	}
	if a, ok := r.answers[host]; ok {
		return a, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

func (r *fakeResolver) count(host string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls[host]
}

// receiver is a trigger endpoint on loopback that checks what Berth sends.
type receiver struct {
	*httptest.Server
	hits   atomic.Int64
	mu     sync.Mutex
	errs   []string
	hosts  []string
	bodies [][]byte
}

func newReceiver(t *testing.T, status int, answer string) *receiver {
	t.Helper()
	rc := &receiver{}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc.hits.Add(1)
		body, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		defer rc.mu.Unlock()
		rc.hosts = append(rc.hosts, r.Host)
		rc.bodies = append(rc.bodies, body)
		check := func(ok bool, format string, args ...any) {
			if !ok {
				rc.errs = append(rc.errs, fmt.Sprintf(format, args...))
			}
		}
		check(r.Method == http.MethodPost, "method %s", r.Method)
		check(r.Header.Get("Content-Type") == "application/json", "Content-Type %q", r.Header.Get("Content-Type"))
		check(r.Header.Get("User-Agent") == "Berth-Trigger/1", "User-Agent %q", r.Header.Get("User-Agent"))
		check(r.Header.Get("X-Berth-Event") == "push", "X-Berth-Event %q", r.Header.Get("X-Berth-Event"))
		check(VerifySignature([]byte(secret), body, r.Header.Get("X-Berth-Signature")), "signature %q does not verify", r.Header.Get("X-Berth-Signature"))
		w.WriteHeader(status)
		io.WriteString(w, answer)
	}))
	t.Cleanup(rc.Close)
	return rc
}

func (rc *receiver) problems() []string {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.errs
}

// seen returns the Host headers and bodies received so far.
func (rc *receiver) seen() (hosts []string, bodies [][]byte) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]string(nil), rc.hosts...), append([][]byte(nil), rc.bodies...)
}

func port(t *testing.T, rawURL string) string {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	return u.Port()
}

func testBody(t *testing.T) []byte {
	t.Helper()
	b, err := specPayload(t).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDeliverRefusesNonPublicAddresses(t *testing.T) {
	rc := newReceiver(t, http.StatusOK, "ok")
	p := port(t, rc.URL)
	res := newResolver()
	res.set("evil.test", "127.0.0.1")
	res.set("mixed.test", "93.184.215.14", "10.1.2.3")
	res.set("metadata.test", "169.254.169.254")
	res.set("v6.test", "::1")
	d := &Deliverer{Resolver: res, Timeout: 2 * time.Second}

	tests := []struct {
		url    string
		reason string
	}{
		{rc.URL + "/hook", "refused: 127.0.0.1 is a loopback address (allow it with --trigger-allow-cidr)"},
		{"http://127.8.9.10:" + p + "/", "refused: 127.8.9.10 is a loopback address"},
		{"http://10.0.0.1/hook", "refused: 10.0.0.1 is a private address (allow it with --trigger-allow-cidr)"},
		{"http://172.16.0.1/", "172.16.0.1 is a private address"},
		{"http://172.31.255.255/", "172.31.255.255 is a private address"},
		{"http://192.168.1.1/", "192.168.1.1 is a private address"},
		{"http://169.254.169.254/latest/meta-data/", "refused: 169.254.169.254 is a link-local address"},
		{"http://100.64.0.1/", "100.64.0.1 is a shared (CGNAT) address"},
		{"http://100.127.255.254/", "100.127.255.254 is a shared (CGNAT) address"},
		{"http://224.0.0.1/", "224.0.0.1 is a multicast address"},
		{"http://255.255.255.255/", "255.255.255.255 is a broadcast address"},
		{"http://0.0.0.0:" + p + "/", "0.0.0.0 is an unspecified address"},
		{"http://0.1.2.3/", `0.1.2.3 is a "this network" address`},
		{"http://240.0.0.1/", "240.0.0.1 is a reserved address"},
		{"http://[::1]:" + p + "/", "refused: ::1 is a loopback address"},
		{"http://[::]:" + p + "/", ":: is an unspecified address"},
		{"http://[fd00::1]/", "fd00::1 is a private address"},
		{"http://[fe80::1]/", "fe80::1 is a link-local address"},
		{"http://[ff02::1]/", "ff02::1 is a multicast address"},
		{"http://[::ffff:127.0.0.1]:" + p + "/", "::ffff:127.0.0.1 is the IPv4-mapped form of a loopback address"},
		{"http://[::ffff:a9fe:a9fe]/", "::ffff:169.254.169.254 is the IPv4-mapped form of a link-local address"},
		{"http://[::ffff:10.0.0.1]/", "::ffff:10.0.0.1 is the IPv4-mapped form of a private address"},
		{"http://[64:ff9b::7f00:1]/", "64:ff9b::7f00:1 is the NAT64 form of a loopback address"},
		{"http://[2002:a00:1::]/", "2002:a00:1:: is the 6to4 form of a private address"},
		{"http://evil.test:" + p + "/hook", "refused: evil.test resolves to 127.0.0.1, which is a loopback address (allow it with --trigger-allow-cidr)"},
		{"http://metadata.test/", "metadata.test resolves to 169.254.169.254, which is a link-local address"},
		{"http://v6.test:" + p + "/", "v6.test resolves to ::1, which is a loopback address"},
		{"http://mixed.test/", "mixed.test resolves to 10.1.2.3, which is a private address"},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			r := d.Deliver(context.Background(), tt.url, testBody(t), secret)
			if !r.Refused || !errors.Is(r.Err, ErrRefused) || r.StatusCode != 0 || r.OK() {
				t.Fatalf("Deliver = %+v, want a refusal", r)
			}
			if !strings.Contains(r.Err.Error(), tt.reason) {
				t.Errorf("reason %q, want it to contain %q", r.Err, tt.reason)
			}
		})
	}
	if n := rc.hits.Load(); n != 0 {
		t.Errorf("receiver was reached %d times", n)
	}
}

func TestDeliverRefusesBadURLs(t *testing.T) {
	d := &Deliverer{Resolver: newResolver()}
	for _, u := range []string{"https://hooks.example.com:8443/", "ftp://hooks.example.com/", "http://u:p@hooks.example.com/", "http://hooks.example.com:1024/"} {
		r := d.Deliver(context.Background(), u, nil, secret)
		if !r.Refused || !errors.Is(r.Err, ErrInvalidURL) {
			t.Errorf("Deliver(%q) = %+v, want a URL rule refusal", u, r)
		}
	}
}

func allow(t *testing.T, cidrs ...string) []netip.Prefix {
	t.Helper()
	p, err := ParseAllowCIDRs(cidrs)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDeliverAllowlisted(t *testing.T) {
	rc := newReceiver(t, http.StatusAccepted, "accepted\n")
	body := testBody(t)
	d := &Deliverer{AllowCIDRs: allow(t, "127.0.0.0/8"), Timeout: 5 * time.Second, Resolver: newResolver()}
	r := d.Deliver(context.Background(), rc.URL+"/hook?token=x", body, secret)
	if !r.OK() || r.Refused || r.StatusCode != http.StatusAccepted {
		t.Fatalf("Deliver = %+v", r)
	}
	if r.ResponseExcerpt != "accepted\n" || r.Latency <= 0 {
		t.Errorf("excerpt %q, latency %v", r.ResponseExcerpt, r.Latency)
	}
	if p := rc.problems(); len(p) > 0 {
		t.Errorf("receiver saw: %v", p)
	}
	if _, bodies := rc.seen(); len(bodies) != 1 || string(bodies[0]) != string(body) {
		t.Errorf("receiver got %d requests: %q", len(bodies), bodies)
	}

	// The allowlist opens 127.0.0.0/8 only.
	if r := d.Deliver(context.Background(), "http://10.0.0.1/", body, secret); !r.Refused {
		t.Errorf("10.0.0.1 not refused with only 127.0.0.0/8 allowed: %+v", r)
	}
	// IPv4-mapped loopback is covered by the IPv4 allowlist entry.
	mapped := "http://[::ffff:127.0.0.1]:" + port(t, rc.URL) + "/hook"
	if r := d.Deliver(context.Background(), mapped, body, secret); !r.OK() {
		t.Errorf("mapped loopback with 127.0.0.0/8 allowed: %+v", r)
	}
}

func TestDeliverPinsResolvedAddress(t *testing.T) {
	rc := newReceiver(t, http.StatusOK, "ok")
	res := newResolver()
	res.set("hooks.test", "127.0.0.1")
	res.rebind["hooks.test"] = []netip.Addr{netip.MustParseAddr("10.9.9.9")}
	d := &Deliverer{AllowCIDRs: allow(t, "127.0.0.1"), Resolver: res, Timeout: 5 * time.Second}
	hostPort := "hooks.test:" + port(t, rc.URL)
	r := d.Deliver(context.Background(), "http://"+hostPort+"/hook", testBody(t), secret)
	if !r.OK() {
		t.Fatalf("Deliver = %+v", r)
	}
	if n := res.count("hooks.test"); n != 1 {
		t.Errorf("host resolved %d times, want exactly once", n)
	}
	if hosts, _ := rc.seen(); len(hosts) != 1 || hosts[0] != hostPort {
		t.Errorf("Host header %v, want %q", hosts, hostPort)
	}
}

func TestDeliverHTTPSKeepsServerName(t *testing.T) {
	var sawHost, sawSNI string
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sawHost, sawSNI = r.Host, r.TLS.ServerName
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)
	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate()) // valid for example.com

	res := newResolver()
	res.set("example.com", "127.0.0.1")
	var dialed []string
	d := &Deliverer{
		AllowCIDRs: allow(t, "127.0.0.0/8"),
		Resolver:   res,
		// https triggers must use port 443; the test listener cannot, so
		// the dialer records the pinned address and connects to the listener.
		Dialer: dialerFunc(func(ctx context.Context, network, address string) (net.Conn, error) {
			dialed = append(dialed, address)
			var nd net.Dialer
			return nd.DialContext(ctx, network, srv.Listener.Addr().String())
		}),
		TLSConfig: tlsConfigWithRoots(roots),
		Timeout:   5 * time.Second,
	}
	r := d.Deliver(context.Background(), "https://example.com/hook", testBody(t), secret)
	if !r.OK() || r.StatusCode != http.StatusNoContent {
		t.Fatalf("Deliver = %+v", r)
	}
	if len(dialed) != 1 || dialed[0] != "127.0.0.1:443" {
		t.Errorf("dialed %v, want only the pinned 127.0.0.1:443", dialed)
	}
	if sawHost != "example.com" || sawSNI != "example.com" {
		t.Errorf("Host %q, SNI %q; want example.com for both", sawHost, sawSNI)
	}
}

type dialerFunc func(ctx context.Context, network, address string) (net.Conn, error)

func (f dialerFunc) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	return f(ctx, network, address)
}

func TestDeliverDoesNotFollowRedirects(t *testing.T) {
	inner := newReceiver(t, http.StatusOK, "should never be reached")
	for _, target := range []string{"http://10.0.0.1/internal", "http://169.254.169.254/latest/meta-data/", inner.URL + "/hook"} {
		redirector := httptest.NewServer(http.RedirectHandler(target, http.StatusFound))
		t.Cleanup(redirector.Close)

		// Not allowlisted: the redirecting listener itself is refused.
		r := (&Deliverer{}).Deliver(context.Background(), redirector.URL, testBody(t), secret)
		if !r.Refused || !strings.Contains(r.Err.Error(), "127.0.0.1 is a loopback address") {
			t.Errorf("not allowlisted: %+v", r)
		}

		d := &Deliverer{AllowCIDRs: allow(t, "127.0.0.0/8"), Timeout: 5 * time.Second}
		r = d.Deliver(context.Background(), redirector.URL, testBody(t), secret)
		if r.OK() || r.Refused || r.StatusCode != http.StatusFound || !errors.Is(r.Err, ErrStatus) {
			t.Fatalf("redirect to %s: %+v", target, r)
		}
		if !strings.Contains(r.Err.Error(), "redirects are not followed") || !strings.Contains(r.Err.Error(), target) {
			t.Errorf("reason %q", r.Err)
		}
	}
	if n := inner.hits.Load(); n != 0 {
		t.Errorf("redirect target reached %d times", n)
	}
}

func TestDeliverNon2xx(t *testing.T) {
	answer := "boom\x00\x1b[31m\xff\xfe\u202eevil\r\nline2\t" + strings.Repeat("é", 2000)
	rc := newReceiver(t, http.StatusInternalServerError, answer)
	d := &Deliverer{AllowCIDRs: allow(t, "127.0.0.0/8"), Timeout: 5 * time.Second}
	r := d.Deliver(context.Background(), rc.URL, testBody(t), secret)
	if r.OK() || r.Refused || r.StatusCode != 500 || !errors.Is(r.Err, ErrStatus) || !strings.Contains(r.Err.Error(), "500") {
		t.Fatalf("Deliver = %+v", r)
	}
	ex := r.ResponseExcerpt
	if len(ex) > MaxExcerpt || !utf8.ValidString(ex) || !strings.HasPrefix(ex, "boom[31m\uFFFDevil\nline2\t") {
		t.Errorf("excerpt (%d bytes) %q", len(ex), ex[:min(len(ex), 60)])
	}
	if strings.ContainsAny(ex, "\x00\x1b\r\u202e") {
		t.Errorf("control characters kept in %q", ex[:40])
	}

	notFound := newReceiver(t, http.StatusNotFound, "no such hook")
	r = d.Deliver(context.Background(), notFound.URL, testBody(t), secret)
	if r.StatusCode != 404 || r.ResponseExcerpt != "no such hook" || r.Err == nil {
		t.Errorf("404: %+v", r)
	}
}

func TestDeliverTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) }) // runs before srv.Close
	d := &Deliverer{AllowCIDRs: allow(t, "127.0.0.0/8"), Timeout: 200 * time.Millisecond}
	r := d.Deliver(context.Background(), srv.URL, testBody(t), secret)
	if r.OK() || r.Refused || r.StatusCode != 0 {
		t.Fatalf("Deliver = %+v", r)
	}
	if !errors.Is(r.Err, context.DeadlineExceeded) || !strings.Contains(r.Err.Error(), "timeout") {
		t.Errorf("err %v, want a timeout", r.Err)
	}
	if r.Latency < 200*time.Millisecond || r.Latency > 3*time.Second {
		t.Errorf("latency %v", r.Latency)
	}
}

func TestDeliverWithoutSecretSendsNoSignature(t *testing.T) {
	var sig []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sig = r.Header.Values(SignatureHeader)
	}))
	t.Cleanup(srv.Close)
	d := &Deliverer{AllowCIDRs: allow(t, "127.0.0.0/8")}
	if r := d.Deliver(context.Background(), srv.URL, []byte("{}"), ""); !r.OK() || len(sig) != 0 {
		t.Errorf("Deliver = %+v, signature headers %v", r, sig)
	}
}

func TestDeliverResolveFailure(t *testing.T) {
	d := &Deliverer{Resolver: newResolver()}
	r := d.Deliver(context.Background(), "http://nowhere.test/", nil, secret)
	if r.OK() || r.Refused || !strings.Contains(r.Err.Error(), "nowhere.test") {
		t.Errorf("Deliver = %+v, want a retryable resolution failure", r)
	}
}

func TestExcerpt(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"ok", "ok"},
		{"a\r\nb\tc\x7f\x00", "a\nb\tc"},
		{"bidi\u202eoverride\u200b", "bidioverride"},
		{"bad\xffbyte", "bad\uFFFDbyte"},
		{strings.Repeat("a", MaxExcerpt-1) + "é", strings.Repeat("a", MaxExcerpt-1)}, // é cut by the limit
		{strings.Repeat("a", 2000), strings.Repeat("a", MaxExcerpt)},
	}
	for _, tt := range tests {
		if got := Excerpt([]byte(tt.in)); got != tt.want {
			t.Errorf("Excerpt(%.20q) = %.20q (%d bytes), want %.20q (%d bytes)", tt.in, got, len(got), tt.want, len(tt.want))
		}
	}
	grow := Excerpt([]byte(strings.Repeat("\xffa", MaxExcerpt)))
	if len(grow) > MaxExcerpt || !utf8.ValidString(grow) {
		t.Errorf("replacement characters overflowed: %d bytes", len(grow))
	}
}
