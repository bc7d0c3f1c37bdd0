package store_test

import (
	"errors"
	"testing"

	"github.com/berth-dev/berth/store"
)

func TestCodeAccounts(t *testing.T) {
	s, ctx := triggerFixture(t)
	var made []*store.CodeAccount
	for _, p := range []string{"github", "gitea", "gitlab"} {
		a := &store.CodeAccount{AccountID: "1", Provider: p, BaseURL: "https://" + p + ".example/api", Username: "u", Token: "sealed-" + p, Login: "u", CreatedBy: "admin"}
		if err := s.CreateCodeAccount(ctx, a); err != nil {
			t.Fatal(err)
		}
		if a.ID == "" || a.CreatedAt.IsZero() {
			t.Fatalf("created account has no id or time: %+v", a)
		}
		made = append(made, a)
	}
	if err := s.CreateCodeAccount(ctx, &store.CodeAccount{AccountID: "2", Provider: "github"}); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetCodeAccount(ctx, made[1].ID)
	if err != nil || got.Provider != "gitea" || got.Token != "sealed-gitea" || got.BaseURL != "https://gitea.example/api" || got.AccountID != "1" {
		t.Fatalf("GetCodeAccount = %+v, %v", got, err)
	}
	if _, err := s.GetCodeAccount(ctx, "missing"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("missing account: %v", err)
	}
	// Pages in creation order, of the one main account.
	page1, total, err := s.ListCodeAccounts(ctx, "1", store.Page{Page: 1, PageSize: 2})
	if err != nil || total != 3 || len(page1) != 2 || page1[0].ID != made[0].ID || page1[1].ID != made[1].ID {
		t.Fatalf("page 1 = %v (total %d), %v", page1, total, err)
	}
	page2, _, err := s.ListCodeAccounts(ctx, "1", store.Page{Page: 2, PageSize: 2})
	if err != nil || len(page2) != 1 || page2[0].ID != made[2].ID {
		t.Fatalf("page 2 = %v, %v", page2, err)
	}

	// A source naming an account: the account cannot go while the source is there.
	src := &store.Source{Repository: "team/app", Provider: "gitea", URL: "https://gitea.example/o/app.git", CodeAccount: made[1].ID,
		GitRepository: "o/app", HostHookID: "17", WebhookRegistered: true}
	if _, err := s.PutSource(ctx, src); err != nil {
		t.Fatal(err)
	}
	back, err := s.GetSource(ctx, "team/app")
	if err != nil || back.CodeAccount != made[1].ID || back.GitRepository != "o/app" || back.HostHookID != "17" || !back.WebhookRegistered {
		t.Fatalf("source = %+v, %v", back, err)
	}
	back.WebhookRegistered, back.WebhookError = false, "gitea: HTTP 404"
	if _, err := s.PutSource(ctx, back); err != nil {
		t.Fatal(err)
	}
	if again, _ := s.GetSource(ctx, "team/app"); again.WebhookRegistered || again.WebhookError != "gitea: HTTP 404" {
		t.Fatalf("source after the failure = %+v", again)
	}
	err = s.DeleteCodeAccount(ctx, made[1].ID)
	var inUse *store.InUseError
	if !errors.Is(err, store.ErrInUse) || !errors.As(err, &inUse) || len(inUse.Repositories) != 1 || inUse.Repositories[0] != "team/app" {
		t.Fatalf("deleting an account in use: %v", err)
	}
	if _, err := s.PutSource(ctx, &store.Source{Repository: "team/other", Provider: "github", URL: "https://x/o/r.git", CodeAccount: "missing"}); !errors.Is(err, store.ErrNoCodeAccount) {
		t.Fatalf("a source naming a missing account: %v", err)
	}
	if err := s.DeleteSource(ctx, "team/app"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteCodeAccount(ctx, made[1].ID); err != nil {
		t.Fatalf("deleting an account no longer used: %v", err)
	}
	if err := s.DeleteCodeAccount(ctx, made[1].ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("deleting it again: %v", err)
	}
	if _, total, _ := s.ListCodeAccounts(ctx, "1", store.Page{Page: 1, PageSize: 20}); total != 2 {
		t.Fatalf("total after the delete = %d", total)
	}
	// A repository deleted with its source frees the account.
	if _, err := s.PutSource(ctx, &store.Source{Repository: "team/other", Provider: "github", URL: "https://x/o/r.git", CodeAccount: made[0].ID}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteRepository(ctx, "team", "other"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteCodeAccount(ctx, made[0].ID); err != nil {
		t.Fatalf("deleting an account whose source's repository is gone: %v", err)
	}
}
