package pipeline

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/policies/security"
	"github.com/berth-dev/berth/registry"
	"github.com/berth-dev/berth/store"
	"github.com/berth-dev/berth/store/storetest"
)

func TestGate(t *testing.T) {
	ctx := context.Background()
	st := storetest.New(t)
	g := NewGate(st)
	g.TTL = time.Hour // only Changed refreshes within the test
	const d = "sha256:1111"
	high := []store.ScanVulnerability{{ID: "CVE-1", Severity: "HIGH", FixedVersion: "2"}, {ID: "CVE-2", Severity: "CRITICAL"}}

	// Never scanned, default policy: open, and the scan is not even read.
	if v, err := g.Verdict(ctx, "ns/app", d); err != nil || v.Blocked {
		t.Fatalf("default policy: %+v %v", v, err)
	}
	must(t, st.PutSecurityPolicy(ctx, PolicyToStore(security.Policy{BlockSeverity: "HIGH", BlockUnscanned: true}, "ns", "")))
	if v, _ := g.Verdict(ctx, "ns/app", d); v.Blocked {
		t.Fatal("the cached verdict was not reused")
	}
	g.Changed()
	v, _ := g.Verdict(ctx, "ns/app", d)
	if !v.Blocked || v.Status != store.ScanNotScanned || !strings.Contains(v.Message, "namespace ns") {
		t.Fatalf("unscanned under block_unscanned: %+v", v)
	}

	must(t, st.StartScan(ctx, d, "ns/app", time.Now()))
	_, err := st.FinishScan(ctx, d, store.ScanResult{Status: store.ScanDone, Vulnerabilities: high})
	must(t, err)
	g.Changed()
	err = g.Check(ctx, "ns/app", d)
	if registry.ErrorCode(err) != registry.CodeDenied || !strings.Contains(err.Error(), "2 high vulnerabilities") {
		t.Fatalf("Check: %v", err)
	}

	// A rescan keeps the DONE result in force: still blocked for its findings, not for being unscanned.
	must(t, st.StartScan(ctx, d, "ns/app", time.Now()))
	g.Changed()
	if v, _ := g.Verdict(ctx, "ns/app", d); !v.Blocked || v.Status != store.ScanDone {
		t.Fatalf("during a rescan: %+v", v)
	}

	// The repository override wins, whole.
	must(t, st.PutSecurityPolicy(ctx, PolicyToStore(security.Policy{BlockSeverity: "CRITICAL"}, "ns", "ns/app")))
	g.Changed()
	v, _ = g.Verdict(ctx, "ns/app", d)
	if !v.Blocked || !strings.Contains(v.Message, "1 critical") || !strings.Contains(v.Message, "repository ns/app") {
		t.Fatalf("override: %+v", v)
	}
	p, err := g.Policy(ctx, "ns/other")
	if err != nil || p.Override || p.BlockSeverity != "HIGH" {
		t.Fatalf("another repository follows the namespace: %+v %v", p, err)
	}
}

func TestScannerCredentials(t *testing.T) {
	c := NewScanCredentials([]byte("key"))
	u, p := c.Issue("ns/app", time.Minute)
	if repo, ok := c.Verify(u, p); !ok || repo != "ns/app" {
		t.Fatalf("Verify: %q %v", repo, ok)
	}
	if _, ok := NewScanCredentials([]byte("other")).Verify(u, p); ok {
		t.Fatal("verified with another key")
	}
	if _, ok := c.Verify(BuilderUser, p); ok {
		t.Fatal("verified as another user")
	}
	_, old := c.Issue("ns/app", -time.Minute)
	if _, ok := c.Verify(u, old); ok {
		t.Fatal("expired login verified")
	}
	subj := ScannerSubject("ns/app", "1")
	got := ScannerGrant("ns/app", []registry.Access{
		{Type: "repository", Name: "ns/app", Actions: []string{"pull", "push", "delete"}},
		{Type: "repository", Name: "ns/other", Actions: []string{"pull"}},
	})
	if len(got) != 1 || got[0].Name != "ns/app" || len(got[0].Actions) != 1 || got[0].Actions[0] != "pull" {
		t.Fatalf("grant: %+v", got)
	}
	if repo, ok := ScannerRepo(subj); !ok || repo != "ns/app" {
		t.Fatalf("ScannerRepo: %q %v", repo, ok)
	}
	if _, ok := ScannerRepo(BuilderSubject("ns/app", "1")); ok {
		t.Fatal("a builder is not the scanner")
	}
	// The scanner pulls blocked images; nobody else does.
	h := &RegistryHooks{Blocked: func(context.Context, string, string) error { return registry.ErrDenied("blocked") }}
	if err := h.CheckPull(context.Background(), subj, "ns/app", "sha256:1", ""); err != nil {
		t.Fatalf("scanner pull: %v", err)
	}
	if err := h.CheckPull(context.Background(), BuilderSubject("ns/app", "1"), "ns/app", "sha256:1", ""); err != nil {
		t.Fatalf("a build in its own repository: %v", err)
	}
	if err := h.CheckPull(context.Background(), BuilderSubject("ns/other", "1"), "ns/app", "sha256:1", ""); err == nil {
		t.Fatal("a build pulled a blocked image of another repository")
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
