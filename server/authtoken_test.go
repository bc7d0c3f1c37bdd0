package server_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/server/app/apptest"
)

// send makes a request with an explicit Authorization header and returns the status and body.
func send(t *testing.T, method, url, authorization string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	req.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, body
}

func basic(user, pass string) string {
	req, _ := http.NewRequest("GET", "/", nil)
	req.SetBasicAuth(user, pass)
	return req.Header.Get("Authorization")
}

// issueToken asks POST /api/v1/auth/token as user:pass.
func issueToken(t *testing.T, in *apptest.Instance, user, pass string, body any) (tok string, expires time.Time) {
	t.Helper()
	r := in.Call(t, user, pass, "POST", "/api/v1/auth/token", body)
	expect(t, "issue a temporary token", r, 200)
	tok, _ = r.JSON["password"].(string)
	exp, err := time.Parse(time.RFC3339, r.JSON["expires_at"].(string))
	if err != nil || r.JSON["username"] != user || tok == "" {
		t.Fatalf("token answer: %s", r.Body)
	}
	return tok, exp
}

// TestTemporaryToken: POST /api/v1/auth/token needs cr:GetAuthorizationToken, gives a password valid 1 hour
// by default (at most 12), carrying exactly the user's permissions, usable with skopeo and as a Bearer token
// on the REST API; disabling the user stops it at once everywhere (REST, registry logins, registry tokens
// already handed out), for good; deleting the user too.
func TestTemporaryToken(t *testing.T) {
	in := apptest.Start(t, apptest.Options{Region: "cn-hangzhou", NamespaceLimit: -1})
	sk := newSkopeo(t, in)
	seed(t, in, sk, "juzhong/nginx", "other/app")
	pass := newUser(t, in, "ci", []string{`{"Version":"1","Statement":[
		{"Effect":"Allow","Action":["cr:Get*","cr:List*","cr:PullRepository"],"Resource":"acs:cr:*:*:repository/juzhong/*"},
		{"Effect":"Allow","Action":"cr:GetAuthorizationToken","Resource":"*"}]}`})
	// (AliyunContainerRegistryReadOnlyAccess would allow it: cr:Get* covers cr:GetAuthorizationToken.)
	nope := newUser(t, in, "no-token", []string{`{"Version":"1","Statement":[{"Effect":"Allow","Action":"cr:PullRepository","Resource":"*"}]}`})
	expect(t, "token without cr:GetAuthorizationToken", in.Call(t, "no-token", nope, "POST", "/api/v1/auth/token", nil), 403, "FORBIDDEN")

	tok, exp := issueToken(t, in, "ci", pass, nil)
	if d := time.Until(exp); d < 59*time.Minute || d > 61*time.Minute {
		t.Fatalf("default lifetime: expires in %v, want 1h", d)
	}
	if _, exp := issueToken(t, in, "ci", pass, map[string]any{"ttl_seconds": 60}); time.Until(exp) > 61*time.Second {
		t.Fatalf("ttl_seconds 60: expires %v", exp)
	}
	if _, exp := issueToken(t, in, "ci", pass, map[string]any{"ttl_seconds": 12 * 3600}); time.Until(exp) < 11*time.Hour {
		t.Fatalf("ttl_seconds 12h: expires %v", exp)
	}
	for _, bad := range []any{map[string]any{"ttl_seconds": 12*3600 + 1}, map[string]any{"ttl_seconds": 0}, map[string]any{"ttl": 5}} {
		if r := in.Call(t, "ci", pass, "POST", "/api/v1/auth/token", bad); r.Status != 400 {
			t.Fatalf("%v: %d %s", bad, r.Status, r.Body)
		}
	}

	// Bearer and Basic on REST, with the user's own permissions and nothing more.
	bearer := "Bearer " + tok
	if s, b := send(t, "GET", in.URL+"/api/v1/repositories/juzhong/nginx", bearer); s != 200 {
		t.Fatalf("bearer: %d %s", s, b)
	}
	if s, _ := send(t, "GET", in.URL+"/api/v1/repositories/other/app", bearer); s != 403 {
		t.Fatalf("bearer on another namespace: %d", s)
	}
	expect(t, "basic with the token", in.Call(t, "ci", tok, "GET", "/api/v1/repositories/juzhong/nginx/tags", nil), 200)
	expect(t, "the token under another name", in.Call(t, "no-token", tok, "GET", "/api/v1/namespaces", nil), 401)
	if s, _ := send(t, "GET", in.URL+"/api/v1/repositories/juzhong/nginx", bearer+"x"); s != 401 {
		t.Fatalf("forged bearer: %d", s)
	}
	if s, b := send(t, "POST", in.URL+"/api/v1/auth/token", bearer); s != 403 || !strings.Contains(string(b), "FORBIDDEN") {
		t.Fatalf("a token issuing a token: %d %s", s, b)
	}

	// skopeo with the temporary password: pulls what the user may pull, and nothing else.
	sk.mustPull(creds("ci", tok), "juzhong/nginx:v1")
	out, err := sk.push(creds("ci", tok), "juzhong/nginx:v2")
	denied(t, "push with a read-only token", out, err)

	// A registry token and a Basic login on /v2, both taken before the user is disabled.
	s, b := send(t, "GET", in.URL+"/token?service="+in.Host+"&scope=repository:juzhong/nginx:pull", basic("ci", tok))
	var tr struct {
		Token string `json:"token"`
	}
	if s != 200 || json.Unmarshal(b, &tr) != nil || tr.Token == "" {
		t.Fatalf("registry token: %d %s", s, b)
	}
	manifest := in.URL + "/v2/juzhong/nginx/manifests/v1"
	if s, b := send(t, "GET", manifest, "Bearer "+tr.Token); s != 200 {
		t.Fatalf("registry bearer: %d %s", s, b)
	}
	if s, b := send(t, "GET", manifest, basic("ci", tok)); s != 200 {
		t.Fatalf("registry basic: %d %s", s, b)
	}

	expect(t, "disable ci", in.Admin(t, "PATCH", "/api/v1/users/ci", map[string]any{"enabled": false}), 200)
	disabledAt := time.Now()
	if s, _ := send(t, "GET", in.URL+"/api/v1/repositories/juzhong/nginx", bearer); s != 401 {
		t.Fatalf("REST bearer after disable: %d", s)
	}
	expect(t, "REST basic after disable", in.Call(t, "ci", tok, "GET", "/api/v1/repositories/juzhong/nginx", nil), 401)
	if s, _ := send(t, "GET", manifest, "Bearer "+tr.Token); s != 401 {
		t.Fatalf("registry token handed out before the disable: %d", s)
	}
	if s, _ := send(t, "GET", manifest, basic("ci", tok)); s != 401 {
		t.Fatalf("cached registry basic login after the disable: %d", s)
	}
	out, err = sk.pull(creds("ci", tok), "juzhong/nginx:v1")
	denied(t, "skopeo pull after the disable", out, err)

	// Enabled again, the old tokens stay revoked; a new one works. (Tokens issued within the second of the
	// disable are revoked too: registry token times have one-second precision. Wait for the next second.)
	time.Sleep(time.Until(disabledAt.Truncate(time.Second).Add(time.Second)))
	expect(t, "enable ci", in.Admin(t, "PATCH", "/api/v1/users/ci", map[string]any{"enabled": true}), 200)
	if s, _ := send(t, "GET", in.URL+"/api/v1/repositories/juzhong/nginx", bearer); s != 401 {
		t.Fatalf("old token after re-enable: %d", s)
	}
	if s, _ := send(t, "GET", manifest, "Bearer "+tr.Token); s != 401 {
		t.Fatalf("old registry token after re-enable: %d", s)
	}
	tok2, _ := issueToken(t, in, "ci", pass, nil)
	if s, _ := send(t, "GET", in.URL+"/api/v1/repositories/juzhong/nginx", "Bearer "+tok2); s != 200 {
		t.Fatalf("new token: %d", s)
	}
	sk.mustPull(creds("ci", tok2), "juzhong/nginx:v1")

	// Deleted, or deleted and re-created under the same name: the token is dead.
	expect(t, "delete ci", in.Admin(t, "DELETE", "/api/v1/users/ci", nil), 204)
	if s, _ := send(t, "GET", in.URL+"/api/v1/repositories/juzhong/nginx", "Bearer "+tok2); s != 401 {
		t.Fatalf("token of a deleted user: %d", s)
	}
	newUser(t, in, "ci", nil, "AliyunContainerRegistryFullAccess")
	if s, _ := send(t, "GET", in.URL+"/api/v1/repositories/juzhong/nginx", "Bearer "+tok2); s != 401 {
		t.Fatalf("token of a re-created user: %d", s)
	}
	if s, _ := send(t, "GET", in.URL+"/token?scope=repository:juzhong/nginx:pull", basic("ci", tok2)); s != 401 {
		t.Fatalf("registry login with the token of a re-created user: %d", s)
	}
}
