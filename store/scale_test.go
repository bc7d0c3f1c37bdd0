package store_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berth-dev/berth/store"
	"github.com/berth-dev/berth/store/storetest"
)

// putVersions pushes n versions of repo, two per pushed_at second (so the tag breaks ties), with 8 writers, and
// returns them in the order the versions list must show: newest push first, then by id.
func putVersions(t *testing.T, s store.Store, repo string, n int) []store.ImageVersion {
	t.Helper()
	ctx := context.Background()
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	all := make([]store.ImageVersion, n)
	for i := range all {
		all[i] = store.ImageVersion{Repository: repo, Tag: fmt.Sprintf("v%06d", i), MediaType: "application/vnd.oci.image.manifest.v1+json",
			Digest: fmt.Sprintf("sha256:%064x", i%500), PushedAt: base.Add(time.Duration(i/2) * time.Second)}
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 8 {
		wg.Go(func() {
			for i := w; i < n; i += 8 {
				v := all[i]
				if err := s.PutImageVersion(ctx, &v); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for i := range all {
		all[i].ID = repo + ":" + all[i].Tag
	}
	slices.SortFunc(all, func(a, b store.ImageVersion) int {
		if c := b.PushedAt.Compare(a.PushedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return all
}

func tagsOf(vs []store.ImageVersion) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = v.Tag
	}
	return out
}

// checkPage reads page p of repo's versions and compares it, and the total, with want (the whole list).
func checkPage(t *testing.T, s store.Store, repo string, want []store.ImageVersion, page, size int) {
	t.Helper()
	got, total, err := s.ListImageVersions(context.Background(), repo, store.Page{Page: page, PageSize: size})
	if err != nil {
		t.Fatal(err)
	}
	if total != int64(len(want)) {
		t.Fatalf("page %d of %d: total %d, want %d", page, size, total, len(want))
	}
	from := min((page-1)*size, len(want))
	exp := tagsOf(want[from:min(from+size, len(want))])
	if g := tagsOf(got); !slices.Equal(g, exp) {
		t.Fatalf("page %d of %d:\n got %v\nwant %v", page, size, g, exp)
	}
}

// TestVersionsPagingAtScale: 20,000 versions of one repository page in the exact order (newest push first, ties
// by tag) with exact totals, first, middle and last pages alike, and the totals follow deletes and re-pushes;
// another repository's list is unaffected.
func TestVersionsPagingAtScale(t *testing.T) {
	ctx := context.Background()
	s := storetest.New(t)
	n := 20000
	if strings.HasPrefix(storetest.Backend(), "ferretdb") {
		n = 4000 // FerretDB v1 reads the whole collection for each page: 20,000 takes minutes there
	}
	all := putVersions(t, s, "team/busy", n)
	small := putVersions(t, s, "team/quiet", 3)

	for _, p := range []struct{ page, size int }{
		{1, 20}, {2, 20}, {n / 40, 20}, {n/40 + 1, 20}, {n/20 - 1, 20}, {n / 20, 20}, {n/20 + 1, 20}, // first, middle, last, past the end
		{1, 100}, {n / 200, 100}, {n/200 + 1, 100}, {n / 100, 100},
		{(n + 29) / 30, 30}, {n / 30, 30}, {n / 60, 30}, // a short last page; the pages either side of the middle
	} {
		checkPage(t, s, "team/busy", all, p.page, p.size)
	}
	checkPage(t, s, "team/quiet", small, 1, 20)

	// A re-push moves the tag to the front and keeps the total.
	moved := all[n-1]
	moved.PushedAt = time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	if err := s.PutImageVersion(ctx, &moved); err != nil {
		t.Fatal(err)
	}
	all = append([]store.ImageVersion{moved}, all[:n-1]...)
	checkPage(t, s, "team/busy", all, 1, 20)
	checkPage(t, s, "team/busy", all, 1000, 20)

	// Deletes by tag and by digest keep the total exact.
	if err := s.DeleteImageVersion(ctx, "team/busy", all[5].Tag); err != nil {
		t.Fatal(err)
	}
	all = slices.Delete(all, 5, 6)
	digest := fmt.Sprintf("sha256:%064x", 7)
	if vs, err := s.ImageVersionsByDigest(ctx, "team/busy", digest, 100); err != nil || len(vs) != n/500 || vs[0].Digest != digest {
		t.Fatalf("versions by digest: %d (want %d) %v", len(vs), n/500, err)
	}
	if vs, err := s.ImageVersionsByDigest(ctx, "team/quiet", digest, 100); err != nil || len(vs) != 0 {
		t.Fatalf("versions by digest of another repository: %d %v", len(vs), err)
	}
	if err := s.DeleteImageVersionsByDigest(ctx, "team/busy", digest); err != nil {
		t.Fatal(err)
	}
	all = slices.DeleteFunc(all, func(v store.ImageVersion) bool { return v.Digest == digest })
	if vs, err := s.ImageVersionsByDigest(ctx, "team/busy", digest, 100); err != nil || len(vs) != 0 {
		t.Fatalf("versions by digest after their delete: %d %v", len(vs), err)
	}
	if len(all) != n-1-n/500 {
		t.Fatalf("fixture: %d versions left", len(all))
	}
	for _, p := range []int{1, 500, (len(all) + 19) / 20} {
		checkPage(t, s, "team/busy", all, p, 20)
	}
	checkPage(t, s, "team/quiet", small, 1, 20)
}

// TestTotalsAfterRepositoryDelete: a repository made again after its deletion starts from no versions, builds
// and records.
func TestTotalsAfterRepositoryDelete(t *testing.T) {
	ctx := context.Background()
	s := storetest.New(t)
	if err := s.CreateNamespace(ctx, &store.Namespace{Name: "team", AccountID: "1"}, 0); err != nil {
		t.Fatal(err)
	}
	mk := func() (*store.Trigger, *store.Build) {
		if err := s.CreateRepository(ctx, &store.Repository{Namespace: "team", Name: "app", AccountID: "1"}); err != nil {
			t.Fatal(err)
		}
		putVersions(t, s, "team/app", 30)
		tr := &store.Trigger{Repository: "team/app", Name: "t", URL: "https://x.example/", FilterType: "ALL", Enabled: true}
		if err := s.CreateTrigger(ctx, tr); err != nil {
			t.Fatal(err)
		}
		for i := range 25 {
			r := &store.TriggerRecord{ID: store.TriggerRecordID(tr.ID, time.Now(), fmt.Sprint(i)), TriggerID: tr.ID, Repository: "team/app"}
			if err := s.PutTriggerRecord(ctx, r); err != nil {
				t.Fatal(err)
			}
		}
		b := &store.Build{Repository: "team/app", Trigger: store.BuildByAPI}
		if err := s.CreateBuild(ctx, b); err != nil {
			t.Fatal(err)
		}
		return tr, b
	}
	tr, _ := mk()
	if _, n, _ := s.ListImageVersions(ctx, "team/app", store.Page{Page: 1, PageSize: 1}); n != 30 {
		t.Fatalf("versions total %d", n)
	}
	if _, n, _ := s.ListTriggerRecords(ctx, tr.ID, store.Page{Page: 1, PageSize: 1}); n != 25 {
		t.Fatalf("records total %d", n)
	}
	if err := s.DeleteRepository(ctx, "team", "app"); err != nil {
		t.Fatal(err)
	}
	if _, n, _ := s.ListTriggerRecords(ctx, tr.ID, store.Page{Page: 1, PageSize: 1}); n != 0 {
		t.Fatalf("records total %d after the repository's deletion", n)
	}
	tr, _ = mk()
	for what, total := range map[string]func() (int64, error){
		"versions": func() (int64, error) {
			_, n, err := s.ListImageVersions(ctx, "team/app", store.Page{Page: 1, PageSize: 1})
			return n, err
		},
		"builds": func() (int64, error) {
			_, n, err := s.ListBuilds(ctx, "team/app", store.Page{Page: 1, PageSize: 1})
			return n, err
		},
		"records": func() (int64, error) {
			_, n, err := s.ListTriggerRecords(ctx, tr.ID, store.Page{Page: 1, PageSize: 1})
			return n, err
		},
	} {
		want := map[string]int64{"versions": 30, "builds": 1, "records": 25}[what]
		if n, err := total(); err != nil || n != want {
			t.Fatalf("%s total %d (%v) after the repository was made again, want %d", what, n, err, want)
		}
	}
	// Records deleted by age leave the total exact.
	if n, err := s.DeleteTriggerRecordsBefore(ctx, time.Now().Add(time.Hour)); err != nil || n != 25 {
		t.Fatalf("deleted %d records (%v)", n, err)
	}
	if _, n, _ := s.ListTriggerRecords(ctx, tr.ID, store.Page{Page: 1, PageSize: 1}); n != 0 {
		t.Fatalf("records total %d after they expired", n)
	}
}
