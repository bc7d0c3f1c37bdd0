// Command history measures how Berth's pages and API calls cost as history grows: one repository with 1k,
// 10k and 100k versions (a trigger record per version), as many builds, and a tenth as many repositories
// across namespaces (SPEC §10), read back through the API and the console of a real `berth serve`.
//
//	go run ./bench/history                          # embedded default (SQLite), 1k / 10k / 100k
//	go run ./bench/history -store ferretdb-postgresql
//	go run ./bench/history -smoke                   # seconds: the test command runs this
//
// How the history is made: the first -registry-pushes versions are pushed through the registry by 8 clients
// (go-containerregistry, small random images) with an ALL trigger delivering every tag to a local receiver;
// that phase gives the push rate. Every build is made by a signed GitHub push webhook (8 senders; the builds
// go to the overseas queue, which no worker takes, and end FAILED after --build-queue-timeout 1s). The rest of the versions, their scans and their
// trigger records, and the repositories, are written through the store's typed methods (the documents a push
// writes), since a registry push per version would take hours at 100k. Then at each size every row is read
// -reads times in sequence (p50 / p99), and the RSS of the berth process is read from /proc.
package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/berth-dev/berth/server/app"
	"github.com/berth-dev/berth/store"
	"github.com/berth-dev/berth/store/sqlite"
	"github.com/berth-dev/berth/store/storetest"
)

const password = "bench-admin-password"

var (
	sizesFlag = flag.String("sizes", "1000,10000,100000", "history sizes to measure at (versions = builds = trigger records; repositories = size/10)")
	backend   = flag.String("store", "embedded", "embedded (SQLite) or ferretdb-postgresql (the MongoDB backend, as replicas use it)")
	pushes    = flag.Int("registry-pushes", 2000, "versions pushed through the registry (the rest are written through the store)")
	reads     = flag.Int("reads", 200, "requests per row")
	smoke     = flag.Bool("smoke", false, "small sizes and few reads, to check the bench still runs (the test command)")
)

func main() {
	flag.Parse()
	if *smoke {
		*sizesFlag, *pushes, *reads = "100,400", 50, 10
	}
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench/history:", err)
		os.Exit(1)
	}
}

type berth struct {
	url, addr string
	client    *http.Client
	console   *http.Client // signed in to the console
	cmd       *exec.Cmd
}

