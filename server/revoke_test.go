package server_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/berth-dev/berth/policies/access"
	"github.com/berth-dev/berth/server/app/apptest"
)

// registryToken trades a login for a registry token at /token, as docker login does.
func registryToken(t *testing.T, in *apptest.Instance, user, pass string) string {
	t.Helper()
	s, b := send(t, "GET", in.URL+"/token?service="+in.Host+"&scope=repository:team/app:pull", basic(user, pass))
	var tr struct {
		Token string `json:"token"`
	}
	if s != 200 || json.Unmarshal(b, &tr) != nil || tr.Token == "" {
		t.Fatalf("registry token for %s: %d %s", user, s, b)
	}
	return tr.Token
}

// TestCredentialRevocation: a temporary token and registry tokens live only as long as the credential they
// were made from. Changing the password, or disabling or deleting the access key, refuses them on the very
// next request (API 401, registry 401), while tokens made from the user's other credentials go on working.
func TestCredentialRevocation(t *testing.T) {
	in := apptest.Start(t, apptest.Options{})
	in.Admin(t, "POST", "/api/v1/namespaces", map[string]any{"name": "team"})
	in.Admin(t, "POST", "/api/v1/namespaces/team/repositories", map[string]any{"name": "app"})
	pass := newUser(t, in, "ci", nil, "AliyunContainerRegistryFullAccess")
	tags := in.URL + "/v2/team/app/tags/list"
	api := in.URL + "/api/v1/repositories/team/app"
	alive := func(what, authorization, url string, want bool) {
		t.Helper()
		s, b := send(t, "GET", url, authorization)
		if (s != 401) != want {
			t.Fatalf("%s: %d %s (want alive=%v)", what, s, b, want)
		}
	}

	// Tokens from the password.
	tmp, _ := issueToken(t, in, "ci", pass, nil)
	fromPassword := registryToken(t, in, "ci", pass)
	fromTemp := registryToken(t, in, "ci", tmp)
	// Tokens from an access key.
	k := in.Admin(t, "POST", "/api/v1/users/ci/access-keys", nil)
	keyID, keySecret := k.JSON["id"].(string), k.JSON["secret"].(string)
	keyTmp, _ := issueToken2(t, in, keyID, keySecret)
	fromKey := registryToken(t, in, keyID, keySecret)
	fromKeyTemp := registryToken(t, in, "ci", keyTmp)
	for what, tok := range map[string]string{"temporary": tmp, "key temporary": keyTmp} {
		alive(what+" token on the API", "Bearer "+tok, api, true)
		alive(what+" token as a registry login", basic("ci", tok), tags, true)
	}
	for what, tok := range map[string]string{"password": fromPassword, "temporary": fromTemp, "key": fromKey, "key temporary": fromKeyTemp} {
		alive("registry token from the "+what, "Bearer "+tok, tags, true)
	}

	// Disabling the key ends everything made from it, at once; the password's tokens live on.
	expect(t, "disable the key", in.Admin(t, "PATCH", "/api/v1/users/ci/access-keys/"+keyID, map[string]any{"enabled": false}), 200)
	alive("key temporary token on the API after the key was disabled", "Bearer "+keyTmp, api, false)
	alive("key temporary token as a registry login after the key was disabled", basic("ci", keyTmp), tags, false)
	alive("registry token from the key after it was disabled", "Bearer "+fromKey, tags, false)
	alive("registry token from the key's temporary token after the key was disabled", "Bearer "+fromKeyTemp, tags, false)
	alive("temporary token from the password after the key was disabled", "Bearer "+tmp, api, true)
	alive("registry token from the password after the key was disabled", "Bearer "+fromPassword, tags, true)
	// Enabled again, the key's new tokens work; deleting it ends them.
	expect(t, "enable the key", in.Admin(t, "PATCH", "/api/v1/users/ci/access-keys/"+keyID, map[string]any{"enabled": true}), 200)
	keyTmp2, _ := issueToken2(t, in, keyID, keySecret)
	fromKey2 := registryToken(t, in, keyID, keySecret)
	alive("new key temporary token", "Bearer "+keyTmp2, api, true)
	expect(t, "delete the key", in.Admin(t, "DELETE", "/api/v1/users/ci/access-keys/"+keyID, nil), 204)
	alive("key temporary token after the key was deleted", "Bearer "+keyTmp2, api, false)
	alive("registry token from the key after it was deleted", "Bearer "+fromKey2, tags, false)

	// Changing the password ends the password's tokens at once.
	expect(t, "change the password", in.Admin(t, "PATCH", "/api/v1/users/ci", map[string]any{"password": "ci-new-password"}), 200)
	alive("temporary token after the password change, API", "Bearer "+tmp, api, false)
	alive("temporary token after the password change, registry login", basic("ci", tmp), tags, false)
	alive("registry token from the old password", "Bearer "+fromPassword, tags, false)
	alive("registry token from the old password's temporary token", "Bearer "+fromTemp, tags, false)
	alive("the old password", basic("ci", pass), api, false)
	newTmp, _ := issueToken(t, in, "ci", "ci-new-password", nil)
	alive("a token from the new password", "Bearer "+newTmp, api, true)
	alive("a registry token from the new password", "Bearer "+registryToken(t, in, "ci", "ci-new-password"), tags, true)
}

// issueToken2 is issueToken for an access key login (the answer names the key's user).
func issueToken2(t *testing.T, in *apptest.Instance, id, secret string) (string, any) {
	t.Helper()
	r := in.Call(t, id, secret, "POST", "/api/v1/auth/token", nil)
	expect(t, "issue a temporary token with an access key", r, 200)
	return r.JSON["password"].(string), r.JSON["expires_at"]
}

// TestCredentialRevocationOtherReplica: a second replica on the same store refuses a temporary token within
// the stated bound (access.CacheTTL, 2 s) of a password change made on the first.
func TestCredentialRevocationOtherReplica(t *testing.T) {
	one, two := twoReplicas(t)
	pass := newUser(t, one, "ci", nil, "AliyunContainerRegistryFullAccess")
	tmp, _ := issueToken(t, one, "ci", pass, nil)
	if s, b := send(t, "GET", two.URL+"/api/v1/namespaces", "Bearer "+tmp); s != 200 {
		t.Fatalf("the token on the second replica: %d %s", s, b)
	}
	expect(t, "change the password on the first replica", one.Admin(t, "PATCH", "/api/v1/users/ci", map[string]any{"password": "ci-new-password"}), 200)
	changed := time.Now()
	if s, _ := send(t, "GET", one.URL+"/api/v1/namespaces", "Bearer "+tmp); s != 401 {
		t.Fatalf("the token on the replica that made the change: %d", s)
	}
	for {
		s, _ := send(t, "GET", two.URL+"/api/v1/namespaces", "Bearer "+tmp)
		if s == 401 {
			break
		}
		if time.Since(changed) > access.CacheTTL+time.Second {
			t.Fatalf("the second replica still accepts the token %v after the password change (bound %v)", time.Since(changed), access.CacheTTL)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("refused on the second replica %v after the change", time.Since(changed).Round(time.Millisecond))
}
