package registry_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/berth-dev/berth/registry"
)

func TestAuthChallenges(t *testing.T) {
	s := startServer(t, defaultAuthz(), nil)
	// base check: challenge without scope
	resp, b := s.do("GET", "/v2/", nil)
	expect(t, resp, b, 401, "UNAUTHORIZED")
	want := `Bearer realm="` + s.url + `/token",service="` + s.host + `"`
	if got := resp.Header.Get("WWW-Authenticate"); got != want {
		t.Fatalf("base challenge %q, want %q", got, want)
	}
	if resp.Header.Get("Docker-Distribution-API-Version") != "registry/2.0" {
		t.Fatal("missing Docker-Distribution-API-Version")
	}
	// scope reflects the request
	for _, c := range []struct{ method, path, scope string }{
		{"GET", "/v2/ns/app/manifests/latest", "repository:ns/app:pull"},
		{"HEAD", "/v2/ns/app/blobs/" + sha256Digest([]byte("x")), "repository:ns/app:pull"},
		{"PUT", "/v2/ns/app/manifests/latest", "repository:ns/app:pull,push"},
		{"POST", "/v2/ns/app/blobs/uploads/", "repository:ns/app:pull,push"},
		{"DELETE", "/v2/ns/app/manifests/latest", "repository:ns/app:delete"},
		{"GET", "/v2/ns/app/tags/list", "repository:ns/app:pull"},
		{"GET", "/v2/_catalog", "registry:catalog:*"},
		{"POST", "/v2/ns/app/blobs/uploads/?mount=" + sha256Digest([]byte("x")) + "&from=other/src", "repository:ns/app:pull,push repository:other/src:pull"},
	} {
		resp, b := s.do(c.method, c.path, nil)
		expect(t, resp, nil, 401, "")
		if c.method != "HEAD" && errCode(b) != "UNAUTHORIZED" {
			t.Fatalf("%s %s: %s", c.method, c.path, b)
		}
		if got := resp.Header.Get("WWW-Authenticate"); got != want+`,scope="`+c.scope+`"` {
			t.Errorf("%s %s: challenge %q", c.method, c.path, got)
		}
	}
	// a valid token with no access passes the base check only
	tok := s.token("", "")
	resp, b = s.do("GET", "/v2/", nil, withBearer(tok))
	expect(t, resp, b, 200, "")
	resp, b = s.do("GET", "/v2/ns/app/tags/list", nil, withBearer(tok))
	expect(t, resp, b, 401, "UNAUTHORIZED")
	if !strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="insufficient_scope"`) {
		t.Fatalf("challenge %q", resp.Header.Get("WWW-Authenticate"))
	}
}

func TestAuthTokens(t *testing.T) {
	s := startServer(t, defaultAuthz(), nil)
	atok := s.token("alice", "alice-pw", "repository:ns/app:pull,push")
	s.pushImage(atok, "ns/app", "v1", "a")
	s.pushImage(s.token("alice", "alice-pw", "repository:public/app:pull,push"), "public/app", "v1", "p")

	t.Run("bad credentials on /token", func(t *testing.T) {
		resp, b := s.do("GET", "/token?scope=repository:ns/app:pull", nil, withBasic("alice", "wrong"))
		expect(t, resp, b, 401, "UNAUTHORIZED")
		resp, b = s.do("GET", "/token", nil, withBasic("nobody", "x"))
		expect(t, resp, b, 401, "UNAUTHORIZED")
	})

	t.Run("token claims", func(t *testing.T) {
		tok := s.token("alice", "alice-pw", "repository:ns/app:pull", "repository:ns/app:push repository:secret/x:pull")
		var claims jwt.MapClaims
		p, _, err := jwt.NewParser().ParseUnverified(tok, &claims)
		if err != nil {
			t.Fatal(err)
		}
		if p.Header["alg"] != "ES256" || p.Header["kid"] == "" {
			t.Fatalf("header %v", p.Header)
		}
		for _, k := range []string{"iss", "sub", "aud", "exp", "nbf", "iat", "jti", "access"} {
			if _, ok := claims[k]; !ok {
				t.Errorf("claim %s missing", k)
			}
		}
		if claims["sub"] != "alice" {
			t.Errorf("sub %v", claims["sub"])
		}
		acc, _ := json.Marshal(claims["access"])
		if string(acc) != `[{"actions":["pull","push"],"name":"ns/app","type":"repository"}]` {
			t.Errorf("access %s", acc)
		}
		exp, _ := claims.GetExpirationTime()
		if d := time.Until(exp.Time); d < 4*time.Minute || d > 6*time.Minute {
			t.Errorf("ttl %v", d)
		}
	})

	t.Run("token response shape", func(t *testing.T) {
		resp, b := s.do("GET", "/token?service="+s.host+"&scope=repository:ns/app:pull", nil, withBasic("alice", "alice-pw"))
		expect(t, resp, b, 200, "")
		var m map[string]any
		json.Unmarshal(b, &m)
		for _, k := range []string{"token", "access_token", "expires_in", "issued_at"} {
			if _, ok := m[k]; !ok {
				t.Errorf("%s missing from %s", k, b)
			}
		}
	})

	t.Run("oauth2 POST password grant", func(t *testing.T) {
		form := url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {"alice-pw"}, "service": {s.host}, "scope": {"repository:ns/app:pull"}, "client_id": {"test"}}
		resp, b := s.do("POST", "/token", []byte(form.Encode()), withHeader("Content-Type", "application/x-www-form-urlencoded"))
		expect(t, resp, b, 200, "")
		var m struct {
			AccessToken string `json:"access_token"`
		}
		json.Unmarshal(b, &m)
		resp, b = s.do("GET", "/v2/ns/app/manifests/v1", nil, withBearer(m.AccessToken))
		expect(t, resp, b, 200, "")
		form.Set("password", "bad")
		resp, b = s.do("POST", "/token", []byte(form.Encode()), withHeader("Content-Type", "application/x-www-form-urlencoded"))
		expect(t, resp, b, 401, "UNAUTHORIZED")
		form.Set("grant_type", "refresh_token")
		resp, _ = s.do("POST", "/token", []byte(form.Encode()), withHeader("Content-Type", "application/x-www-form-urlencoded"))
		if resp.StatusCode != 400 {
			t.Fatalf("refresh_token grant: %d", resp.StatusCode)
		}
	})

	t.Run("anonymous pull of a denied repository is 401", func(t *testing.T) {
		resp, b := s.do("GET", "/v2/ns/app/manifests/v1", nil)
		expect(t, resp, b, 401, "UNAUTHORIZED")
		anon := s.token("", "", "repository:ns/app:pull")
		resp, b = s.do("GET", "/v2/ns/app/manifests/v1", nil, withBearer(anon))
		expect(t, resp, b, 401, "UNAUTHORIZED")
		resp, b = s.do("GET", "/v2/ns/app/blobs/"+sha256Digest([]byte("x")), nil, withBearer(anon))
		expect(t, resp, b, 401, "UNAUTHORIZED")
	})

	t.Run("anonymous pull of a public repository", func(t *testing.T) {
		anon := s.token("", "", "repository:public/app:pull")
		resp, b := s.do("GET", "/v2/public/app/manifests/v1", nil, withBearer(anon))
		expect(t, resp, b, 200, "")
		resp, b = s.do("PUT", "/v2/public/app/manifests/v2", b, withBearer(anon))
		expect(t, resp, b, 401, "UNAUTHORIZED")
	})

	t.Run("authenticated but refused is 403 DENIED", func(t *testing.T) {
		btok := s.token("bob", "bob-pw", "repository:ns/app:pull,push")
		resp, b := s.do("GET", "/v2/ns/app/manifests/v1", nil, withBearer(btok))
		expect(t, resp, b, 200, "")
		resp, b = s.do("POST", "/v2/ns/app/blobs/uploads/", nil, withBearer(btok))
		expect(t, resp, b, 403, "DENIED")
		// a token for another repository gets a challenge, not a denial
		resp, b = s.do("GET", "/v2/bobs/x/tags/list", nil, withBearer(btok))
		expect(t, resp, b, 401, "UNAUTHORIZED")
	})

	t.Run("tampered, foreign and expired tokens", func(t *testing.T) {
		parts := strings.Split(atok, ".")
		payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
		forged := strings.Replace(string(payload), `"ns/app"`, `"ns/other"`, 1)
		bad := parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(forged)) + "." + parts[2]
		resp, b := s.do("GET", "/v2/ns/other/tags/list", nil, withBearer(bad))
		expect(t, resp, b, 401, "UNAUTHORIZED")
		if !strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="invalid_token"`) {
			t.Fatalf("challenge %q", resp.Header.Get("WWW-Authenticate"))
		}
		other := startServer(t, defaultAuthz(), nil) // a different signing key
		resp, b = s.do("GET", "/v2/ns/app/tags/list", nil, withBearer(other.token("alice", "alice-pw", "repository:ns/app:pull")))
		expect(t, resp, b, 401, "UNAUTHORIZED")
		short, err := s.reg.IssueToken(registry.Subject{Name: "alice"}, []registry.Access{{Type: "repository", Name: "ns/app", Actions: []string{"pull"}}}, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		resp, b = s.do("GET", "/v2/ns/app/tags/list", nil, withBearer(short))
		expect(t, resp, b, 200, "")
		time.Sleep(7 * time.Second) // past exp plus leeway; the cache must not keep it alive
		resp, b = s.do("GET", "/v2/ns/app/tags/list", nil, withBearer(short))
		expect(t, resp, b, 401, "UNAUTHORIZED")
	})

	t.Run("basic auth directly on /v2", func(t *testing.T) {
		resp, b := s.do("GET", "/v2/ns/app/manifests/v1", nil, withBasic("alice", "alice-pw"))
		expect(t, resp, b, 200, "")
		resp, b = s.do("GET", "/v2/ns/app/manifests/v1", nil, withBasic("alice", "nope"))
		expect(t, resp, b, 401, "UNAUTHORIZED")
		resp, b = s.do("GET", "/v2/", nil, withBasic("bob", "bob-pw"))
		expect(t, resp, b, 200, "")
		resp, b = s.do("DELETE", "/v2/ns/app/manifests/v1", nil, withBasic("bob", "bob-pw"))
		expect(t, resp, b, 403, "DENIED")
	})

	t.Run("internal tokens", func(t *testing.T) {
		tok, err := s.reg.IssueToken(registry.Subject{Name: "buildkit", Internal: true}, []registry.Access{{Type: "repository", Name: "ns/built", Actions: []string{"pull", "push"}}}, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		s.pushImage(tok, "ns/built", "latest", "b")
		resp, b := s.do("GET", "/v2/ns/app/tags/list", nil, withBearer(tok))
		expect(t, resp, b, 401, "UNAUTHORIZED")
	})
}

