package buildkit

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/berth-dev/berth/workers/buildkit/netns"
)

// TestRegistryAPI: the registry path carries the registry API, written plainly, and nothing else of Berth's
// listener.
func TestRegistryAPI(t *testing.T) {
	for target, want := range map[string]bool{
		"/v2":                                   true,
		"/v2/":                                  true,
		"/v2/library/busybox/manifests/latest":  true,
		"/v2/team/app/blobs/sha256:0123":        true,
		"/token?scope=repository:team/app:pull": true,
		"/":                                     false,
		"/readyz":                               false,
		"/healthz":                              false,
		"/api/v1/namespaces":                    false,
		"/v2/../readyz":                         false,
		"/v2/./x":                               false,
		"/v2//x":                                false,
		"/v2/%2e%2e/readyz":                     false,
		"/v2%2f..%2freadyz":                     false,
		"/token/../api":                         false,
		"/tokens":                               false,
		"/v20":                                  false,
	} {
		r := httptest.NewRequest("GET", "http://127.0.0.1:5000"+target, nil)
		if got := registryAPI(r); got != want {
			t.Errorf("%s: registryAPI = %v, want %v", target, got, want)
		}
	}
}

// TestRegistryPath: from inside a network namespace, the path to a registry on the host's loopback carries
// plain HTTP for the registry API only (403 otherwise, and the registry sees nothing), and TLS as it is.
func TestRegistryPath(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for a network namespace")
	}
	name := "berth-rp-" + randomHex(t, 4)
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "delete", name).Run() })
	if out, err := exec.Command("ip", "-n", name, "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("lo up: %v: %s", err, out)
	}
	nsPath := filepath.Join("/run/netns", name)

	var seen atomic.Int64
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen.Add(1)
		io.WriteString(w, "registry "+r.URL.Path)
	})
	plain := httptest.NewServer(handler)
	t.Cleanup(plain.Close)
	tlsSrv := httptest.NewTLSServer(handler)
	t.Cleanup(tlsSrv.Close)

	client := func(tr *http.Transport) *http.Client {
		tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			var c net.Conn
			err := netns.Do(nsPath, func() error {
				var err error
				c, err = (&net.Dialer{}).DialContext(ctx, network, addr)
				return err
			})
			return c, err
		}
		return &http.Client{Transport: tr, Timeout: 10 * time.Second}
	}
	get := func(c *http.Client, url string) (int, string) {
		t.Helper()
		resp, err := c.Get(url)
		if err != nil {
			t.Fatalf("GET %s in the namespace: %v", url, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	// Nothing answers in the namespace before the path is open.
	if _, err := client(&http.Transport{}).Get(plain.URL + "/v2/"); err == nil {
		t.Fatal("the namespace reached the host's loopback without a path")
	}
	for _, u := range []string{plain.URL, tlsSrv.URL} {
		rp, err := openRegistryPath(t.Context(), name, nsPath, strings.TrimPrefix(strings.TrimPrefix(u, "http://"), "https://"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(rp.close)
	}
	c := client(&http.Transport{})
	if code, body := get(c, plain.URL+"/v2/"); code != 200 || body != "registry /v2/" {
		t.Errorf("/v2/: %d %q", code, body)
	}
	seen.Store(0)
	if code, body := get(c, plain.URL+"/readyz"); code != 403 || !strings.Contains(body, "refused by Berth's build sandbox") {
		t.Errorf("/readyz: %d %q", code, body)
	}
	if seen.Load() != 0 {
		t.Errorf("the refused request reached the registry")
	}
	tc := client(&http.Transport{TLSClientConfig: tlsSrv.Client().Transport.(*http.Transport).TLSClientConfig})
	if code, body := get(tc, tlsSrv.URL+"/v2/x"); code != 200 || body != "registry /v2/x" {
		t.Errorf("TLS /v2/x: %d %q", code, body)
	}
}
