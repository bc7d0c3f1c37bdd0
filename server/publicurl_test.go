package server_test

import (
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/berth-dev/berth/server/app"
	"github.com/berth-dev/berth/server/app/apptest"
)

// TestWildcardAddrFollowsHost: with --addr 0.0.0.0:PORT and no --public-url (the shipped image), the token
// realm and service, webhook URLs and pull commands name the host the client used, never the wildcard, and a
// registry client logs in and pushes by either name; X-Forwarded-Host from an untrusted peer changes nothing.
func TestWildcardAddrFollowsHost(t *testing.T) {
	in := apptest.Start(t, apptest.Options{Configure: func(c *app.Config) {
		_, port, _ := net.SplitHostPort(c.Addr)
		c.Addr = "0.0.0.0:" + port
	}})
	_, port, _ := net.SplitHostPort(in.Host)
	in.Admin(t, "POST", "/api/v1/namespaces", map[string]any{"name": "team", "auto_create_repo": true})
	for _, host := range []string{"127.0.0.1:" + port, "localhost:" + port} {
		req, _ := http.NewRequest("GET", in.URL+"/v2/", nil)
		req.Host = host
		req.Header.Set("X-Forwarded-Host", "evil.example")
		r := apptest.Do(t, req)
		want := `Bearer realm="http://` + host + `/token",service="` + host + `"`
		if r.Status != 401 || r.Header.Get("WWW-Authenticate") != want {
			t.Fatalf("GET /v2/ as %s: %d %q, want %q", host, r.Status, r.Header.Get("WWW-Authenticate"), want)
		}
		ref, err := name.ParseReference(host+"/team/app:1", name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		img, _ := random.Image(64, 1)
		if err := remote.Write(ref, img, remote.WithAuth(&authn.Basic{Username: "admin", Password: apptest.AdminPassword})); err != nil {
			t.Fatalf("push to %s: %v", ref, err)
		}
	}
	r := in.Admin(t, "GET", "/api/v1/repositories/team/app/tags/1", nil)
	if r.JSON["pull_command"] != "docker pull "+in.Host+"/team/app:1" {
		t.Fatalf("pull command: %s", r.Body)
	}
	r = in.Admin(t, "PUT", "/api/v1/repositories/team/app/source", map[string]any{"provider": "github", "url": "https://git.example.com/team/app.git"})
	if hook, _ := r.JSON["webhook_url"].(string); r.Status != 201 || !strings.HasPrefix(hook, in.URL+"/hooks/") {
		t.Fatalf("webhook URL: %d %s", r.Status, r.Body)
	}
	if r := in.Call(t, "", "", "GET", "/api/v1/openapi.json", nil); strings.Contains(string(r.Body), "0.0.0.0") {
		t.Fatalf("the OpenAPI document names the wildcard address")
	}
}

// TestWildcardAddrScans: with a wildcard --addr and no --public-url, the scanner pulls what it scans from the
// listener on loopback (no request Host to follow there) and finds the vulnerability.
func TestWildcardAddrScans(t *testing.T) {
	in := scanInstance(t, scanDB(t), func(c *app.Config) {
		_, port, _ := net.SplitHostPort(c.Addr)
		c.Addr = "0.0.0.0:" + port
	})
	pushImg(t, in, "demo/alpine:1", fileImage(t, "amd64", alpineFiles("1.2.5-r8")))
	scan := waitScan(t, in, "demo/alpine", "1")
	if vulns := vulnsOf(t, scan); scan["status"] != "DONE" || len(vulns) != 1 || vulns[0].id != "CVE-2025-26519" {
		t.Fatalf("scan: %v", scan)
	}
}
