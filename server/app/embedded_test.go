//go:build !noembed

package app

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berth-dev/berth/store"
	"github.com/berth-dev/berth/store/embedded"
	"github.com/berth-dev/berth/store/storetest"
)

// syncBuffer is a log sink tests read while Berth writes to it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func openApp(t *testing.T, dataDir string, log *syncBuffer) *App {
	t.Helper()
	cfg, err := ParseConfig("serve", nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg.DataDir, cfg.Addr, cfg.ScanDBRepository = dataDir, "127.0.0.1:0", ""
	cfg.Logger = slog.New(slog.NewTextHandler(log, nil))
	t.Setenv("BERTH_ADMIN_PASSWORD", "embedded-store-test")
	a, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestEmbeddedStoreIsSQLite: with no --mongo-uri Berth keeps its state in DATA/store/berth.db, mode 0600.
func TestEmbeddedStoreIsSQLite(t *testing.T) {
	dir := t.TempDir()
	a := openApp(t, dir, &syncBuffer{})
	defer a.Close()
	if a.StorePath != StorePath(dir) {
		t.Fatalf("store at %q, want %q", a.StorePath, StorePath(dir))
	}
	fi, err := os.Stat(a.StorePath)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("store file mode %v", fi.Mode().Perm())
	}
	if _, err := os.Stat(legacyStoreDir(dir)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a new data dir has a FerretDB store: %v", err)
	}
}

// TestEmbeddedStoreMigration: a data dir of the Berth that kept its embedded store in FerretDB (DATA/db) is
// migrated at the first start, once, with nothing lost, and the log says so.
func TestEmbeddedStoreMigration(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	m, err := embedded.StartMongo(ctx, legacyStoreDir(dir), nil)
	if err != nil {
		t.Fatal(err)
	}
	old, err := store.Open(ctx, m.URI, store.Options{Database: "berth", Locker: storetest.OwnLocker(t)})
	if err != nil {
		m.Stop()
		t.Fatal(err)
	}
	want := fillLegacyStore(t, old)
	_ = old.Close(ctx)
	m.Stop()

	log := &syncBuffer{}
	a := openApp(t, dir, log)
	checkMigrated(t, a.Store, want)
	if !strings.Contains(log.String(), "embedded store migrated: ") {
		t.Fatalf("the log does not say the store was migrated:\n%s", log)
	}
	if _, err := os.Stat(legacyStoreDir(dir) + ".migrated"); err != nil {
		t.Fatalf("the old store is not kept aside: %v", err)
	}
	a.Close()

	// The second start finds everything and migrates nothing.
	log2 := &syncBuffer{}
	a = openApp(t, dir, log2)
	defer a.Close()
	checkMigrated(t, a.Store, want)
	if strings.Contains(log2.String(), "migrat") {
		t.Fatalf("the second start migrated again:\n%s", log2)
	}
}

