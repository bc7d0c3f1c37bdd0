package console_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berth-dev/berth/server/app/apptest"
	"github.com/berth-dev/berth/store"
)

// sessionCookie signs in as the administrator and returns the session cookie.
func sessionCookie(tb testing.TB, in *apptest.Instance) *http.Cookie {
	b := newBrowser(tb, in)
	if st := b.signIn("admin", apptest.AdminPassword); st != http.StatusSeeOther {
		tb.Fatalf("sign in: %d", st)
	}
	u, _ := url.Parse(in.URL)
	for _, c := range b.c.Jar.Cookies(u) {
		if c.Name == "berth_session" {
			return c
		}
	}
	tb.Fatal("no session cookie")
	return nil
}

func percentiles(ds []time.Duration) (p50, p99 time.Duration) {
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	return ds[len(ds)/2], ds[(len(ds)*99)/100]
}

// BenchmarkRepositoriesPage renders the repositories page of a namespace with 1,000 repositories, in process
// (the server's time, no network), and reports its p50 and p99.
func BenchmarkRepositoriesPage(b *testing.B) {
	in := apptest.Start(b, apptest.Options{})
	ctx := context.Background()
	if err := in.Store.CreateNamespace(ctx, &store.Namespace{Name: "big", AccountID: in.Instance.AccountID,
		AutoCreateRepo: true, DefaultVisibility: store.VisibilityPrivate}, 0); err != nil {
		b.Fatal(err)
	}
	for i := range 1000 {
		if err := in.Store.CreateRepository(ctx, &store.Repository{Namespace: "big", Name: fmt.Sprintf("repo-%04d", i),
			AccountID: in.Instance.AccountID, Visibility: store.VisibilityPrivate, Origin: store.OriginUser,
			Summary: "a repository of the benchmark"}); err != nil {
			b.Fatal(err)
		}
	}
	ck := sessionCookie(b, in)
	get := func(path string) (int, string) {
		req := httptest.NewRequest("GET", path, nil)
		req.AddCookie(ck)
		rec := httptest.NewRecorder()
		in.Handler.ServeHTTP(rec, req)
		return rec.Code, rec.Body.String()
	}
	if st, body := get("/namespaces/big?page=3"); st != 200 || !strings.Contains(body, "repo-0040") || !strings.Contains(body, "Page 3 of 50") {
		b.Fatalf("page: %d\n%s", st, body)
	}
	var ds []time.Duration
	pages := []string{"/namespaces/big", "/namespaces/big?page=25", "/namespaces/big?page=50", "/namespaces/big?q=repo-09"}
	i := 0
	for b.Loop() {
		start := time.Now()
		if st, _ := get(pages[i%len(pages)]); st != 200 {
			b.Fatalf("status %d", st)
		}
		ds = append(ds, time.Since(start))
		i++
	}
	p50, p99 := percentiles(ds)
	// The same lists straight from the API, to tell the console's share from the store's.
	var apiDs []time.Duration
	for j := range len(ds) {
		req := httptest.NewRequest("GET", "/api/v1/namespaces/big/repositories?page="+fmt.Sprint(1+j%50), nil)
		req.SetBasicAuth("admin", apptest.AdminPassword)
		rec := httptest.NewRecorder()
		start := time.Now()
		in.Handler.ServeHTTP(rec, req)
		apiDs = append(apiDs, time.Since(start))
		if rec.Code != 200 {
			b.Fatalf("API: %d", rec.Code)
		}
	}
	a50, a99 := percentiles(apiDs)
	b.ReportMetric(float64(p50.Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(p99.Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(a50.Microseconds())/1000, "api-p50-ms")
	b.Logf("repositories page of 1,000 repositories: p50 %v, p99 %v over %d renders (target p99 ≤ 50ms); "+
		"the API's list alone: p50 %v, p99 %v", p50, p99, len(ds), a50, a99)
}

// firstWrite is a ResponseWriter that notes when the first body byte is written, then ends the request.
type firstWrite struct {
	h      http.Header
	once   sync.Once
	at     chan time.Time
	cancel context.CancelFunc
	n      int
}

func (w *firstWrite) Header() http.Header { return w.h }
func (w *firstWrite) WriteHeader(int)     {}
func (w *firstWrite) Flush()              {}
func (w *firstWrite) Write(p []byte) (int, error) {
	w.n += len(p)
	if len(p) > 0 {
		w.once.Do(func() { w.at <- time.Now(); w.cancel() })
	}
	return len(p), nil
}

// BenchmarkBuildLogFirstLine measures, for a running build whose log holds 10 MiB, how long the build page
// takes to render and how long its log stream (?follow=true, as the page reads it) takes to send its first
// bytes: together, the server's share of the time to the first log line.
func BenchmarkBuildLogFirstLine(b *testing.B) {
	in := apptest.Start(b, apptest.Options{})
	ctx := context.Background()
	acct := in.Instance.AccountID
	if err := in.Store.CreateNamespace(ctx, &store.Namespace{Name: "team", AccountID: acct, DefaultVisibility: store.VisibilityPrivate}, 0); err != nil {
		b.Fatal(err)
	}
	if err := in.Store.CreateRepository(ctx, &store.Repository{Namespace: "team", Name: "app", AccountID: acct,
		Visibility: store.VisibilityPrivate, Origin: store.OriginUser}); err != nil {
		b.Fatal(err)
	}
	bd := &store.Build{ID: store.NewBuildID(), Repository: "team/app", Trigger: "manual", RefType: "BRANCH", Ref: "main",
		ImageTag: "latest", Region: "default", Status: "BUILDING", CreatedAt: time.Now(), UpdatedAt: time.Now()}
	if err := in.Store.CreateBuild(ctx, bd); err != nil {
		b.Fatal(err)
	}
	line := strings.Repeat("x", 99) + "\n"
	chunk := strings.Repeat(line, store.MaxLogChunk/len(line))
	total := 0
	for seq := 0; total < 10<<20; seq++ {
		if err := in.Store.PutLogChunk(ctx, &store.LogChunk{Build: bd.ID, Repository: "team/app", Seq: seq, Data: chunk, Closed: true}); err != nil {
			b.Fatal(err)
		}
		total += len(chunk)
	}
	ck := sessionCookie(b, in)
	page := "/repositories/team/app/builds/" + bd.ID
	var pageDs, logDs []time.Duration
	for b.Loop() {
		start := time.Now()
		req := httptest.NewRequest("GET", page, nil)
		req.AddCookie(ck)
		rec := httptest.NewRecorder()
		in.Handler.ServeHTTP(rec, req)
		if rec.Code != 200 || !strings.Contains(rec.Body.String(), `id="build-log"`) {
			b.Fatalf("build page: %d", rec.Code)
		}
		pageDs = append(pageDs, time.Since(start))

		rctx, cancel := context.WithCancel(ctx)
		req = httptest.NewRequestWithContext(rctx, "GET", page+"/log?follow=true", nil)
		req.AddCookie(ck)
		w := &firstWrite{h: http.Header{}, at: make(chan time.Time, 1), cancel: cancel}
		start = time.Now()
		in.Handler.ServeHTTP(w, req)
		cancel()
		select {
		case at := <-w.at:
			logDs = append(logDs, at.Sub(start))
		default:
			b.Fatal("the log stream wrote nothing")
		}
	}
	p50, p99 := percentiles(pageDs)
	l50, l99 := percentiles(logDs)
	b.ReportMetric(float64(p99.Microseconds())/1000, "page-p99-ms")
	b.ReportMetric(float64(l50.Microseconds())/1000, "firstlog-p50-ms")
	b.ReportMetric(float64(l99.Microseconds())/1000, "firstlog-p99-ms")
	b.Logf("build with a %d MiB log: page render p50 %v p99 %v; first log bytes p50 %v p99 %v (target ≤ 100ms)",
		total>>20, p50, p99, l50, l99)
}
