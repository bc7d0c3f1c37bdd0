package server_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"

	"github.com/berth-dev/berth/server/app"
	"github.com/berth-dev/berth/server/app/apptest"
)

// clientFrom is an HTTP client whose connections leave from a loopback address of its own (127.0.0.2,
// 127.0.0.3, …), so Berth sees it as a distinct client.
func clientFrom(t *testing.T, ip string) *http.Client {
	t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	tr := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		return d.DialContext(ctx, network, addr)
	}}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

func statusAs(t *testing.T, c *http.Client, url, user, pass string) int {
	t.Helper()
	return statusVia(t, c, url, user, pass, "")
}

// statusVia is statusAs with an X-Forwarded-For header (none when xff is "").
func statusVia(t *testing.T, c *http.Client, url, user, pass, xff string) int {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if xff != "" {
		req.Header.Set("X-Forwarded-For", xff)
	}
	req.SetBasicAuth(user, pass)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

// TestFailedLoginsDoNotLockOutOthers: wrong passwords for admin from one client limit that client only; the
// correct password from another client still logs in, on the API and on the registry's /token (docker login).
func TestFailedLoginsDoNotLockOutOthers(t *testing.T) {
	in := apptest.Start(t, apptest.Options{})
	attacker, owner := clientFrom(t, "127.0.0.2"), clientFrom(t, "127.0.0.3")
	api, token := in.URL+"/api/v1/namespaces", in.URL+"/token?service="+in.Host+"&scope=repository:a/b:pull"
	for i := 1; i <= 12; i++ {
		want := 401
		if i > 10 {
			want = 429
		}
		if s := statusAs(t, attacker, api, "admin", fmt.Sprintf("wrong-%d", i)); s != want {
			t.Fatalf("wrong password %d from the attacker: %d, want %d", i, s, want)
		}
	}
	if s := statusAs(t, attacker, token, "admin", "wrong-again"); s != 429 {
		t.Fatalf("docker login from the attacker after 12 failures: %d, want 429", s)
	}
	if s := statusAs(t, attacker, api, "admin", apptest.AdminPassword); s != 429 {
		t.Fatalf("the right password from the client that failed: %d, want 429", s)
	}
	if s := statusAs(t, owner, api, "admin", apptest.AdminPassword); s != 200 {
		t.Fatalf("the right password from another client, API: %d, want 200", s)
	}
	if s := statusAs(t, owner, token, "admin", apptest.AdminPassword); s != 200 {
		t.Fatalf("the right password from another client, docker login (/token): %d, want 200", s)
	}
	// One wrong password from the owner's client costs it nothing more than that one failure.
	if s := statusAs(t, owner, api, "admin", "typo"); s != 401 {
		t.Fatalf("a typo from the owner: %d", s)
	}
	if s := statusAs(t, owner, api, "admin", apptest.AdminPassword); s != 200 {
		t.Fatalf("the owner after one typo: %d", s)
	}
}

// failUntilLimited sends wrong passwords for admin until the 11th is refused with 429, as from one client.
func failUntilLimited(t *testing.T, c *http.Client, url, xff string) {
	t.Helper()
	for i := 1; i <= 11; i++ {
		want := 401
		if i > 10 {
			want = 429
		}
		if s := statusVia(t, c, url, "admin", fmt.Sprintf("wrong-%d", i), xff); s != want {
			t.Fatalf("wrong password %d (X-Forwarded-For %q): %d, want %d", i, xff, s, want)
		}
	}
}

// TestFailedLoginsBehindTrustedProxy: behind a load balancer given with --trusted-proxy, every client comes
// from its address, and the limits count the client it forwards (X-Forwarded-For, right-most untrusted), on
// the API and on /token; an attacker cannot lock another client out, nor escape by prepending addresses. IPv6
// clients count by /64.
func TestFailedLoginsBehindTrustedProxy(t *testing.T) {
	in := apptest.Start(t, apptest.Options{Configure: func(c *app.Config) { c.TrustedProxy = []string{"127.0.0.5"} }})
	lb := clientFrom(t, "127.0.0.5")
	api, token := in.URL+"/api/v1/namespaces", in.URL+"/token?service="+in.Host+"&scope=repository:a/b:pull"
	failUntilLimited(t, lb, api, "198.51.100.1")
	for _, xff := range []string{"198.51.100.1", "198.51.100.2, 198.51.100.1", "127.0.0.5, 198.51.100.1"} {
		if s := statusVia(t, lb, api, "admin", apptest.AdminPassword, xff); s != 429 {
			t.Fatalf("the right password from the limited client (X-Forwarded-For %q): %d, want 429", xff, s)
		}
	}
	if s := statusVia(t, lb, token, "admin", apptest.AdminPassword, "198.51.100.1"); s != 429 {
		t.Fatalf("docker login from the limited client: %d, want 429", s)
	}
	for _, xff := range []string{"198.51.100.2", "198.51.100.1, 198.51.100.2"} {
		if s := statusVia(t, lb, api, "admin", apptest.AdminPassword, xff); s != 200 {
			t.Fatalf("another forwarded client (X-Forwarded-For %q), API: %d, want 200", xff, s)
		}
		if s := statusVia(t, lb, token, "admin", apptest.AdminPassword, xff); s != 200 {
			t.Fatalf("another forwarded client (X-Forwarded-For %q), docker login: %d, want 200", xff, s)
		}
	}
	if s := statusVia(t, lb, api, "admin", apptest.AdminPassword, ""); s != 200 {
		t.Fatalf("the balancer itself, forwarding no client: %d, want 200", s)
	}

	// IPv6: one /64 is one client.
	failUntilLimited(t, lb, api, "2001:db8:1:2::1")
	if s := statusVia(t, lb, api, "admin", apptest.AdminPassword, "2001:db8:1:2:ffff:ffff:ffff:fffe"); s != 429 {
		t.Fatalf("another address of the limited /64: %d, want 429", s)
	}
	if s := statusVia(t, lb, api, "admin", apptest.AdminPassword, "2001:db8:1:3::1"); s != 200 {
		t.Fatalf("an address of another /64: %d, want 200", s)
	}
}

// TestSpoofedForwardedForIgnored: without --trusted-proxy, X-Forwarded-For is the client's own claim and
// changes nothing: a client that failed stays limited whatever address it names.
func TestSpoofedForwardedForIgnored(t *testing.T) {
	in := apptest.Start(t, apptest.Options{})
	attacker := clientFrom(t, "127.0.0.2")
	api := in.URL + "/api/v1/namespaces"
	for i := 1; i <= 12; i++ {
		want := 401
		if i > 10 {
			want = 429
		}
		if s := statusVia(t, attacker, api, "admin", fmt.Sprintf("wrong-%d", i), fmt.Sprintf("198.51.100.%d", i)); s != want {
			t.Fatalf("wrong password %d under a new X-Forwarded-For: %d, want %d", i, s, want)
		}
	}
	if s := statusVia(t, attacker, api, "admin", apptest.AdminPassword, "198.51.100.200"); s != 429 {
		t.Fatalf("the right password under a new X-Forwarded-For: %d, want 429", s)
	}
}