// legacyData is what fillLegacyStore wrote, to be found again.
type legacyData struct {
	account string
	build   string
	trigger string
	record  string
	gcRun   string
	hookID  string

	retentionRun string
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func fillLegacyStore(t *testing.T, s store.Store) legacyData {
	t.Helper()
	ctx := context.Background()
	inst, _, err := s.EnsureInstance(ctx)
	must(t, err)
	must(t, s.CreateUser(ctx, &store.User{Name: "ci", AccountID: inst.AccountID, PasswordHash: "hash", Enabled: true}))
	must(t, s.CreatePolicy(ctx, &store.Policy{Name: "readers", Document: `{"Version":"1","Statement":[]}`}))
	_, err = s.AttachPolicy(ctx, "ci", "readers")
	must(t, err)
	must(t, s.CreateAccessKey(ctx, &store.AccessKey{ID: "LTAIkey", User: "ci", SecretHash: "sh", Enabled: true}))
	must(t, s.CreateSession(ctx, &store.Session{ID: "sess", User: "ci", CSRF: "c", CreatedAt: time.Now(), SeenAt: time.Now()}))
	must(t, s.InsertInstanceKey(ctx, "migration-test-key", "sealed-key"))
	must(t, s.SetScanDBVersion(ctx, "db-2026"))
	must(t, s.CreateNamespace(ctx, &store.Namespace{Name: "team", AccountID: inst.AccountID, DefaultVisibility: "PRIVATE"}, 3))
	must(t, s.CreateRepository(ctx, &store.Repository{Namespace: "team", Name: "app", AccountID: inst.AccountID, Summary: "the app"}))
	for i, tag := range []string{"v1", "v2", "v3"} {
		must(t, s.PutImageVersion(ctx, &store.ImageVersion{Repository: "team/app", Tag: tag, Digest: "sha256:" + strings.Repeat(string(rune('a'+i)), 64),
			PushedAt: time.Now().Add(time.Duration(i) * time.Second)}))
	}
	_, err = s.FinishScan(ctx, "sha256:"+strings.Repeat("a", 64), store.ScanResult{Status: store.ScanDone, Summary: store.ScanSummary{High: 1},
		Vulnerabilities: []store.ScanVulnerability{{ID: "CVE-2025-1", Package: "musl", Severity: "HIGH"}}})
	must(t, err)
	must(t, s.PutSecurityPolicy(ctx, &store.SecurityPolicy{Namespace: "team", BlockSeverity: "HIGH"}))
	src := &store.Source{Repository: "team/app", Provider: "github", URL: "https://git.example/app.git", WebhookSecret: "sealed", AutoBuild: true}
	_, err = s.PutSource(ctx, src)
	must(t, err)
	must(t, s.RecordDelivery(ctx, "team/app", "delivery-1"))
	rule := &store.BuildRule{Repository: "team/app", SourceType: store.RuleBranch, SourceRef: "main", ImageTag: "latest"}
	must(t, s.CreateBuildRule(ctx, rule))
	b := &store.Build{Repository: "team/app", RuleID: rule.ID, Trigger: store.BuildByWebhook, Ref: "main", Deliveries: []string{"delivery-1"}}
	must(t, s.CreateBuild(ctx, b))
	_, err = s.UpdateBuild(ctx, b.ID, func(b *store.Build) error { b.Finish(store.BuildSuccess, "", time.Now()); return nil })
	must(t, err)
	must(t, s.PutLogChunk(ctx, &store.LogChunk{Build: b.ID, Repository: "team/app", Seq: 0, Data: "step 1/2\n", Closed: true}))
	tr := &store.Trigger{Repository: "team/app", Name: "deploy", URL: "https://hooks.example/x", FilterType: "ALL", Enabled: true, Secret: "sealed"}
	must(t, s.CreateTrigger(ctx, tr))
	rec := &store.TriggerRecord{ID: store.TriggerRecordID(tr.ID, time.Now(), "v1"), TriggerID: tr.ID, Repository: "team/app",
		Tag: "v1", Status: store.TriggerTriggered, StatusCode: 200}
	must(t, s.PutTriggerRecord(ctx, rec))
	run := &store.GCRun{ID: store.NewGCRunID(time.Now()), StartedAt: time.Now(), Trigger: "api"}
	must(t, s.CreateGCRun(ctx, run))
	run.BlobsDeleted = 2
	must(t, s.FinishGCRun(ctx, run))
	immutable := "v.*"
	_, err = s.UpdateRepository(ctx, "team", "app", store.RepositoryUpdate{ImmutableTags: &immutable})
	must(t, err)
	_, err = s.UpdateRetentionRules(ctx, "team", func([]store.RetentionRule) ([]store.RetentionRule, error) {
		return []store.RetentionRule{{ID: "rr-1", TagPattern: "v.*", KeepLast: 2, Enabled: true}}, nil
	})
	must(t, err)
	ret := &store.RetentionRun{ID: store.NewRetentionRunID(time.Now()), Namespace: "team", StartedAt: time.Now(), Trigger: "api"}
	must(t, s.CreateRetentionRun(ctx, ret))
	ret.Deleted, ret.DeletedCount, ret.KeptCount = []store.RetentionDeletion{{Repository: "app", Tag: "v0", Digest: "sha256:00"}}, 1, 3
	must(t, s.FinishRetentionRun(ctx, ret))
	return legacyData{account: inst.AccountID, build: b.ID, trigger: tr.ID, record: rec.ID, gcRun: run.ID, hookID: src.HookID,
		retentionRun: ret.ID}
}

func checkMigrated(t *testing.T, s store.Store, want legacyData) {
	t.Helper()
	ctx := context.Background()
	inst, created, err := s.EnsureInstance(ctx)
	must(t, err)
	if created || inst.AccountID != want.account {
		t.Fatalf("main account %s (created %v), want %s", inst.AccountID, created, want.account)
	}
	u, err := s.GetUser(ctx, "ci")
	must(t, err)
	if u.PasswordHash != "hash" || len(u.Policies) != 1 || u.Policies[0] != "readers" {
		t.Fatalf("user %+v", u)
	}
	if _, err := s.GetPolicy(ctx, "readers"); err != nil {
		t.Fatal("policy:", err)
	}
	if k, err := s.GetAccessKey(ctx, "LTAIkey"); err != nil || k.User != "ci" {
		t.Fatalf("access key %+v %v", k, err)
	}
	if sess, err := s.GetSession(ctx, "sess"); err != nil || sess.User != "ci" {
		t.Fatalf("session %+v %v", sess, err)
	}
	if k, err := s.GetInstanceKey(ctx, "migration-test-key"); err != nil || k.Sealed != "sealed-key" {
		t.Fatalf("instance key %+v %v", k, err)
	}
	if v, err := s.ScanDBVersion(ctx); err != nil || v != "db-2026" {
		t.Fatalf("scan DB version %q %v", v, err)
	}
	if _, err := s.GetNamespace(ctx, "team"); err != nil {
		t.Fatal("namespace:", err)
	}
	if r, err := s.GetRepository(ctx, "team", "app"); err != nil || r.Summary != "the app" || r.ImmutableTags != "v.*" {
		t.Fatalf("repository %+v %v", r, err)
	}
	tags, total, err := s.ListImageVersions(ctx, "team/app", store.Page{Page: 1, PageSize: 20})
	must(t, err)
	if total != 3 || len(tags) != 3 || tags[0].Tag != "v3" || tags[2].Tag != "v1" {
		t.Fatalf("versions %d %+v", total, tags)
	}
	sc, err := s.GetScan(ctx, "sha256:"+strings.Repeat("a", 64))
	must(t, err)
	if sc.Summary.High != 1 || len(sc.Vulnerabilities) != 1 || sc.Vulnerabilities[0].ID != "CVE-2025-1" {
		t.Fatalf("scan %+v", sc)
	}
	if p, err := s.GetSecurityPolicy(ctx, "team"); err != nil || p.BlockSeverity != "HIGH" {
		t.Fatalf("security policy %+v %v", p, err)
	}
	if src, err := s.SourceByHook(ctx, want.hookID); err != nil || src.URL != "https://git.example/app.git" {
		t.Fatalf("source %+v %v", src, err)
	}
	if err := s.RecordDelivery(ctx, "team/app", "delivery-1"); !errors.Is(err, store.ErrAlreadyExists) {
		t.Fatalf("delivery-1 is forgotten: %v", err)
	}
	if rules, err := s.AllBuildRules(ctx, "team/app"); err != nil || len(rules) != 1 {
		t.Fatalf("rules %+v %v", rules, err)
	}
	builds, total, err := s.ListBuilds(ctx, "team/app", store.Page{Page: 1, PageSize: 20})
	must(t, err)
	if total != 1 || builds[0].ID != want.build || builds[0].Status != store.BuildSuccess {
		t.Fatalf("builds %d %+v", total, builds)
	}
	if took, err := s.TakeOverDelivery(ctx, "team/app", "delivery-1", 0); err != nil || took {
		t.Fatalf("a delivery whose build exists was taken over (%v, %v)", took, err)
	}
	if c, err := s.GetLogChunk(ctx, want.build, 0); err != nil || c.Data != "step 1/2\n" {
		t.Fatalf("log %+v %v", c, err)
	}
	if trs, err := s.EnabledTriggers(ctx, "team/app"); err != nil || len(trs) != 1 || trs[0].ID != want.trigger {
		t.Fatalf("triggers %+v %v", trs, err)
	}
	recs, total, err := s.ListTriggerRecords(ctx, want.trigger, store.Page{Page: 1, PageSize: 20})
	must(t, err)
	if total != 1 || recs[0].ID != want.record || recs[0].StatusCode != 200 {
		t.Fatalf("records %d %+v", total, recs)
	}
	if run, err := s.LastGCRun(ctx); err != nil || run.ID != want.gcRun || run.BlobsDeleted != 2 || run.FinishedAt == nil {
		t.Fatalf("gc run %+v %v", run, err)
	}
	if rules, err := s.GetRetentionRules(ctx, "team"); err != nil || len(rules) != 1 || rules[0].ID != "rr-1" || rules[0].KeepLast != 2 {
		t.Fatalf("retention rules %+v %v", rules, err)
	}
	runs, total, err := s.ListRetentionRuns(ctx, "team", store.Page{Page: 1, PageSize: 20})
	must(t, err)
	if total != 1 || runs[0].ID != want.retentionRun || runs[0].KeptCount != 3 || len(runs[0].Deleted) != 1 || runs[0].FinishedAt == nil {
		t.Fatalf("retention runs %d %+v", total, runs)
	}
}
