package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/berth-dev/berth/store"
	"github.com/berth-dev/berth/store/storetest"
)

func TestScanLifecycle(t *testing.T) {
	ctx := context.Background()
	s := storetest.New(t)
	const d = "sha256:aaaa"
	if _, err := s.GetScan(ctx, d); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetScan before any: %v", err)
	}
	pushed := time.Now()
	w1 := store.ScanWaiter{Repository: "ns/a", Tag: "1", PushedAt: pushed}
	w2 := store.ScanWaiter{Repository: "ns/b", Tag: "x", PushedAt: pushed}
	sc, err := s.AddScanWaiter(ctx, d, w1)
	if err != nil || sc.Status != store.ScanNotScanned || len(sc.Waiting) != 1 {
		t.Fatalf("AddScanWaiter: %v %+v", err, sc)
	}
	if sc, err = s.AddScanWaiter(ctx, d, w1); err != nil || len(sc.Waiting) != 1 {
		t.Fatalf("the same waiter twice: %v %+v", err, sc.Waiting)
	}
	if _, err = s.AddScanWaiter(ctx, d, w2); err != nil {
		t.Fatal(err)
	}
	if err := s.StartScan(ctx, d, "ns/a", time.Now()); err != nil {
		t.Fatal(err)
	}
	if sc, _ = s.GetScan(ctx, d); sc.Status != store.ScanScanning || sc.ResultStatus != "" || len(sc.Waiting) != 2 {
		t.Fatalf("after StartScan: %+v", sc)
	}
	vulns := []store.ScanVulnerability{{ID: "CVE-1", Package: "p", InstalledVersion: "1", FixedVersion: "2", Severity: "HIGH", Title: "t", Link: "https://x"}}
	sc, err = s.FinishScan(ctx, d, store.ScanResult{Status: store.ScanDone, Scanner: "trivy 0.74.0", DBVersion: "v", StartedAt: time.Now(),
		FinishedAt: time.Now(), Vulnerabilities: vulns, Summary: store.ScanSummary{High: 1}})
	if err != nil || sc.Status != store.ScanDone || sc.ResultStatus != store.ScanDone || len(sc.Waiting) != 2 || len(sc.Vulnerabilities) != 1 {
		t.Fatalf("FinishScan: %v %+v", err, sc)
	}
	if err := s.RemoveScanWaiter(ctx, d, sc.Waiting[0]); err != nil {
		t.Fatal(err)
	}
	// A rescan keeps the previous result until it finishes.
	if err := s.StartScan(ctx, d, "ns/a", time.Now()); err != nil {
		t.Fatal(err)
	}
	sc, _ = s.GetScan(ctx, d)
	if sc.Status != store.ScanScanning || sc.ResultStatus != store.ScanDone || len(sc.Vulnerabilities) != 1 || len(sc.Waiting) != 1 {
		t.Fatalf("during a rescan: %+v", sc)
	}
	un, err := s.UnfinishedScans(ctx, 10)
	if err != nil || len(un) != 1 || un[0].Digest != d || un[0].PullFrom != "ns/a" {
		t.Fatalf("UnfinishedScans: %v %+v", err, un)
	}
	m, err := s.ScansByDigest(ctx, []string{d, "sha256:none"})
	if err != nil || len(m) != 1 || m[d].Summary.High != 1 || m[d].Vulnerabilities != nil {
		t.Fatalf("ScansByDigest: %v %+v", err, m)
	}
	// A finished scan is listed while pushes still wait on it (they were added after it took its copy),
	// and not once none waits; every result has a new id.
	first := sc.ResultID
	if sc, err = s.FinishScan(ctx, d, store.ScanResult{Status: store.ScanFailed, FinishedAt: time.Now()}); err != nil ||
		sc.ResultID == "" || sc.ResultID == first || len(sc.Waiting) != 1 {
		t.Fatalf("second FinishScan: %v %+v", err, sc)
	}
	const idle = "sha256:bbbb"
	if _, err := s.FinishScan(ctx, idle, store.ScanResult{Status: store.ScanFailed, FinishedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if un, err = s.UnfinishedScans(ctx, 10); err != nil || len(un) != 1 || un[0].Digest != d || un[0].Status != store.ScanFailed {
		t.Fatalf("UnfinishedScans with a waiter on a FAILED scan: %v %+v", err, un)
	}
	if err := s.RemoveScanWaiter(ctx, d, sc.Waiting[0]); err != nil {
		t.Fatal(err)
	}
	if un, err = s.UnfinishedScans(ctx, 10); err != nil || len(un) != 0 {
		t.Fatalf("UnfinishedScans with no waiter left: %v %+v", err, un)
	}
}

func TestSecurityPolicies(t *testing.T) {
	ctx := context.Background()
	s := storetest.New(t)
	exp := time.Now().Add(time.Hour).UTC().Truncate(time.Millisecond)
	if err := s.PutSecurityPolicy(ctx, &store.SecurityPolicy{Namespace: "ns", BlockSeverity: "HIGH",
		Allowlist: []store.AllowEntry{{ID: "CVE-1", ExpiresAt: &exp}, {ID: "CVE-2"}}}); err != nil {
		t.Fatal(err)
	}
	p, err := s.GetSecurityPolicy(ctx, "ns")
	if err != nil || p.BlockSeverity != "HIGH" || len(p.Allowlist) != 2 || !p.Allowlist[0].ExpiresAt.Equal(exp) || p.Allowlist[1].ExpiresAt != nil {
		t.Fatalf("namespace policy: %v %+v", err, p)
	}
	if err := s.CreateNamespace(ctx, &store.Namespace{Name: "ns", AccountID: "1"}, 0); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateRepository(ctx, &store.Repository{Namespace: "ns", Name: "app", AccountID: "1"}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutSecurityPolicy(ctx, &store.SecurityPolicy{Namespace: "ns", Repository: "ns/app", BlockSeverity: "LOW",
		RequireSignature: true, TrustedKeys: []string{"-----BEGIN PUBLIC KEY-----\nk1\n", "k2"}}); err != nil {
		t.Fatal(err)
	}
	if p, err := s.GetSecurityPolicy(ctx, "ns/app"); err != nil || p.BlockSeverity != "LOW" || !p.RequireSignature ||
		len(p.TrustedKeys) != 2 || p.TrustedKeys[0] != "-----BEGIN PUBLIC KEY-----\nk1\n" || p.TrustedKeys[1] != "k2" {
		t.Fatalf("override: %v %+v", err, p)
	}
	// The override dies with its repository; the namespace's policy stays.
	if err := s.DeleteRepository(ctx, "ns", "app"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetSecurityPolicy(ctx, "ns/app"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("override after its repository was deleted: %v", err)
	}
	if _, err := s.GetSecurityPolicy(ctx, "ns"); err != nil {
		t.Errorf("namespace policy: %v", err)
	}
	if err := s.DeleteSecurityPolicy(ctx, "ns"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteSecurityPolicy(ctx, "ns"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("second delete: %v", err)
	}
	if v, err := s.ScanDBVersion(ctx); err != nil || v != "" {
		t.Fatalf("ScanDBVersion before any: %q %v", v, err)
	}
	if err := s.SetScanDBVersion(ctx, "2026-01-02T03:04:05Z"); err != nil {
		t.Fatal(err)
	}
	if v, _ := s.ScanDBVersion(ctx); v != "2026-01-02T03:04:05Z" {
		t.Errorf("ScanDBVersion = %q", v)
	}
}
