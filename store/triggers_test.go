package store_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/berth-dev/berth/store"
	"github.com/berth-dev/berth/store/storetest"
)

func triggerFixture(t *testing.T) (store.Store, context.Context) {
	t.Helper()
	ctx := context.Background()
	s := storetest.New(t)
	if err := s.CreateNamespace(ctx, &store.Namespace{Name: "team", AccountID: "1"}, 0); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"app", "other"} {
		if err := s.CreateRepository(ctx, &store.Repository{Namespace: "team", Name: name, AccountID: "1"}); err != nil {
			t.Fatal(err)
		}
	}
	return s, ctx
}

func TestTriggerCRUD(t *testing.T) {
	s, ctx := triggerFixture(t)
	if err := s.CreateTrigger(ctx, &store.Trigger{Repository: "team/missing", Name: "x"}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("trigger of a missing repository: %v", err)
	}
	a := &store.Trigger{Repository: "team/app", Name: "a", URL: "http://example.com/", FilterType: "ALL", Enabled: true, Secret: "sealed"}
	b := &store.Trigger{Repository: "team/app", Name: "b", URL: "http://example.com/", FilterType: "TAGS", Tags: []string{"v1"}}
	for _, tr := range []*store.Trigger{a, b} {
		if err := s.CreateTrigger(ctx, tr); err != nil {
			t.Fatal(err)
		}
	}
	if a.ID == "" || a.ID == b.ID || a.CreatedAt.IsZero() {
		t.Fatalf("ids and times not set: %+v %+v", a, b)
	}
	got, err := s.GetTrigger(ctx, "team/app", a.ID)
	if err != nil || got.Name != "a" || got.Secret != "sealed" || !got.Enabled {
		t.Fatalf("get: %+v %v", got, err)
	}
	if _, err := s.GetTrigger(ctx, "team/other", a.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a trigger is found through another repository: %v", err)
	}
	list, total, err := s.ListTriggers(ctx, "team/app", store.Page{Page: 1, PageSize: 1})
	if err != nil || total != 2 || len(list) != 1 || list[0].ID != a.ID {
		t.Fatalf("list page 1: %v total=%d %+v", err, total, list)
	}
	enabled, err := s.EnabledTriggers(ctx, "team/app")
	if err != nil || len(enabled) != 1 || enabled[0].ID != a.ID {
		t.Fatalf("enabled: %v %+v", err, enabled)
	}
	boom := errors.New("refused")
	if _, err := s.UpdateTrigger(ctx, "team/app", b.ID, func(*store.Trigger) error { return boom }); err != boom {
		t.Fatalf("change error not returned: %v", err)
	}
	up, err := s.UpdateTrigger(ctx, "team/app", b.ID, func(tr *store.Trigger) error {
		tr.Enabled, tr.ID, tr.Repository = true, "hijack", "team/other"
		return nil
	})
	if err != nil || up.ID != b.ID || up.Repository != "team/app" || !up.Enabled {
		t.Fatalf("update: %v %+v", err, up)
	}
	if _, err := s.UpdateTrigger(ctx, "team/other", b.ID, func(*store.Trigger) error { return nil }); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("update through another repository: %v", err)
	}
	if err := s.DeleteTrigger(ctx, "team/other", a.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("delete through another repository: %v", err)
	}
	rec := &store.TriggerRecord{ID: store.TriggerRecordID(a.ID, time.Now(), "x"), TriggerID: a.ID, Repository: "team/app"}
	if err := s.PutTriggerRecord(ctx, rec); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteTrigger(ctx, "team/app", a.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetTriggerRecord(ctx, rec.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("records outlive their trigger: %v", err)
	}
	// Triggers and records die with their repository.
	rec = &store.TriggerRecord{ID: store.TriggerRecordID(b.ID, time.Now(), "x"), TriggerID: b.ID, Repository: "team/app"}
	if err := s.PutTriggerRecord(ctx, rec); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteRepository(ctx, "team", "app"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetTrigger(ctx, "team/app", b.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("trigger outlives its repository: %v", err)
	}
	if _, err := s.GetTriggerRecord(ctx, rec.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("record outlives its repository: %v", err)
	}
}

func TestTriggerRecordsOrderRewriteAndRetention(t *testing.T) {
	s, ctx := triggerFixture(t)
	tr := &store.Trigger{Repository: "team/app", Name: "a", URL: "http://example.com/", Enabled: true}
	if err := s.CreateTrigger(ctx, tr); err != nil {
		t.Fatal(err)
	}
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	var ids []string
	for i := range 5 {
		at := base.Add(time.Duration(i) * time.Second)
		r := &store.TriggerRecord{ID: store.TriggerRecordID(tr.ID, at, fmt.Sprint(i)), TriggerID: tr.ID, Repository: "team/app",
			Time: at, Tag: fmt.Sprintf("v%d", i), Status: store.TriggerNotTriggered, Attempts: 0}
		if err := s.PutTriggerRecord(ctx, r); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, r.ID)
	}
	// Every attempt of one delivery rewrites one record.
	again := store.TriggerRecordID(tr.ID, base.Add(4*time.Second), "4")
	if again != ids[4] {
		t.Fatalf("record id is not deterministic: %s vs %s", again, ids[4])
	}
	if err := s.PutTriggerRecord(ctx, &store.TriggerRecord{ID: again, TriggerID: tr.ID, Repository: "team/app", Time: time.Now(),
		Tag: "v4", Status: store.TriggerTriggered, Attempts: 3}); err != nil {
		t.Fatal(err)
	}
	list, total, err := s.ListTriggerRecords(ctx, tr.ID, store.Page{Page: 1, PageSize: 2})
	if err != nil || total != 5 || len(list) != 2 {
		t.Fatalf("list: %v total=%d len=%d", err, total, len(list))
	}
	if list[0].Tag != "v4" || list[0].Status != store.TriggerTriggered || list[0].Attempts != 3 || list[1].Tag != "v3" {
		t.Fatalf("not newest first or not rewritten: %+v", list)
	}
	list, _, _ = s.ListTriggerRecords(ctx, tr.ID, store.Page{Page: 3, PageSize: 2})
	if len(list) != 1 || list[0].Tag != "v0" {
		t.Fatalf("last page: %+v", list)
	}
	// Retention: everything written before the cutoff goes; the rewritten record (written now) stays.
	n, err := s.DeleteTriggerRecordsBefore(ctx, base.Add(time.Hour))
	if err != nil || n != 4 {
		t.Fatalf("cleanup deleted %d: %v", n, err)
	}
	list, total, _ = s.ListTriggerRecords(ctx, tr.ID, store.Page{Page: 1, PageSize: 10})
	if total != 1 || list[0].Tag != "v4" {
		t.Fatalf("after cleanup: %+v", list)
	}
}
