package store_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"testing"

	"github.com/berth-dev/berth/store"
	"github.com/berth-dev/berth/store/storetest"
)

func TestMain(m *testing.M) { os.Exit(storetest.Main(m)) }

func TestNamespaceLimitUnderConcurrency(t *testing.T) {
	ctx := context.Background()
	s := storetest.New(t)
	names := make([]string, 50)
	for i := range names {
		names[i] = fmt.Sprintf("ns-%02d", i)
	}
	if ok, limited, _ := createNamespaces(t, s, s, names, 3); ok != 3 || limited != 47 {
		t.Fatalf("created %d, limited %d; want 3 and 47", ok, limited)
	}
	list, total, err := s.ListNamespaces(ctx, "100", store.Page{Page: 1, PageSize: 100})
	if err != nil || total != 3 || len(list) != 3 {
		t.Fatalf("list: %v total=%d len=%d", err, total, len(list))
	}
	// Another account has its own budget.
	if err := s.CreateNamespace(ctx, &store.Namespace{Name: "other", AccountID: "200"}, 3); err != nil {
		t.Fatal(err)
	}
	// Deleting frees a slot.
	if _, err := s.DeleteNamespace(ctx, list[0].Name, false); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateNamespace(ctx, &store.Namespace{Name: "again", AccountID: "100"}, 3); err != nil {
		t.Fatalf("after delete: %v", err)
	}
	if err := s.CreateNamespace(ctx, &store.Namespace{Name: "again", AccountID: "100"}, 0); !errors.Is(err, store.ErrAlreadyExists) {
		t.Fatalf("duplicate: %v", err)
	}
}

func TestRepositoriesAndForceDelete(t *testing.T) {
	ctx := context.Background()
	s := storetest.New(t)
	if err := s.CreateNamespace(ctx, &store.Namespace{Name: "team", AccountID: "1"}, 0); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateRepository(ctx, &store.Repository{Namespace: "missing", Name: "x"}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("repo in missing ns: %v", err)
	}
	for _, n := range []string{"web", "api", "db"} {
		if err := s.CreateRepository(ctx, &store.Repository{Namespace: "team", Name: n, AccountID: "1", Visibility: store.VisibilityPrivate}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.CreateRepository(ctx, &store.Repository{Namespace: "team", Name: "web"}); !errors.Is(err, store.ErrAlreadyExists) {
		t.Fatalf("dup repo: %v", err)
	}
	items, total, err := s.ListRepositories(ctx, "", "team", store.Page{Page: 2, PageSize: 2})
	if err != nil || total != 3 || len(items) != 1 || items[0].Name != "web" {
		t.Fatalf("page 2: %v %d %+v", err, total, items)
	}
	pub := store.VisibilityPublic
	r, err := s.UpdateRepository(ctx, "team", "api", store.RepositoryUpdate{Visibility: &pub})
	if err != nil || r.Visibility != pub {
		t.Fatalf("update: %v %+v", err, r)
	}
	if err := s.PutImageVersion(ctx, &store.ImageVersion{Repository: "team/api", Tag: "v1", Digest: "sha256:aa"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DeleteNamespace(ctx, "team", false); !errors.Is(err, store.ErrNotEmpty) {
		t.Fatalf("delete non-empty: %v", err)
	}
	repos, err := s.DeleteNamespace(ctx, "team", true)
	if err != nil || len(repos) != 3 {
		t.Fatalf("force delete: %v %v", err, repos)
	}
	if _, err := s.GetImageVersion(ctx, "team/api", "v1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("tag survived its repository: %v", err)
	}
}

// A namespace's security policy goes with the namespace: a namespace created again under the same name
// starts from the default policy, not the old one.
func TestNamespacePolicyDiesWithNamespace(t *testing.T) {
	ctx := context.Background()
	s := storetest.New(t)
	if err := s.CreateNamespace(ctx, &store.Namespace{Name: "gone", AccountID: "1"}, 0); err != nil {
		t.Fatal(err)
	}
	if err := s.PutSecurityPolicy(ctx, &store.SecurityPolicy{ID: "gone", Namespace: "gone", BlockSeverity: "HIGH"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DeleteNamespace(ctx, "gone", false); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetSecurityPolicy(ctx, "gone"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("policy outlived its namespace: %v", err)
	}
}