func TestCrossRepoMount(t *testing.T) {
	s := startServer(t, defaultAuthz(), nil)
	atok := s.token("alice", "alice-pw", "repository:ns/src:pull,push")
	blob := []byte("shared layer")
	dg := s.pushBlob(atok, "ns/src", blob)

	// alice may pull ns/src: mounted
	mtok := s.token("alice", "alice-pw", "repository:ns/dst:pull,push", "repository:ns/src:pull")
	resp, b := s.do("POST", "/v2/ns/dst/blobs/uploads/?mount="+dg+"&from=ns/src", nil, withBearer(mtok))
	expect(t, resp, b, 201, "")
	if resp.Header.Get("Location") != "/v2/ns/dst/blobs/"+dg || resp.Header.Get("Docker-Content-Digest") != dg {
		t.Fatalf("headers %v", resp.Header)
	}
	resp, b = s.do("GET", "/v2/ns/dst/blobs/"+dg, nil, withBearer(mtok))
	expect(t, resp, b, 200, "")

	// a token that never asked for the source is challenged for it
	ptok := s.token("alice", "alice-pw", "repository:ns/dst2:pull,push")
	resp, _ = s.do("POST", "/v2/ns/dst2/blobs/uploads/?mount="+dg+"&from=ns/src", nil, withBearer(ptok))
	if resp.StatusCode != 401 || !strings.Contains(resp.Header.Get("WWW-Authenticate"), "repository:ns/src:pull") {
		t.Fatalf("mount without source scope: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}

	// bob may not pull ns/src: the mount falls back to an upload session
	btok := s.token("bob", "bob-pw", "repository:bobs/dst:pull,push", "repository:ns/src:pull")
	_ = btok
	ctok := s.token("bob", "bob-pw", "repository:bobs/dst:pull,push", "repository:other/src:pull")
	resp, b = s.do("POST", "/v2/bobs/dst/blobs/uploads/?mount="+dg+"&from=other/src", nil, withBearer(ctok))
	expect(t, resp, b, 202, "")
	resp, b = s.do("HEAD", "/v2/bobs/dst/blobs/"+dg, nil, withBearer(ctok))
	expect(t, resp, b, 404, "")
	// bob may pull ns/src (read-only): that mount works
	resp, b = s.do("POST", "/v2/bobs/dst/blobs/uploads/?mount="+dg+"&from=ns/src", nil, withBearer(btok))
	expect(t, resp, b, 201, "")

	// missing blob in the source: fallback
	resp, b = s.do("POST", "/v2/ns/dst/blobs/uploads/?mount="+sha256Digest([]byte("nope"))+"&from=ns/src", nil, withBearer(mtok))
	expect(t, resp, b, 202, "")
	// no from: the repositories holding the blob are tried, each only if the
	// subject may pull it
	resp, b = s.do("POST", "/v2/ns/dst/blobs/uploads/?mount="+dg, nil, withBearer(mtok))
	expect(t, resp, b, 201, "")
	otok := s.token("alice", "alice-pw", "repository:ns/fresh:pull,push")
	resp, b = s.do("POST", "/v2/ns/fresh/blobs/uploads/?mount="+dg, nil, withBearer(otok))
	expect(t, resp, b, 201, "")
	secret := s.pushBlob(s.token("alice", "alice-pw", "repository:other/secret:pull,push"), "other/secret", []byte("secret layer"))
	ytok := s.token("bob", "bob-pw", "repository:bobs/y:pull,push")
	resp, b = s.do("POST", "/v2/bobs/y/blobs/uploads/?mount="+secret, nil, withBearer(ytok))
	expect(t, resp, b, 202, "")
	resp, b = s.do("HEAD", "/v2/bobs/y/blobs/"+secret, nil, withBearer(ytok))
	expect(t, resp, b, 404, "")
	// once unlinked from its only repository, nobody can mount it by digest
	resp, b = s.do("DELETE", "/v2/other/secret/blobs/"+secret, nil, withBearer(s.token("alice", "alice-pw", "repository:other/secret:delete")))
	expect(t, resp, b, 202, "")
	ftok := s.token("alice", "alice-pw", "repository:ns/fresh2:pull,push")
	resp, b = s.do("POST", "/v2/ns/fresh2/blobs/uploads/?mount="+secret, nil, withBearer(ftok))
	expect(t, resp, b, 202, "")
	// basic auth mount checks the source too
	resp, b = s.do("POST", "/v2/bobs/viabasic/blobs/uploads/?mount="+dg+"&from=ns/src", nil, withBasic("bob", "bob-pw"))
	expect(t, resp, b, 201, "")
}

// revokingAuthz wraps an Authorizer with a SubjectChecker that can revoke a
// user, and records the client address Authenticate saw.
type revokingAuthz struct {
	registry.Authorizer
	mu       sync.Mutex
	revoked  map[string]bool
	lastAddr string
}

func (a *revokingAuthz) Authenticate(ctx context.Context, user, pass string) (registry.Subject, error) {
	a.mu.Lock()
	a.lastAddr = registry.ClientAddr(ctx)
	a.mu.Unlock()
	return a.Authorizer.Authenticate(ctx, user, pass)
}

func (a *revokingAuthz) SubjectActive(ctx context.Context, subj registry.Subject, issued time.Time) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return !a.revoked[subj.Name]
}

func TestSubjectRevocation(t *testing.T) {
	authz := &revokingAuthz{Authorizer: defaultAuthz(), revoked: map[string]bool{}}
	s := startServer(t, authz, nil)
	tok := s.token("alice", "alice-pw", "repository:ns/app:pull,push")
	if !strings.HasPrefix(authz.lastAddr, "127.0.0.1:") {
		t.Fatalf("ClientAddr in Authenticate = %q", authz.lastAddr)
	}
	s.pushImage(tok, "ns/app", "v1", "r")
	authz.mu.Lock()
	authz.revoked["alice"] = true
	authz.mu.Unlock()
	resp, b := s.do("GET", "/v2/ns/app/manifests/v1", nil, withBearer(tok))
	expect(t, resp, b, 401, "UNAUTHORIZED")
	resp, b = s.do("GET", "/v2/ns/app/manifests/v1", nil, withBasic("alice", "alice-pw"))
	expect(t, resp, b, 401, "UNAUTHORIZED")
	// anonymous subjects are not asked
	resp, b = s.do("GET", "/v2/", nil, withBearer(s.token("", "")))
	expect(t, resp, b, 200, "")
}
