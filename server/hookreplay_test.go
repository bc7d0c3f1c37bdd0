package server_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/berth-dev/berth/server/app/apptest"
)

// postHook sends a captured delivery again: the same body and signature headers, with the delivery id set.
func postHook(t *testing.T, url string, body []byte, h http.Header) map[string]any {
	t.Helper()
	req, err := http.NewRequest("POST", url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header = h.Clone()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var ans map[string]any
	if resp.StatusCode != 202 || json.Unmarshal(data, &ans) != nil {
		t.Fatalf("hook: %d %s", resp.StatusCode, data)
	}
	return ans
}

// TestWebhookReplay: a captured signed delivery sent again under a new delivery id (which no signature
// covers) starts no second build; a different push still does. GitLab's token signs nothing, and its
// deliveries are deduplicated on the body all the same.
func TestWebhookReplay(t *testing.T) {
	in := apptest.Start(t, apptest.Options{})
	in.Admin(t, "POST", "/api/v1/namespaces", map[string]any{"name": "team"})
	for _, name := range []string{"app", "lab"} {
		in.Admin(t, "POST", "/api/v1/namespaces/team/repositories", map[string]any{"name": name})
		in.Admin(t, "POST", "/api/v1/repositories/team/"+name+"/build-rules", map[string]any{"source_type": "BRANCH", "source_ref": "main"})
	}
	builds := func(repo string) float64 {
		return in.Admin(t, "GET", "/api/v1/repositories/team/"+repo+"/builds?page_size=1", nil).JSON["total"].(float64)
	}

	r := in.Admin(t, "PUT", "/api/v1/repositories/team/app/source", map[string]any{"provider": "github", "url": "https://git.example.com/team/app.git"})
	hookURL, secret := r.JSON["webhook_url"].(string), r.JSON["webhook_secret"].(string)
	signed := func(after string) ([]byte, http.Header) {
		body, _ := json.Marshal(githubPush("refs/heads/main", strings.Repeat("0", 40), after))
		mac := hmac.New(sha256.New, []byte(secret))
		mac.Write(body)
		h := http.Header{}
		h.Set("Content-Type", "application/json")
		h.Set("X-GitHub-Event", "push")
		h.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(mac.Sum(nil)))
		return body, h
	}
	old, h := signed(strings.Repeat("a", 40))
	h.Set("X-GitHub-Delivery", "original")
	if ans := postHook(t, hookURL, old, h); len(hookBuilds(t, ans)) != 1 {
		t.Fatalf("first delivery: %v", ans)
	}
	for _, id := range []string{"replayed-1", "replayed-2", ""} {
		h.Set("X-GitHub-Delivery", id)
		if ans := postHook(t, hookURL, old, h); len(hookBuilds(t, ans)) != 0 || ans["duplicate"] != true {
			t.Fatalf("replay under delivery id %q: %v", id, ans)
		}
	}
	newer, h2 := signed(strings.Repeat("b", 40))
	h2.Set("X-GitHub-Delivery", "next-push")
	if ans := postHook(t, hookURL, newer, h2); len(hookBuilds(t, ans)) != 1 {
		t.Fatalf("a new push: %v", ans)
	}
	if n := builds("app"); n != 2 {
		t.Fatalf("%v builds, want 2", n)
	}

	r = in.Admin(t, "PUT", "/api/v1/repositories/team/lab/source", map[string]any{"provider": "gitlab", "url": "https://gitlab.example.com/team/lab.git"})
	labURL, labSecret := r.JSON["webhook_url"].(string), r.JSON["webhook_secret"].(string)
	body, err := os.ReadFile("../webhooks/inbound/gitlab/fixtures/push.json")
	if err != nil {
		t.Fatal(err)
	}
	gh := http.Header{}
	gh.Set("Content-Type", "application/json")
	gh.Set("X-Gitlab-Event", "Push Hook")
	gh.Set("X-Gitlab-Token", labSecret)
	for i, uuid := range []string{"uuid-1", "uuid-2"} {
		gh.Set("X-Gitlab-Event-UUID", uuid)
		if ans := postHook(t, labURL, body, gh); len(hookBuilds(t, ans)) != 1-i {
			t.Fatalf("gitlab delivery %s: %v", uuid, ans)
		}
	}
	if n := builds("lab"); n != 1 {
		t.Fatalf("gitlab: %v builds, want 1", n)
	}
}

// TestConcurrentRedeliveries: copies of one delivery arriving together (a Git host's redeliveries) start
// exactly one build between them, push after push. Each copy used to record the body's key and the id's key
// apart, so two copies could each find one taken and neither built.
func TestConcurrentRedeliveries(t *testing.T) {
	in := apptest.Start(t, apptest.Options{})
	in.Admin(t, "POST", "/api/v1/namespaces", map[string]any{"name": "team"})
	in.Admin(t, "POST", "/api/v1/namespaces/team/repositories", map[string]any{"name": "app"})
	in.Admin(t, "POST", "/api/v1/repositories/team/app/build-rules", map[string]any{"source_type": "BRANCH", "source_ref": "main"})
	r := in.Admin(t, "PUT", "/api/v1/repositories/team/app/source", map[string]any{"provider": "github", "url": "https://git.example.com/team/app.git"})
	hookURL, secret := r.JSON["webhook_url"].(string), r.JSON["webhook_secret"].(string)
	const pushes, copies = 10, 8
	for p := range pushes {
		var wg sync.WaitGroup
		var started atomic.Int64
		for range copies {
			wg.Go(func() {
				st, ans, err := deliverHook(hookURL, secret, "push", fmt.Sprintf("delivery-%d", p),
					githubPush("refs/heads/main", strings.Repeat("0", 40), fmt.Sprintf("%040x", p+1)))
				if err != nil || st != 202 {
					t.Errorf("push %d: %d %v", p, st, err)
					return
				}
				raw, _ := ans["builds"].([]any)
				started.Add(int64(len(raw)))
			})
		}
		wg.Wait()
		if n := started.Load(); n != 1 {
			t.Fatalf("push %d: %d copies delivered at once started %d builds, want 1", p, copies, n)
		}
	}
}
