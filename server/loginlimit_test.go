package server_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"

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
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
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
