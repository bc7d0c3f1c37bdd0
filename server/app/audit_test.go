package app_test

import (
	"context"
	"fmt"
	"net/url"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/berth-dev/berth/policies"
	"github.com/berth-dev/berth/server/app"
	"github.com/berth-dev/berth/server/app/apptest"
)

// auditEntries flushes the audit log and returns the entries the API answers for query, newest first.
func auditEntries(t *testing.T, in *apptest.Instance, query string) []map[string]any {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := in.Audit.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	r := in.Admin(t, "GET", "/api/v1/audit-logs?page_size=100&"+query, nil)
	if r.Status != 200 {
		t.Fatalf("audit-logs?%s: %d %s", query, r.Status, r.Body)
	}
	return r.Items()
}

// entry is the fields of an audit entry a test checks exactly.
func entry(e map[string]any) string {
	return fmt.Sprintf("%v %v %v %v %v", e["user"], e["client"], e["action"], e["resource"], e["status"])
}

func expectEntries(t *testing.T, in *apptest.Instance, query string, want ...string) []map[string]any {
	t.Helper()
	items := auditEntries(t, in, query)
	var got []string
	for _, e := range items {
		got = append(got, entry(e))
		if id, _ := e["request_id"].(string); id == "" {
			t.Errorf("entry without a request id: %v", e)
		}
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("audit-logs?%s:\n got %s\nwant %s", query, strings.Join(got, "\n     "), strings.Join(want, "\n     "))
	}
	return items
}

