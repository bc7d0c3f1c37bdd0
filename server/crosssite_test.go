package server_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/berth-dev/berth/server/app/apptest"
)

// adminWith makes one request as the administrator with exactly these headers (no Content-Type unless given).
func adminWith(t *testing.T, in *apptest.Instance, method, path, body string, hdr map[string]string) *apptest.Response {
	t.Helper()
	req, err := http.NewRequest(method, in.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth("admin", apptest.AdminPassword)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	return apptest.Do(t, req)
}

// TestCrossSiteAPIRequests: a page on another site cannot use the API with the credentials the browser holds
// (SPEC §13): a body that is not JSON is refused with 415, a cross-site unsafe method with 403, whatever
// credentials they carry, and nothing is created; JSON from this site or from a client that is no browser
// works; webhooks, the registry and /token are not concerned.
func TestCrossSiteAPIRequests(t *testing.T) {
	in := apptest.Start(t, apptest.Options{})
	user := func(name string) string {
		return `{"name":"` + name + `","password":"evil-password-1","policies":["AdministratorAccess"]}`
	}
	refused := []struct {
		name   string
		hdr    map[string]string
		status int
		code   string
	}{
		{"text/plain", map[string]string{"Content-Type": "text/plain"}, 415, "UNSUPPORTED_MEDIA_TYPE"},
		{"form", map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, 415, "UNSUPPORTED_MEDIA_TYPE"},
		{"multipart", map[string]string{"Content-Type": "multipart/form-data; boundary=x"}, 415, "UNSUPPORTED_MEDIA_TYPE"},
		{"no content type", nil, 415, "UNSUPPORTED_MEDIA_TYPE"},
		{"text/plain cross-origin", map[string]string{"Content-Type": "text/plain", "Origin": "http://evil.example"}, 403, "FORBIDDEN"},
		{"json cross-origin", map[string]string{"Content-Type": "application/json", "Origin": "http://evil.example"}, 403, "FORBIDDEN"},
		{"json other port", map[string]string{"Content-Type": "application/json", "Origin": "http://" + strings.Split(in.Host, ":")[0] + ":1"}, 403, "FORBIDDEN"},
		{"json https origin", map[string]string{"Content-Type": "application/json", "Origin": "https://" + in.Host}, 403, "FORBIDDEN"},
		{"json null origin", map[string]string{"Content-Type": "application/json", "Origin": "null"}, 403, "FORBIDDEN"},
		{"json Sec-Fetch-Site cross-site", map[string]string{"Content-Type": "application/json", "Sec-Fetch-Site": "cross-site"}, 403, "FORBIDDEN"},
	}
	for i, c := range refused {
		t.Run(c.name, func(t *testing.T) {
			name := "evil" + string(rune('a'+i))
			r := adminWith(t, in, "POST", "/api/v1/users", user(name), c.hdr)
			if r.Status != c.status || r.Code() != c.code || r.JSON["message"] == "" || r.JSON["request_id"] == "" {
				t.Fatalf("got %d %s", r.Status, r.Body)
			}
			if g := in.Admin(t, "GET", "/api/v1/users/"+name, nil); g.Status != 404 {
				t.Fatalf("the refused request created user %s: %d %s", name, g.Status, g.Body)
			}
		})
	}
	// DELETE without a body, cross-site: refused too.
	if r := adminWith(t, in, "DELETE", "/api/v1/users/admin", "", map[string]string{"Origin": "http://evil.example"}); r.Status != 403 {
		t.Fatalf("cross-site DELETE: %d %s", r.Status, r.Body)
	}

	// This site's own pages, and clients that send no Origin, keep working; so does a body-less POST.
	for i, hdr := range []map[string]string{
		{"Content-Type": "application/json"},
		{"Content-Type": "application/json; charset=utf-8", "Origin": in.URL, "Sec-Fetch-Site": "same-origin"},
	} {
		name := "good" + string(rune('a'+i))
		if r := adminWith(t, in, "POST", "/api/v1/users", user(name), hdr); r.Status != 201 {
			t.Fatalf("JSON POST %v: %d %s", hdr, r.Status, r.Body)
		}
	}
	if r := adminWith(t, in, "GET", "/api/v1/users/gooda", "", map[string]string{"Origin": "http://evil.example"}); r.Status != 200 {
		t.Fatalf("a cross-site GET (CORS keeps its answer from the page): %d", r.Status)
	}
	if r := adminWith(t, in, "POST", "/api/v1/auth/token", "", nil); r.Status != 200 {
		t.Fatalf("POST without a body: %d %s", r.Status, r.Body)
	}

	// Not the API's: a Git host's webhook (no Origin, any encoding) reaches the signature check; the registry's
	// token service takes its OAuth form.
	r := adminWith(t, in, "POST", "/hooks/no-such-hook", "payload=%7B%7D", map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
	if r.Status != 404 {
		t.Fatalf("form-encoded webhook: %d %s", r.Status, r.Body)
	}
	r = adminWith(t, in, "POST", "/token", "grant_type=password&username=admin&password="+apptest.AdminPassword+"&service="+in.Host+"&scope=repository:a/b:pull",
		map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
	if r.Status != 200 || r.JSON["access_token"] == nil {
		t.Fatalf("/token form: %d %s", r.Status, r.Body)
	}
}