func run() error {
	var sizes []int
	for _, s := range strings.Split(*sizesFlag, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n <= 0 {
			return fmt.Errorf("-sizes: %q is not a size", s)
		}
		sizes = append(sizes, n)
	}
	tmp, err := os.MkdirTemp("", "berth-bench-history-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	_ = os.Chmod(tmp, 0o755) // PostgreSQL's user reaches its cluster below
	bin := filepath.Join(tmp, "berth")
	if out, err := exec.Command("go", "build", "-o", bin, "./cmd/berth").CombinedOutput(); err != nil {
		return fmt.Errorf("build berth (run from the repository root): %v\n%s", err, out)
	}
	dataDir := filepath.Join(tmp, "data")
	// The builds wait on the overseas queue, which no worker takes: --build-queue-timeout ends them FAILED
	// ("no worker") within seconds, so the history is of finished builds, as it is on a real instance (where
	// the check of QUEUED builds reads only the few that wait).
	args := []string{"serve", "--data-dir", dataDir, "--namespace-limit", "0", "--queues", "none",
		"--trigger-allow-cidr", "127.0.0.0/8", "--scan-db-repository", "", "--log-level", "error",
		"--build-queue-timeout", "1s"}
	ctx := context.Background()
	var st store.Store
	switch *backend {
	case "embedded":
	case "ferretdb-postgresql":
		pg := filepath.Join(tmp, "pg")
		if err := os.MkdirAll(pg, 0o755); err != nil {
			return err
		}
		uri, stop, err := storetest.StartFerretOnPostgres(pg)
		if err != nil {
			return err
		}
		defer stop()
		args = append(args, "--mongo-uri", uri)
		m, err := store.Open(ctx, uri, store.Options{Locker: localLocker{}})
		if err != nil {
			return err
		}
		st = m
	default:
		return fmt.Errorf("-store %q: embedded or ferretdb-postgresql", *backend)
	}
	b, err := startBerth(bin, args)
	if err != nil {
		return err
	}
	defer b.stop()
	if st == nil {
		db, err := sqlite.Open(ctx, app.StorePath(dataDir)) // a second process on the same file, as a worker would be
		if err != nil {
			return err
		}
		defer db.Close(ctx)
		st = db
	}
	h, err := setup(b)
	if err != nil {
		return err
	}
	if err := b.signIn(); err != nil {
		return err
	}
	inst, _, err := st.EnsureInstance(ctx)
	if err != nil {
		return err
	}
	h.account = inst.AccountID

	fmt.Printf("history benchmark: berth serve on %s, %s; %d reads per row, one at a time\n", storeLabel(), b.addr, *reads)
	var first map[string]stat
	for i, size := range sizes {
		if err := h.grow(ctx, b, st, size); err != nil {
			return err
		}
		if i == 0 {
			fmt.Printf("\npush through the registry, 8 clients, ALL trigger on every tag: %d images in %v = %.0f/s (all %d deliveries in %v = %.0f/s)\n",
				h.pushed, h.pushTook.Round(time.Millisecond), float64(h.pushed)/h.pushTook.Seconds(),
				h.pushed, h.deliverTook.Round(time.Millisecond), float64(h.pushed)/h.deliverTook.Seconds())
			fmt.Printf("builds through signed push webhooks, 8 senders: %d in %v = %.0f/s\n", h.hooks, h.hookTook.Round(time.Millisecond),
				float64(h.hooks)/h.hookTook.Seconds())
		}
		stats, err := h.measure(b, size)
		if err != nil {
			return err
		}
		rss, _ := b.rss()
		if first == nil {
			first = stats
		}
		fmt.Printf("\n%d versions, %d builds, %d trigger records, %d repositories; berth RSS %d MiB\n\n", size, size, size, size/10, rss>>20)
		fmt.Println("| row | p50 | p99 | p99 vs first size |")
		fmt.Println("|---|---|---|---|")
		for _, r := range rows {
			s := stats[r.name]
			fmt.Printf("| %s | %s | %s | %.2f× |\n", r.name, ms(s.p50), ms(s.p99), float64(s.p99)/float64(first[r.name].p99))
		}
	}
	return nil
}

func storeLabel() string {
	if *backend == "embedded" {
		return "the embedded default (SQLite)"
	}
	return "FerretDB on PostgreSQL (the MongoDB backend)"
}

// localLocker is the store lease of a single writer (this bench writes what berth serve does not).
type localLocker struct{}

var locks sync.Map

func (localLocker) Lock(_ context.Context, key string, _ time.Duration) (func(), error) {
	mu, _ := locks.LoadOrStore(key, &sync.Mutex{})
	mu.(*sync.Mutex).Lock()
	return mu.(*sync.Mutex).Unlock, nil
}

func startBerth(bin string, args []string) (*berth, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	cmd := exec.Command(bin, append(args, "--addr", addr)...)
	cmd.Env = append(os.Environ(), "BERTH_ADMIN_PASSWORD="+password)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	b := &berth{url: "http://" + addr, addr: addr, cmd: cmd, client: &http.Client{Timeout: time.Minute,
		Transport: &http.Transport{MaxIdleConnsPerHost: 16}}}
	for range 600 {
		if resp, err := b.client.Get(b.url + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return b, nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	b.stop()
	return nil, errors.New("berth not ready within 30 s")
}

func (b *berth) stop() {
	_ = b.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = b.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		_ = b.cmd.Process.Kill()
		<-done
	}
}

// rss is the berth process's resident memory.
func (b *berth) rss() (int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", b.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	m := regexp.MustCompile(`VmRSS:\s+(\d+) kB`).FindSubmatch(data)
	if m == nil {
		return 0, errors.New("no VmRSS")
	}
	kb, _ := strconv.ParseInt(string(m[1]), 10, 64)
	return kb << 10, nil
}

func (b *berth) call(method, path string, body any, want int) (map[string]any, error) {
	var rd io.Reader
	if body != nil {
		data, _ := json.Marshal(body)
		rd = bytes.NewReader(data)
	}
	req, _ := http.NewRequest(method, b.url+path, rd)
	req.SetBasicAuth("admin", password)
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := b.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		return nil, fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, data)
	}
	var out map[string]any
	_ = json.Unmarshal(data, &out)
	return out, nil
}

