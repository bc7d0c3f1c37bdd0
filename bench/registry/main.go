// Command registry benchmarks Berth's registry against distribution/distribution
// v3 on loopback, in one process, one after the other, with the same client:
//
//	cd bench/registry && go run .
//	cd bench/registry && go run . -smoke   # seconds: the test command runs this (bench/smoke_test.go)
//
// A third target is the product: `berth serve` built from this checkout and run as its own process on its
// embedded defaults (store, RAM policies, security gate, token auth from its /token service); its rows are
// printed beside distribution's after the main table.
//
// The registries take turns going first, run by run; the table gives medians (and bests) per row with
// the ratio, and the limit of one stream on this machine: Go's sha256 throughput (best of three).
//
// Rows: 256 MiB blob push (POST, one streamed PATCH, PUT ?digest=) in MB/s,
// 256 MiB blob pull in MB/s, and manifest-by-tag GET at 32 concurrent clients
// (req/s and p99 latency). Berth runs with token auth on: the client sends a
// pre-issued bearer token on every request, so token verification is part of
// its numbers; distribution runs with auth off, its filesystem driver, the
// in-memory blob descriptor cache, logging at error level and no access log
// or tracing (its cheapest setup).
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry/handlers"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/filesystem"
	"github.com/sirupsen/logrus"

	"github.com/berth-dev/berth/registry"
	"github.com/berth-dev/berth/registry/registrytest"
)

type target struct {
	name  string
	base  string // http://127.0.0.1:port
	token string // bearer token, or ""
	stop  func()
}

type result struct {
	pushMBs, pullMBs float64 // best run
	pushes, pulls    []float64
	rps              float64
	p99              time.Duration
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	return s[len(s)/2]
}

var client = &http.Client{Transport: &http.Transport{
	MaxIdleConnsPerHost: 128,
	DisableCompression:  true,
	ReadBufferSize:      256 << 10,
	WriteBufferSize:     256 << 10,
}}

const repo = "bench/app"

var only string

func main() {
	sizeMiB := flag.Int("size", 256, "blob size in MiB")
	runs := flag.Int("runs", 5, "push/pull repetitions (best is reported)")
	clients := flag.Int("clients", 32, "concurrent manifest clients")
	dur := flag.Duration("duration", 5*time.Second, "manifest GET measuring time per registry")
	dir := flag.String("dir", "", "storage directory (default: a temporary one)")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the whole run")
	flag.StringVar(&only, "only", "", `run one registry only ("Berth" or "distribution"), for profiling`)
	smoke := flag.Bool("smoke", false, "an 8 MiB blob, one run, short manifest load: checks the bench still runs (the test command)")
	flag.Parse()
	if *smoke {
		*sizeMiB, *runs, *clients, *dur = 8, 1, 4, 500*time.Millisecond
	}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	if err := run(*sizeMiB, *runs, *clients, *dur, *dir); err != nil {
		pprof.StopCPUProfile()
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(sizeMiB, runs, clients int, dur time.Duration, dir string) error {
	if dir == "" {
		d, err := os.MkdirTemp("", "registry-bench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	berth, err := startBerth(filepath.Join(dir, "berth"))
	if err != nil {
		return err
	}
	defer berth.stop()
	dist, err := startDistribution(filepath.Join(dir, "distribution"))
	if err != nil {
		return err
	}
	defer dist.stop()
	serve, err := startBerthServe(filepath.Join(dir, "serve"))
	if err != nil {
		return err
	}
	defer serve.stop()
	targets := []*target{berth, dist, serve}
	if only != "" {
		targets = slices.DeleteFunc(targets, func(t *target) bool { return t.name != only })
	}
	res := map[string]*result{berth.name: {}, dist.name: {}, serve.name: {}}

	fmt.Printf("GOMAXPROCS=%d, blob %d MiB, %d runs, %d manifest clients for %s\n", runtime.GOMAXPROCS(0), sizeMiB, runs, clients, dur)
	blob := make([]byte, sizeMiB<<20)
	if _, err := rand.Read(blob); err != nil {
		return err
	}
	mb := float64(len(blob)) / 1e6
	// The limit of one stream: a registry must hash every byte it receives (and verify what it serves).
	var sha float64
	for range 3 { // best of three: the limit, not this moment's share of the CPU
		start := time.Now()
		_ = digestOf(blob)
		sha = max(sha, mb/time.Since(start).Seconds())
	}
	fmt.Printf("  Go sha256 on this machine: %.0f MB/s (one core, best of 3)\n", sha)
	for i := range runs {
		order := slices.Clone(targets)
		if i%2 == 1 { // alternate who goes first: page cache and CPU frequency favour neither
			slices.Reverse(order)
		}
		for _, t := range order {
			// distinct content per run so nothing is deduplicated
			copy(blob, fmt.Sprintf("%-8s%08d", t.name[:min(8, len(t.name))], i))
			dg := digestOf(blob)
			syscall.Sync() // start each push with no dirty pages from the last one
			runtime.GC()
			cpu0 := cpuTime()
			start := time.Now()
			if err := pushBlob(t, blob, dg); err != nil {
				return fmt.Errorf("%s push: %w", t.name, err)
			}
			push := mb / time.Since(start).Seconds()
			pushCPU := cpuTime() - cpu0
			runtime.GC()
			cpu0 = cpuTime()
			start = time.Now()
			if err := pullBlob(t, dg, int64(len(blob))); err != nil {
				return fmt.Errorf("%s pull: %w", t.name, err)
			}
			pull := mb / time.Since(start).Seconds()
			pullCPU := cpuTime() - cpu0
			r := res[t.name]
			r.pushMBs, r.pullMBs = max(r.pushMBs, push), max(r.pullMBs, pull)
			r.pushes, r.pulls = append(r.pushes, push), append(r.pulls, pull)
			fmt.Printf("  run %d %-13s push %7.0f MB/s (cpu %4dms)  pull %7.0f MB/s (cpu %4dms)\n", i+1, t.name, push, pushCPU.Milliseconds(), pull, pullCPU.Milliseconds())
		}
	}
	if clients == 0 || only != "" {
		for _, t := range targets {
			r := res[t.name]
			fmt.Printf("%s: push %.0f MB/s, pull %.0f MB/s\n", t.name, r.pushMBs, r.pullMBs)
		}
		if clients == 0 {
			return nil
		}
	}
	for _, t := range targets {
		if err := pushImage(t); err != nil {
			return fmt.Errorf("%s image: %w", t.name, err)
		}
	}
	for round := range 2 { // two rounds, alternating, best kept
		for _, t := range targets {
			runtime.GC()
			rps, p99, err := manifestLoad(t, clients, dur)
			if err != nil {
				return fmt.Errorf("%s manifests: %w", t.name, err)
			}
			fmt.Printf("  round %d %-13s manifest GET %8.0f req/s  p99 %v\n", round+1, t.name, rps, p99)
			r := res[t.name]
			if rps > r.rps {
				r.rps, r.p99 = rps, p99
			}
		}
	}
	if only != "" {
		return nil
	}
	b, d, sv := res[berth.name], res[dist.name], res[serve.name]
	defer func() {
		fmt.Printf("\nberth serve (a separate process: embedded store, RAM policies, security gate, token auth) vs distribution:\n")
		fmt.Printf("| %-44s | %12s | %12s | %10s |\n", "metric", "berth serve", "distribution", "serve/dist")
		fmt.Printf("|%s|%s|%s|%s|\n", dashes(46), dashes(14), dashes(14), dashes(12))
		fmt.Printf("| %-44s | %12.0f | %12.0f | %9.2fx |\n", fmt.Sprintf("%d MiB blob push, median (MB/s)", sizeMiB), median(sv.pushes), median(d.pushes), median(sv.pushes)/median(d.pushes))
		fmt.Printf("| %-44s | %12.0f | %12.0f | %9.2fx |\n", fmt.Sprintf("%d MiB blob pull, median (MB/s)", sizeMiB), median(sv.pulls), median(d.pulls), median(sv.pulls)/median(d.pulls))
		fmt.Printf("| %-44s | %12.0f | %12.0f | %9.2fx |\n", fmt.Sprintf("manifest GET by tag, %d clients (req/s)", clients), sv.rps, d.rps, sv.rps/d.rps)
		fmt.Printf("| %-44s | %12s | %12s | %9.2fx |\n", fmt.Sprintf("manifest GET p99 latency, %d clients", clients), sv.p99.Round(time.Microsecond), d.p99.Round(time.Microsecond), float64(d.p99)/float64(sv.p99))
		fmt.Println("(distribution still runs in this process, auth off; neither side fsyncs blobs yet)")
	}()
	fmt.Println()
	fmt.Printf("| %-44s | %12s | %12s | %10s |\n", "metric", "Berth", "distribution", "Berth/dist")
	fmt.Printf("|%s|%s|%s|%s|\n", dashes(46), dashes(14), dashes(14), dashes(12))
	fmt.Printf("| %-44s | %12.0f | %12.0f | %9.2fx |\n", fmt.Sprintf("%d MiB blob push, median (MB/s)", sizeMiB), median(b.pushes), median(d.pushes), median(b.pushes)/median(d.pushes))
	fmt.Printf("| %-44s | %12.0f | %12.0f | %9.2fx |\n", fmt.Sprintf("%d MiB blob pull, median (MB/s)", sizeMiB), median(b.pulls), median(d.pulls), median(b.pulls)/median(d.pulls))
	fmt.Printf("| %-44s | %12.0f | %12.0f | %9.2fx |\n", fmt.Sprintf("%d MiB blob push, best (MB/s)", sizeMiB), b.pushMBs, d.pushMBs, b.pushMBs/d.pushMBs)
	fmt.Printf("| %-44s | %12.0f | %12.0f | %9.2fx |\n", fmt.Sprintf("%d MiB blob pull, best (MB/s)", sizeMiB), b.pullMBs, d.pullMBs, b.pullMBs/d.pullMBs)
	fmt.Printf("| %-44s | %12.0f | %12.0f | %10s |\n", "limit: Go sha256 of one stream (MB/s)", sha, sha, "")
	fmt.Printf("| %-44s | %12.0f | %12.0f | %9.2fx |\n", fmt.Sprintf("manifest GET by tag, %d clients (req/s)", clients), b.rps, d.rps, b.rps/d.rps)
	fmt.Printf("| %-44s | %12s | %12s | %9.2fx |\n", fmt.Sprintf("manifest GET p99 latency, %d clients", clients), b.p99.Round(time.Microsecond), d.p99.Round(time.Microsecond), float64(d.p99)/float64(b.p99))
	fmt.Println("(manifest rows: best of two rounds; the latency ratio is distribution p99 / Berth p99, above 1 means Berth is faster;")
	fmt.Println(" Berth numbers include bearer-token verification on every request)")
	return nil
}

// cpuTime is the process's user+system CPU time (client and servers alike).
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func dashes(n int) string { return string(bytes.Repeat([]byte("-"), n)) }

func digestOf(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

func startBerth(root string) (*target, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	base := "http://" + ln.Addr().String()
	reg, err := registry.New(registry.Config{
		RootDir:   root,
		PublicURL: base,
		Logger:    slog.New(slog.DiscardHandler),
	}, registrytest.AllowAll{}, registry.NopHooks{})
	if err != nil {
		return nil, err
	}
	tok, err := reg.IssueToken(registry.Subject{Name: "bench"}, []registry.Access{{Type: "repository", Name: repo, Actions: []string{"pull", "push"}}}, time.Hour)
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: reg}
	go srv.Serve(ln)
	return &target{name: "Berth", base: base, token: tok, stop: func() { srv.Close(); reg.Close() }}, nil
}

// startBerthServe builds cmd/berth from this checkout and runs `berth serve` as users do, on its embedded
// defaults in root, with a namespace "bench" whose repositories are made on push; the target carries a bearer
// token from Berth's /token service for the administrator.
func startBerthServe(root string) (*target, error) {
	bin := filepath.Join(root, "berth")
	build := exec.Command("go", "build", "-o", bin, "./cmd/berth")
	build.Dir = filepath.Join("..", "..")
	if out, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build ./cmd/berth: %v\n%s", err, out)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	const password = "bench-admin-password"
	cmd := exec.Command(bin, "serve", "--data-dir", filepath.Join(root, "data"), "--addr", addr, "--log-level", "error")
	cmd.Env = append(os.Environ(), "BERTH_ADMIN_PASSWORD="+password)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	stop := func() { _ = cmd.Process.Signal(syscall.SIGTERM); _ = cmd.Wait() }
	base := "http://" + addr
	fail := func(err error) (*target, error) { stop(); return nil, err }
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			return fail(fmt.Errorf("berth serve not ready within 60s: %v", err))
		}
		time.Sleep(50 * time.Millisecond)
	}
	req, _ := http.NewRequest("POST", base+"/api/v1/namespaces", strings.NewReader(`{"name":"bench","auto_create_repo":true}`))
	req.SetBasicAuth("admin", password)
	req.Header.Set("Content-Type", "application/json")
	nsResp, err := http.DefaultClient.Do(req)
	if err := expectStatus(nsResp, err, http.StatusCreated); err != nil {
		return fail(err)
	}
	// The token a client gets after the registry's challenge.
	resp, err := http.Get(base + "/v2/")
	if err != nil {
		return fail(err)
	}
	resp.Body.Close()
	ch := resp.Header.Get("WWW-Authenticate")
	realm, service := challengeParam(ch, "realm"), challengeParam(ch, "service")
	if realm == "" {
		return fail(fmt.Errorf("no bearer challenge from berth serve: %q", ch))
	}
	q := url.Values{"service": {service}, "scope": {"repository:" + repo + ":pull,push"}}
	req, _ = http.NewRequest("GET", realm+"?"+q.Encode(), nil)
	req.SetBasicAuth("admin", password)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		return fail(err)
	}
	defer resp.Body.Close()
	var tok struct {
		Token string `json:"token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil || tok.Token == "" {
		return fail(fmt.Errorf("token from %s: %s %v", realm, resp.Status, err))
	}
	return &target{name: "berth serve", base: base, token: tok.Token, stop: stop}, nil
}

// challengeParam reads one parameter of a `Bearer realm="…",service="…"` challenge.
func challengeParam(ch, key string) string {
	i := strings.Index(ch, key+`="`)
	if i < 0 {
		return ""
	}
	rest := ch[i+len(key)+2:]
	if j := strings.IndexByte(rest, '"'); j >= 0 {
		return rest[:j]
	}
	return ""
}

func startDistribution(root string) (*target, error) {
	logrus.SetLevel(logrus.ErrorLevel)
	logrus.SetOutput(io.Discard)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	cfg := &configuration.Configuration{}
	cfg.Log.Level = "error"
	cfg.Log.AccessLog.Disabled = true
	cfg.Storage = configuration.Storage{
		"filesystem":  configuration.Parameters{"rootdirectory": root},
		"cache":       configuration.Parameters{"blobdescriptor": "inmemory"},
		"delete":      configuration.Parameters{"enabled": true},
		"maintenance": configuration.Parameters{"uploadpurging": map[any]any{"enabled": false}},
	}
	app := handlers.NewApp(context.Background(), cfg)
	srv := &http.Server{Handler: app}
	go srv.Serve(ln)
	return &target{name: "distribution", base: "http://" + ln.Addr().String(), stop: func() { srv.Close() }}, nil
}

func (t *target) req(method, u string, body io.Reader, n int64) (*http.Request, error) {
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.ContentLength = n
	}
	if t.token != "" {
		req.Header.Set("Authorization", "Bearer "+t.token)
	}
	return req, nil
}

func (t *target) resolve(loc string) (string, error) {
	b, _ := url.Parse(t.base)
	l, err := url.Parse(loc)
	if err != nil {
		return "", err
	}
	return b.ResolveReference(l).String(), nil
}

func expectStatus(resp *http.Response, err error, want int) error {
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != want {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("%s %s: status %d: %s", resp.Request.Method, resp.Request.URL.Path, resp.StatusCode, b)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	return nil
}

// pushBlob uploads like docker push: POST, one streamed PATCH, PUT ?digest=.
func pushBlob(t *target, blob []byte, dg string) error {
	req, _ := t.req("POST", t.base+"/v2/"+repo+"/blobs/uploads/", nil, 0)
	resp, err := client.Do(req)
	if err := expectStatus(resp, err, http.StatusAccepted); err != nil {
		return err
	}
	loc, err := t.resolve(resp.Header.Get("Location"))
	if err != nil {
		return err
	}
	req, _ = t.req("PATCH", loc, bytes.NewReader(blob), int64(len(blob)))
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err = client.Do(req)
	if err := expectStatus(resp, err, http.StatusAccepted); err != nil {
		return err
	}
	loc, err = t.resolve(resp.Header.Get("Location"))
	if err != nil {
		return err
	}
	u, _ := url.Parse(loc)
	q := u.Query()
	q.Set("digest", dg)
	u.RawQuery = q.Encode()
	req, _ = t.req("PUT", u.String(), nil, 0)
	resp, err = client.Do(req)
	return expectStatus(resp, err, http.StatusCreated)
}

func pullBlob(t *target, dg string, size int64) error {
	req, _ := t.req("GET", t.base+"/v2/"+repo+"/blobs/"+dg, nil, 0)
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	buf := make([]byte, 1<<20)
	n, err := io.CopyBuffer(struct{ io.Writer }{io.Discard}, struct{ io.Reader }{resp.Body}, buf)
	if err != nil {
		return err
	}
	if n != size {
		return fmt.Errorf("got %d bytes, want %d", n, size)
	}
	return nil
}

func pushSmall(t *target, b []byte) (string, error) {
	dg := digestOf(b)
	req, _ := t.req("POST", t.base+"/v2/"+repo+"/blobs/uploads/", nil, 0)
	resp, err := client.Do(req)
	if err := expectStatus(resp, err, http.StatusAccepted); err != nil {
		return "", err
	}
	loc, _ := t.resolve(resp.Header.Get("Location"))
	u, _ := url.Parse(loc)
	q := u.Query()
	q.Set("digest", dg)
	u.RawQuery = q.Encode()
	req, _ = t.req("PUT", u.String(), bytes.NewReader(b), int64(len(b)))
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err = client.Do(req)
	return dg, expectStatus(resp, err, http.StatusCreated)
}

// pushImage pushes a typical small image manifest (config + 5 layers) as :latest.
func pushImage(t *target) error {
	type desc struct {
		MediaType string `json:"mediaType"`
		Digest    string `json:"digest"`
		Size      int    `json:"size"`
	}
	config := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},"config":{}}`)
	cd, err := pushSmall(t, config)
	if err != nil {
		return err
	}
	m := struct {
		SchemaVersion int    `json:"schemaVersion"`
		MediaType     string `json:"mediaType"`
		Config        desc   `json:"config"`
		Layers        []desc `json:"layers"`
	}{2, "application/vnd.oci.image.manifest.v1+json", desc{"application/vnd.oci.image.config.v1+json", cd, len(config)}, nil}
	for i := range 5 {
		l := []byte(fmt.Sprintf("layer %d of the bench image", i))
		ld, err := pushSmall(t, l)
		if err != nil {
			return err
		}
		m.Layers = append(m.Layers, desc{"application/vnd.oci.image.layer.v1.tar+gzip", ld, len(l)})
	}
	body, _ := json.Marshal(m)
	req, _ := t.req("PUT", t.base+"/v2/"+repo+"/manifests/latest", bytes.NewReader(body), int64(len(body)))
	req.Header.Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
	resp, err := client.Do(req)
	return expectStatus(resp, err, http.StatusCreated)
}

// manifestLoad runs clients goroutines of GET /manifests/latest for dur
// (after a short warm-up) and returns req/s and the p99 latency.
func manifestLoad(t *target, clients int, dur time.Duration) (float64, time.Duration, error) {
	u := t.base + "/v2/" + repo + "/manifests/latest"
	var (
		measuring atomic.Bool
		stop      atomic.Bool
		wg        sync.WaitGroup
		mu        sync.Mutex
		all       []time.Duration
		firstErr  error
	)
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lat := make([]time.Duration, 0, 1<<16)
			buf := make([]byte, 4096)
			for !stop.Load() {
				req, _ := t.req("GET", u, nil, 0)
				req.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json")
				start := time.Now()
				resp, err := client.Do(req)
				if err == nil {
					for {
						if _, rerr := resp.Body.Read(buf); rerr != nil {
							break
						}
					}
					resp.Body.Close()
					if resp.StatusCode != 200 {
						err = fmt.Errorf("status %d", resp.StatusCode)
					}
				}
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					stop.Store(true)
					return
				}
				if measuring.Load() {
					lat = append(lat, time.Since(start))
				}
			}
			mu.Lock()
			all = append(all, lat...)
			mu.Unlock()
		}()
	}
	time.Sleep(time.Second) // warm-up: connections, caches
	measuring.Store(true)
	start := time.Now()
	time.Sleep(dur)
	measuring.Store(false)
	elapsed := time.Since(start)
	stop.Store(true)
	wg.Wait()
	if firstErr != nil {
		return 0, 0, firstErr
	}
	if len(all) == 0 {
		return 0, 0, fmt.Errorf("no requests completed")
	}
	slices.Sort(all)
	return float64(len(all)) / elapsed.Seconds(), all[len(all)*99/100], nil
}