// TestAuditLog on a whole Berth: a RAM user's push through the docker CLI, sign-ins that fail (API, docker
// login) and succeed (docker login), policy changes, a garbage collection and a retention run started through
// the API, each with its user, client, action, resource and status; reads are not kept; only those allowed read
// the log.
func TestAuditLog(t *testing.T) {
	needTool(t, "docker", "podman", "runc")
	in := apptest.Start(t, apptest.Options{Region: "cn-hangzhou"})
	acct := in.Instance.AccountID
	repoRes := policies.RepositoryResource("cn-hangzhou", acct, "team", "app")
	in.Admin(t, "POST", "/api/v1/namespaces", map[string]any{"name": "team"})
	in.Admin(t, "POST", "/api/v1/users", map[string]any{"name": "dev", "password": "dev-password-1"})
	doc := func(actions ...string) map[string]any {
		return map[string]any{"Version": "1", "Statement": []map[string]any{
			{"Effect": "Allow", "Action": actions, "Resource": []string{"acs:cr:*:*:repository/team/*"}}}}
	}
	in.Admin(t, "POST", "/api/v1/policies", map[string]any{"name": "team-push", "document": doc("cr:PullRepository")})
	if r := in.Admin(t, "PUT", "/api/v1/policies/team-push", map[string]any{"document": doc("cr:PullRepository", "cr:PushRepository")}); r.Status != 200 {
		t.Fatalf("update policy: %d %s", r.Status, r.Body)
	}
	in.Admin(t, "PUT", "/api/v1/users/dev/policies/team-push", nil)
	in.Admin(t, "GET", "/api/v1/policies/team-push", nil) // a read: not kept
	expectEntries(t, in, "user=admin",
		"admin 127.0.0.1 ram:AttachPolicy * 200",
		"admin 127.0.0.1 ram:UpdatePolicy * 200",
		"admin 127.0.0.1 ram:CreatePolicy * 201",
		"admin 127.0.0.1 ram:CreateUser * 201",
		"admin 127.0.0.1 cr:CreateNamespace * 201")

	// A failed API sign-in, and a change refused for want of a permission.
	if r := in.Call(t, "dev", "wrong-password", "GET", "/api/v1/namespaces", nil); r.Status != 401 {
		t.Fatalf("wrong password: %d", r.Status)
	}
	if r := in.Call(t, "dev", "dev-password-1", "POST", "/api/v1/system/gc", map[string]any{}); r.Status != 403 {
		t.Fatalf("dev starts a GC: %d %s", r.Status, r.Body)
	}
	// Only administrators and cr:ListAuditLogs read the log; the refused read is no entry.
	if r := in.Call(t, "dev", "dev-password-1", "GET", "/api/v1/audit-logs", nil); r.Status != 403 || r.Code() != "FORBIDDEN" {
		t.Fatalf("dev reads the audit log: %d %s", r.Status, r.Body)
	}
	expectEntries(t, in, "user=dev",
		"dev 127.0.0.1 system:StartGarbageCollection * 403",
		"dev 127.0.0.1 ram:Login * 401")

	// docker login (refused, then accepted) and push as the RAM user.
	env := podmanService(t)
	host := strings.Replace(in.Host, "127.0.0.1", "localhost", 1)
	docker := func(args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		c := execDocker(ctx, env, args...)
		out, err := c.CombinedOutput()
		return string(out), err
	}
	if out, err := docker("login", host, "-u", "dev", "-p", "not-the-password"); err == nil {
		t.Fatalf("docker login with a wrong password: %s", out)
	}
	expectEntries(t, in, "action=ram:Login&user=dev", "dev 127.0.0.1 ram:Login * 401", "dev 127.0.0.1 ram:Login * 401")
	pushRandom(t, in.Host+"/team/base:v1", "admin", apptest.AdminPassword)
	for _, args := range [][]string{
		{"login", host, "-u", "dev", "-p", "dev-password-1"},
		{"pull", host + "/team/base:v1"},
		{"tag", host + "/team/base:v1", host + "/team/app:v1"},
		{"push", host + "/team/app:v1"},
	} {
		if out, err := docker(args...); err != nil {
			t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	items := expectEntries(t, in, "action=cr:PushRepository&user=dev", "dev 127.0.0.1 cr:PushRepository "+repoRes+" 201")
	if ts, _ := time.Parse(time.RFC3339, fmt.Sprint(items[0]["time"])); time.Since(ts) > time.Minute {
		t.Fatalf("push entry time: %v", items[0]["time"])
	}
	// The same entry by resource; no pull entries without --audit-pulls.
	expectEntries(t, in, "resource="+url.QueryEscape(repoRes), "dev 127.0.0.1 cr:PushRepository "+repoRes+" 201")
	expectEntries(t, in, "action=cr:PullRepository")
	if got := auditEntries(t, in, "action=ram:Login&user=dev"); len(got) < 3 || entry(got[0]) != "dev 127.0.0.1 ram:Login * 200" {
		t.Fatalf("docker login is no sign-in entry: %v", got)
	}

	// A garbage collection started through the API.
	if r := in.Admin(t, "POST", "/api/v1/system/gc", map[string]any{"dry_run": true}); r.Status != 202 {
		t.Fatalf("start gc: %d %s", r.Status, r.Body)
	}
	expectEntries(t, in, "action=system:StartGarbageCollection",
		"admin 127.0.0.1 system:StartGarbageCollection * 202",
		"dev 127.0.0.1 system:StartGarbageCollection * 403")
	// A retention run started through the API, and one the RAM user may not start.
	if r := in.Admin(t, "POST", "/api/v1/namespaces/team/retention-rules", map[string]any{"tag_pattern": "v.*", "keep_last": 5}); r.Status != 201 {
		t.Fatalf("retention rule: %d %s", r.Status, r.Body)
	}
	if r := in.Admin(t, "POST", "/api/v1/namespaces/team/retention-runs", map[string]any{"dry_run": false}); r.Status != 202 {
		t.Fatalf("start retention: %d %s", r.Status, r.Body)
	}
	if r := in.Call(t, "dev", "dev-password-1", "POST", "/api/v1/namespaces/team/retention-runs", map[string]any{"dry_run": true}); r.Status != 403 {
		t.Fatalf("dev starts a retention run: %d %s", r.Status, r.Body)
	}
	nsRes := policies.NamespaceResource("cn-hangzhou", acct, "team")
	expectEntries(t, in, "action=cr:StartRetentionRun",
		"dev 127.0.0.1 cr:StartRetentionRun "+nsRes+" 403",
		"admin 127.0.0.1 cr:StartRetentionRun "+nsRes+" 202")
	expectEntries(t, in, "action=cr:CreateRetentionRule", "admin 127.0.0.1 cr:CreateRetentionRule "+nsRes+" 201")
	// Time filters: nothing is after now; everything is since a minute ago.
	if got := auditEntries(t, in, "since="+time.Now().Add(time.Minute).UTC().Format(time.RFC3339)); len(got) != 0 {
		t.Fatalf("entries in the future: %v", got)
	}
	if r := in.Admin(t, "GET", "/api/v1/audit-logs?since=yesterday", nil); r.Status != 400 {
		t.Fatalf("bad since: %d %s", r.Status, r.Body)
	}
	// No route changes or deletes an entry.
	if r := in.Admin(t, "DELETE", "/api/v1/audit-logs", nil); r.Status != 405 {
		t.Fatalf("DELETE audit-logs: %d %s", r.Status, r.Body)
	}
}

// TestAuditPulls: with --audit-pulls every manifest GET is an entry, anonymous ones of a PUBLIC repository too.
func TestAuditPulls(t *testing.T) {
	in := apptest.Start(t, apptest.Options{Configure: func(c *app.Config) { c.AuditPulls = true }})
	in.Admin(t, "POST", "/api/v1/namespaces", map[string]any{"name": "team"})
	in.Admin(t, "POST", "/api/v1/namespaces/team/repositories", map[string]any{"name": "open", "visibility": "PUBLIC"})
	pushRandom(t, in.Host+"/team/open:v1", "admin", apptest.AdminPassword)
	pullAnonymous(t, in.Host+"/team/open:v1")
	res := policies.RepositoryResource(in.Cfg.Region, in.Instance.AccountID, "team", "open")
	expectEntries(t, in, "action=cr:PullRepository", "anonymous 127.0.0.1 cr:PullRepository "+res+" 200")
}

func execDocker(ctx context.Context, env []string, args ...string) *exec.Cmd {
	c := exec.CommandContext(ctx, "docker", args...)
	c.Env = env
	return c
}

func pullAnonymous(t *testing.T, ref string) {
	t.Helper()
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := remote.Get(r, remote.WithAuth(authn.Anonymous)); err != nil {
		t.Fatalf("anonymous pull of %s: %v", ref, err)
	}
}