// signIn signs in to the console as a browser does (the form's CSRF cookie, then the form).
func (b *berth) signIn() error {
	jar, _ := cookiejar.New(nil)
	b.console = &http.Client{Jar: jar, Timeout: time.Minute, Transport: b.client.Transport,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := b.console.Get(b.url + "/login")
	if err != nil {
		return err
	}
	resp.Body.Close()
	u, _ := url.Parse(b.url + "/login") // the form's cookie is for that path
	var csrf string
	for _, c := range jar.Cookies(u) {
		if c.Name == "berth_login" {
			csrf = c.Value
		}
	}
	form := url.Values{"username": {"admin"}, "password": {password}, "csrf": {csrf}}
	req, _ := http.NewRequest("POST", b.url+"/login", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", b.url)
	if resp, err = b.console.Do(req); err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther && resp.StatusCode != http.StatusFound {
		return fmt.Errorf("console sign-in: %s", resp.Status)
	}
	return nil
}

// history is what the bench made so far.
type history struct {
	account   string
	trigger   string
	hookURL   string
	secret    string
	receiver  *httptest.Server
	delivered atomic.Int64

	versions, builds, repos int
	pushed, hooks           int
	pushTook, deliverTook   time.Duration
	hookTook                time.Duration
	lastTag                 string
	seq                     atomic.Int64
}

func setup(b *berth) (*history, error) {
	h := &history{}
	h.receiver = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		h.delivered.Add(1)
	}))
	for _, step := range []struct {
		path string
		body map[string]any
	}{
		{"/api/v1/namespaces", map[string]any{"name": "bench"}},
		{"/api/v1/namespaces/bench/repositories", map[string]any{"name": "app"}},
		{"/api/v1/repositories/bench/app/triggers", map[string]any{"name": "every-tag", "url": h.receiver.URL + "/hook"}},
	} {
		out, err := b.call("POST", step.path, step.body, 201)
		if err != nil {
			return nil, err
		}
		if id, ok := out["id"].(string); ok {
			h.trigger = id
		}
	}
	src, err := b.call("PUT", "/api/v1/repositories/bench/app/source", map[string]any{"provider": "github",
		"url": "https://git.example.com/bench/app.git", "overseas_build": true}, 201)
	if err != nil {
		return nil, err
	}
	if _, err := b.call("POST", "/api/v1/repositories/bench/app/build-rules", map[string]any{"source_type": "BRANCH", "source_ref": "main"}, 201); err != nil {
		return nil, err
	}
	h.hookURL, h.secret = src["webhook_url"].(string), src["webhook_secret"].(string)
	h.repos = 1
	return h, nil
}

// grow brings the history to size.
func (h *history) grow(ctx context.Context, b *berth, st store.Store, size int) error {
	if n := min(*pushes, size) - h.pushed; n > 0 {
		if err := h.push(b, n); err != nil {
			return err
		}
	}
	if err := h.fillVersions(ctx, st, size); err != nil {
		return err
	}
	if n := size - h.builds; n > 0 {
		start := time.Now()
		if err := parallel(8, n, func(int) error { return h.hook(b) }); err != nil {
			return err
		}
		h.hookTook += time.Since(start)
		h.hooks += n
		h.builds = size
		if err := waitBuildsFinished(b); err != nil {
			return err
		}
	}
	for ; h.repos < size/10; h.repos++ {
		ns := fmt.Sprintf("team-%02d", h.repos%20)
		if h.repos <= 20 {
			if err := st.CreateNamespace(ctx, &store.Namespace{Name: ns, AccountID: h.account, DefaultVisibility: store.VisibilityPrivate}, 0); err != nil && !errors.Is(err, store.ErrAlreadyExists) {
				return err
			}
		}
		r := &store.Repository{Namespace: ns, Name: fmt.Sprintf("service-%05d", h.repos), AccountID: h.account,
			Visibility: store.VisibilityPrivate, Origin: store.OriginUser}
		if err := st.CreateRepository(ctx, r); err != nil {
			return fmt.Errorf("repository %d: %w", h.repos, err)
		}
	}
	return nil
}

