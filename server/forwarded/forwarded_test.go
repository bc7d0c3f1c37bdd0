package forwarded

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestClientIP(t *testing.T) {
	rs, err := New([]string{"10.0.0.0/8", "192.0.2.7", "fd00::/64"}, "")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, peer string
		xff        []string
		want       string
	}{
		{"no proxy header", "203.0.113.5:4000", nil, "203.0.113.5"},
		{"untrusted peer: the header is ignored", "203.0.113.5:4000", []string{"198.51.100.1"}, "203.0.113.5"},
		{"trusted peer", "10.1.2.3:4000", []string{"198.51.100.1"}, "198.51.100.1"},
		{"spoofed left entries are skipped", "10.1.2.3:4000", []string{"1.1.1.1, 198.51.100.1"}, "198.51.100.1"},
		{"trusted hops are walked", "10.1.2.3:4000", []string{"198.51.100.1, 192.0.2.7", "10.9.9.9"}, "198.51.100.1"},
		{"all trusted: the left-most", "10.1.2.3:4000", []string{"10.0.0.1, 10.0.0.2"}, "10.0.0.1"},
		{"garbage stops the walk", "10.1.2.3:4000", []string{"198.51.100.1, not-an-ip, 10.0.0.2"}, "10.0.0.2"},
		{"ports and IPv6", "[fd00::1]:4000", []string{"[2001:db8::5]:1234"}, "2001:db8::5"},
		{"mapped IPv4", "[::ffff:10.1.2.3]:4000", []string{"::ffff:198.51.100.9"}, "198.51.100.9"},
		{"trusted peer, no header", "10.1.2.3:4000", nil, "10.1.2.3"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			r.RemoteAddr = c.peer
			for _, v := range c.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			if got := rs.Resolve(r).ClientIP; got != c.want {
				t.Fatalf("client %q, want %q", got, c.want)
			}
		})
	}
	if _, err := New([]string{"10.0.0.0/33"}, ""); err == nil {
		t.Fatal("a bad CIDR was taken")
	}
}

// TestPublicURL: with no --public-url, the URL follows the request's Host (a wildcard listen address is no
// address a client can use), and a trusted proxy's X-Forwarded-Host/-Proto; --public-url wins.
func TestPublicURL(t *testing.T) {
	follow, _ := New([]string{"10.0.0.0/8"}, "")
	fixed, _ := New(nil, "https://registry.example.com/")
	req := func(peer, host string, hdr http.Header) *http.Request {
		r := httptest.NewRequest("GET", "/v2/", nil)
		r.RemoteAddr, r.Host = peer, host
		for k, v := range hdr {
			r.Header[k] = v
		}
		return r
	}
	fwd := http.Header{"X-Forwarded-Host": {"registry.example.org"}, "X-Forwarded-Proto": {"https"}}
	cases := []struct {
		name string
		rs   *Resolver
		r    *http.Request
		want string
	}{
		{"own host", follow, req("127.0.0.1:1", "127.0.0.1:5700", nil), "http://127.0.0.1:5700"},
		{"own IPv6 host", follow, req("[::1]:1", "[::1]:5700", nil), "http://[::1]:5700"},
		{"untrusted forwarded headers", follow, req("203.0.113.1:1", "127.0.0.1:5700", fwd), "http://127.0.0.1:5700"},
		{"trusted forwarded headers", follow, req("10.0.0.2:1", "berth:5000", fwd), "https://registry.example.org"},
		{"bad forwarded host", follow, req("10.0.0.2:1", "berth:5000", http.Header{"X-Forwarded-Host": {"evil/x"}}), "http://berth:5000"},
		{"public URL wins", fixed, req("127.0.0.1:1", "127.0.0.1:5700", fwd), "https://registry.example.com"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var got string
			c.rs.Handler(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) { got = PublicURL(r) })).ServeHTTP(httptest.NewRecorder(), c.r)
			if got != c.want {
				t.Fatalf("public URL %q, want %q", got, c.want)
			}
		})
	}
	r := req("127.0.0.1:1", "127.0.0.1:5700", nil)
	if !SameOrigin(r, "http://127.0.0.1:5700") || SameOrigin(r, "http://127.0.0.1:5701") || SameOrigin(r, "null") {
		t.Fatal("SameOrigin without the handler")
	}
}
