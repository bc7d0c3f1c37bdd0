package server_test

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/hibiken/asynq"

	"github.com/berth-dev/berth/pipeline"
	"github.com/berth-dev/berth/server/app"
	"github.com/berth-dev/berth/server/app/apptest"
)

// twoReplicas starts two instances as replicas behind a load balancer run: one store (the first one's embedded
// SQLite file, or the MongoDB of BERTH_TEST_MONGO_URI), one queue (its Redis), one data dir (blobs and keys on a
// shared filesystem). configure, when
// given, adjusts both (e.g. blobs in one S3 bucket).
func twoReplicas(t *testing.T, configure ...func(*app.Config)) (a, b *apptest.Instance) {
	t.Helper()
	both := func(c *app.Config) {
		for _, f := range configure {
			f(c)
		}
	}
	a = apptest.Start(t, apptest.Options{NamespaceLimit: 10, Configure: both})
	opt, ok := a.App.Redis.(asynq.RedisClientOpt)
	if !ok {
		t.Fatalf("replica a's Redis is %T", a.App.Redis)
	}
	b = apptest.Start(t, apptest.Options{NamespaceLimit: 10, DataDir: a.DataDir, Configure: func(c *app.Config) {
		both(c)
		c.MongoURI, c.MongoDatabase = a.App.MongoURI, a.App.Cfg.MongoDatabase
		u := &url.URL{Scheme: "redis", User: url.UserPassword("", opt.Password), Host: opt.Addr}
		if opt.Network == "unix" { // the embedded redis-server child listens only on a Unix socket
			u = &url.URL{Scheme: "redis-socket", User: url.UserPassword("", opt.Password), Path: opt.Addr}
		}
		c.RedisAddr = u.String()
	}})
	return a, b
}

// within polls cond every 50 ms until it holds, and returns how long that took; it fails after limit.
func within(t *testing.T, limit time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > limit {
			t.Fatalf("%s: not within %s", what, limit)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return time.Since(start)
}

// TestReplicaRulesStaleness: a replica answers webhooks from build rules it remembers for 2 s
// (pipeline.RulesTTL): a rule deleted through another replica stops matching there within 2 s, and at once
// on the replica that deleted it.
func TestReplicaRulesStaleness(t *testing.T) {
	a, b := twoReplicas(t)
	if pipeline.RulesTTL != 2*time.Second {
		t.Fatalf("RulesTTL is %s; the README says 2 s", pipeline.RulesTTL)
	}
	if r := a.Admin(t, "POST", "/api/v1/namespaces", map[string]any{"name": "team"}); r.Status != 201 {
		t.Fatalf("namespace: %s", r.Body)
	}
	if r := a.Admin(t, "POST", "/api/v1/namespaces/team/repositories", map[string]any{"name": "app"}); r.Status != 201 {
		t.Fatalf("repository: %s", r.Body)
	}
	api := "/api/v1/repositories/team/app"
	r := a.Admin(t, "PUT", api+"/source", map[string]any{"provider": "github", "url": "https://github.com/team/app.git"})
	if r.Status != 201 {
		t.Fatalf("source: %s", r.Body)
	}
	hookA, secret := r.JSON["webhook_url"].(string), r.JSON["webhook_secret"].(string)
	hookB := strings.Replace(hookA, a.Host, b.Host, 1)
	if hookB == hookA {
		t.Fatalf("webhook URL %s does not name replica a (%s)", hookA, a.Host)
	}
	r = a.Admin(t, "POST", api+"/build-rules", map[string]any{"source_type": "BRANCH", "source_ref": "main"})
	if r.Status != 201 {
		t.Fatalf("rule: %s", r.Body)
	}
	ruleID, _ := r.JSON["id"].(string)
	n := 0
	builds := func(url string) int {
		n++
		code, ans := sendHook(t, url, secret, "push", fmt.Sprintf("stale-%d", n), githubPush("refs/heads/main", strings.Repeat("0", 40), fmt.Sprintf("%040d", n)))
		if code != 200 && code != 202 {
			t.Fatalf("hook: %d %v", code, ans)
		}
		return len(hookBuilds(t, ans))
	}
	if builds(hookB) != 1 { // b now remembers the rule
		t.Fatal("replica b did not build on the rule")
	}
	if r := a.Admin(t, "DELETE", api+"/build-rules/"+ruleID, nil); r.Status != 204 {
		t.Fatalf("delete rule: %d %s", r.Status, r.Body)
	}
	if got := builds(hookA); got != 0 {
		t.Errorf("replica a built %d times on the rule it deleted", got)
	}
	took := within(t, 2*time.Second+500*time.Millisecond, "replica b forgetting the deleted rule", func() bool { return builds(hookB) == 0 })
	t.Logf("replica b stopped building on the deleted rule after %v", took.Round(10*time.Millisecond))
}

// TestReplicaGateStaleness: replicas cache security verdicts for 5 s (pipeline.DefaultGateTTL): a policy set
// through one replica blocks pulls through the other within 5 s.
func TestReplicaGateStaleness(t *testing.T) {
	a, b := twoReplicas(t)
	if pipeline.DefaultGateTTL != 5*time.Second {
		t.Fatalf("DefaultGateTTL is %s; the README says 5 s", pipeline.DefaultGateTTL)
	}
	if r := a.Admin(t, "POST", "/api/v1/namespaces", map[string]any{"name": "demo", "auto_create_repo": true}); r.Status != 201 {
		t.Fatalf("namespace: %s", r.Body)
	}
	pushImage(t, a, "demo/app:v1")
	if te := pull(t, b, "demo/app:v1"); te != nil { // b caches the verdict: allowed
		t.Fatalf("pull through b before the policy: %v", te)
	}
	// No scanner runs in this instance, so the image stays unscanned: block_unscanned blocks it.
	putPolicy(t, a, "/api/v1/namespaces/demo/security-policy", map[string]any{"block_severity": "NONE", "block_unscanned": true})
	if te := pull(t, a, "demo/app:v1"); te == nil || te.StatusCode != 403 {
		t.Errorf("pull through a right after its policy change: %v", te)
	}
	// Poll with GET alone: pull also compares a HEAD sent right after, and while b's cached verdict expires the two
	// may straddle the expiry and disagree.
	ref, err := name.ParseReference(b.Host+"/demo/app:v1", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	took := within(t, 5*time.Second+time.Second, "replica b applying the policy", func() bool {
		_, err := remote.Get(ref, adminAuth)
		var te *transport.Error
		return errors.As(err, &te) && te.StatusCode == 403
	})
	if te := pull(t, b, "demo/app:v1"); te == nil || te.StatusCode != 403 { // and from then on GET and HEAD agree
		t.Errorf("pull through b after it applied the policy: %v", te)
	}
	t.Logf("replica b blocked the pull %v after the policy change", took.Round(10*time.Millisecond))
}