// push pushes n small images through the registry with 8 clients and waits for their trigger deliveries.
func (h *history) push(b *berth, n int) error {
	auth := remote.WithAuth(&authn.Basic{Username: "admin", Password: password})
	before := h.delivered.Load()
	start := time.Now()
	base := h.pushed
	err := parallel(8, n, func(i int) error {
		img, err := random.Image(512, 1)
		if err != nil {
			return err
		}
		ref, err := name.ParseReference(fmt.Sprintf("%s/bench/app:v%07d", b.addr, base+i), name.Insecure)
		if err != nil {
			return err
		}
		return remote.Write(ref, img, auth)
	})
	if err != nil {
		return fmt.Errorf("registry push: %w", err)
	}
	h.pushTook += time.Since(start)
	deadline := time.Now().Add(2 * time.Minute)
	for h.delivered.Load()-before < int64(n) {
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d trigger deliveries arrived in 2 minutes", h.delivered.Load()-before, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
	h.deliverTook += time.Since(start)
	h.pushed += n
	h.versions += n
	h.lastTag = fmt.Sprintf("v%07d", h.pushed-1)
	return nil
}

// fillVersions writes versions up to size through the store, each with a finished scan and a trigger record,
// as a push's pipeline writes them.
func (h *history) fillVersions(ctx context.Context, st store.Store, size int) error {
	base := h.versions
	n := size - base
	if n <= 0 {
		return nil
	}
	at := time.Now().Add(-time.Duration(size) * time.Second)
	err := parallel(8, n, func(i int) error {
		k := base + i
		tag := fmt.Sprintf("v%07d", k)
		digest := fmt.Sprintf("sha256:%064x", k)
		pushed := at.Add(time.Duration(k) * time.Millisecond)
		if err := st.PutImageVersion(ctx, &store.ImageVersion{Repository: "bench/app", Tag: tag, Digest: digest,
			MediaType: "application/vnd.oci.image.manifest.v1+json", ImageID: digest, Size: 1024,
			Platforms: []string{"linux/amd64"}, PushedAt: pushed}); err != nil {
			return err
		}
		if _, err := st.FinishScan(ctx, digest, store.ScanResult{Status: store.ScanDone, Scanner: "bench", StartedAt: pushed,
			FinishedAt: pushed, Summary: store.ScanSummary{Low: 1}, Vulnerabilities: []store.ScanVulnerability{
				{ID: "CVE-2026-0001", Package: "musl", InstalledVersion: "1.2.5-r0", FixedVersion: "1.2.5-r9", Severity: "LOW"}}}); err != nil {
			return err
		}
		return st.PutTriggerRecord(ctx, &store.TriggerRecord{ID: store.TriggerRecordID(h.trigger, pushed, tag), TriggerID: h.trigger,
			Repository: "bench/app", Time: pushed, Tag: tag, Digest: digest, Status: store.TriggerTriggered, StatusCode: 200,
			Attempts: 1, RequestBody: `{"push_data":{"tag":"` + tag + `"}}`})
	})
	if err != nil {
		return fmt.Errorf("write versions: %w", err)
	}
	h.versions = size
	return nil
}

// waitBuildsFinished waits until the newest build has left QUEUED (the queue check ends them oldest first).
func waitBuildsFinished(b *berth) error {
	deadline := time.Now().Add(10 * time.Minute)
	for time.Now().Before(deadline) {
		out, err := b.call("GET", "/api/v1/repositories/bench/app/builds?page_size=1", nil, 200)
		if err != nil {
			return err
		}
		items, _ := out["items"].([]any)
		if len(items) == 1 && items[0].(map[string]any)["status"] != "QUEUED" {
			return nil
		}
		time.Sleep(500 * time.Millisecond)
	}
	return errors.New("builds still QUEUED after 10 minutes")
}

// hook sends one signed GitHub push webhook, which makes one build.
func (h *history) hook(b *berth) error {
	n := h.seq.Add(1)
	commit := fmt.Sprintf("%040x", n)
	body, _ := json.Marshal(map[string]any{"ref": "refs/heads/main", "before": strings.Repeat("0", 40), "after": commit,
		"head_commit": map[string]any{"id": commit}, "pusher": map[string]any{"name": "bench"}})
	mac := hmac.New(sha256.New, []byte(h.secret))
	mac.Write(body)
	req, _ := http.NewRequest("POST", h.hookURL, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-GitHub-Event", "push")
	req.Header.Set("X-GitHub-Delivery", fmt.Sprintf("bench-%d", n))
	req.Header.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(mac.Sum(nil)))
	resp, err := b.client.Do(req)
	if err != nil {
		return err
	}
	data, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 202 || !bytes.Contains(data, []byte(`"builds":["`)) {
		return fmt.Errorf("webhook: %d %s", resp.StatusCode, data)
	}
	return nil
}

// parallel runs fn(0..n-1) on workers goroutines; the first error stops it.
func parallel(workers, n int, fn func(int) error) error {
	var next atomic.Int64
	var failed atomic.Value
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n || failed.Load() != nil {
					return
				}
				if err := fn(i); err != nil {
					failed.CompareAndSwap(nil, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		return err
	}
	return nil
}

type stat struct{ p50, p99 time.Duration }

type row struct {
	name    string
	console bool
	path    func(size int) string
}

var rows = []row{
	{"API tags page, first", false, func(int) string { return "/api/v1/repositories/bench/app/tags?page_size=20" }},
	{"API tags page, last", false, func(n int) string {
		return fmt.Sprintf("/api/v1/repositories/bench/app/tags?page_size=20&page=%d", (n+19)/20)
	}},
	{"API one tag", false, func(int) string { return "/api/v1/repositories/bench/app/tags/v0000000" }},
	{"API trigger records page", false, nil}, // the trigger's id is known at run time
	{"API builds page, first", false, func(int) string { return "/api/v1/repositories/bench/app/builds?page_size=20" }},
	{"API builds page, last", false, func(n int) string {
		return fmt.Sprintf("/api/v1/repositories/bench/app/builds?page_size=20&page=%d", (n+19)/20)
	}},
	{"API repositories list", false, func(int) string { return "/api/v1/repositories?page_size=20" }},
	{"API repositories list, last", false, func(n int) string {
		return fmt.Sprintf("/api/v1/repositories?page_size=20&page=%d", (n/10+19)/20)
	}},
	{"console versions page", true, func(int) string { return "/repositories/bench/app/tags" }},
	{"console versions page, last", true, func(n int) string { return fmt.Sprintf("/repositories/bench/app/tags?page=%d", (n+19)/20) }},
	{"console builds page", true, func(int) string { return "/repositories/bench/app/builds" }},
}

func (h *history) measure(b *berth, size int) (map[string]stat, error) {
	out := map[string]stat{}
	for _, r := range rows {
		path := ""
		if r.path == nil {
			path = "/api/v1/repositories/bench/app/triggers/" + h.trigger + "/records?page_size=20"
		} else {
			path = r.path(size)
		}
		var lat []time.Duration
		for i := range *reads + 5 {
			req, _ := http.NewRequest("GET", b.url+path, nil)
			c := b.console
			if !r.console {
				req.SetBasicAuth("admin", password)
				c = b.client
			}
			start := time.Now()
			resp, err := c.Do(req)
			if err != nil {
				return nil, err
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			took := time.Since(start)
			if resp.StatusCode != 200 {
				return nil, fmt.Errorf("%s: %d %s", path, resp.StatusCode, body)
			}
			if i == 0 && !r.console && bytes.Contains(body, []byte(`"items":[]`)) {
				return nil, fmt.Errorf("%s: an empty page at %d", path, size)
			}
			if i >= 5 { // the first few warm connections and caches
				lat = append(lat, took)
			}
		}
		slices.Sort(lat)
		q := func(p float64) time.Duration { return lat[min(len(lat)-1, int(p*float64(len(lat))+0.5)-1)] }
		out[r.name] = stat{q(0.50), q(0.99)}
	}
	return out, nil
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }
