// Command registry benchmarks the product, `berth serve` built from this checkout, against
// distribution/distribution v3, each its own process on loopback, with the same clients:
//
//	cd bench/registry && go run .
//	cd bench/registry && go run . -smoke   # about a minute: the test command runs this (bench/smoke_test.go)
//
// Targets, started side by side and measured in turn (the order reversed run by run; tables give medians):
//
//   - Berth fs: `berth serve` as users run it on its embedded defaults (store, queue, RAM policies, security
//     gate, token auth), blobs on its filesystem driver (a file is fsynced before its rename, the directory after).
//   - Berth S3: the same with --s3-* on versitygw v1.8.0 (posix backend, the S3 server of the tests).
//   - Berth S3, 2 replicas: two `berth serve` on one store (FerretDB), one redis-server and one bucket; the
//     client alternates them (a blob is pushed through one and pulled from the other; manifest clients split).
//   - distribution: cmd/distribution-fsync, distribution v3 on its filesystem driver with the same fsyncs as
//     Berth's, auth off, its cheapest setup.
//
// Rows: a blob pushed as one stream (POST, one streamed PATCH, PUT ?digest=) and pulled, in MB/s; the same
// volume as 4 blobs pushed and pulled at once; manifest GET by tag at 32 clients (req/s, p99); crane and
// skopeo pushing and pulling an 8-layer image (Berth fs and distribution); and the limit of one stream on this
// machine, Go's sha256 throughput (best of three). Berth's clients authenticate as users do: the raw client
// sends a bearer token from each replica's /token service, crane and skopeo log in with a password.
package main

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

type config struct {
	sizeMiB, streams, runs, clients, rounds, layers, layerKiB int
	dur                                                       time.Duration
	dir, only                                                 string
	// berthSrc is the source tree berth is built from; berthArgs are added to every `berth serve`: compare a
	// change with the commit before it (git archive it to a directory) or with a flag on and off.
	berthSrc  string
	berthArgs []string
}

func main() {
	var c config
	flag.IntVar(&c.sizeMiB, "size", 256, "MiB pushed and pulled per run: one blob, then as -streams blobs at once")
	flag.IntVar(&c.streams, "streams", 4, "concurrent blob streams of the parallel rows")
	flag.IntVar(&c.runs, "runs", 5, "repetitions of the push/pull and crane/skopeo rows (medians are reported)")
	flag.IntVar(&c.clients, "clients", 32, "concurrent manifest clients")
	flag.DurationVar(&c.dur, "duration", 5*time.Second, "manifest GET measuring time per round")
	flag.IntVar(&c.rounds, "rounds", 3, "manifest GET rounds per target (median reported)")
	flag.IntVar(&c.layers, "layers", 8, "layers of the crane/skopeo image")
	flag.IntVar(&c.layerKiB, "layer-kib", 32<<10, "KiB per layer of the crane/skopeo image")
	flag.StringVar(&c.dir, "dir", "", "working directory (default: a temporary one, removed at the end)")
	flag.StringVar(&c.only, "only", "", `targets to run, comma-separated name prefixes of "berth-fs,berth-s3,berth-s3x2,distribution" (default all)`)
	flag.StringVar(&c.berthSrc, "berth-src", filepath.Join("..", ".."), "source tree `berth serve` is built from (e.g. an older commit, `git archive REV | tar -x -C DIR`)")
	berthArgs := flag.String("berth-args", "", "extra arguments of every `berth serve`, space-separated (e.g. --audit-pulls)")
	smoke := flag.Bool("smoke", false, "tiny sizes, one run, short loads: checks every path of the bench still works (the test command)")
	flag.Parse()
	c.berthArgs = strings.Fields(*berthArgs)
	if *smoke {
		c.sizeMiB, c.runs, c.clients, c.dur, c.rounds, c.layerKiB = 8, 1, 4, 300*time.Millisecond, 1, 256
	}
	if err := run(c); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// pushClients push manifests at once in the manifest PUT rows.
const pushClients = 4

// Target keys, in table order.
const (
	keyFS     = "berth-fs"
	keyS3     = "berth-s3"
	keyS3x2   = "berth-s3x2"
	keyDistFS = "distribution"
)

var allKeys = []string{keyFS, keyS3, keyS3x2, keyDistFS}

func selected(only, key string) bool {
	if only == "" {
		return true
	}
	for _, p := range strings.Split(only, ",") {
		if p = strings.ToLower(strings.TrimSpace(p)); p != "" && strings.HasPrefix(key, p) {
			return true
		}
	}
	return false
}

// results holds each target's measurements: metric → one value per run or round.
type results map[string]map[string][]float64

func (r results) add(key, metric string, v float64) {
	if r[key] == nil {
		r[key] = map[string][]float64{}
	}
	r[key][metric] = append(r[key][metric], v)
}

func (r results) median(key, metric string) float64 {
	s := slices.Clone(r[key][metric])
	if len(s) == 0 {
		return math.NaN()
	}
	slices.Sort(s)
	return s[len(s)/2]
}

func run(c config) error {
	if c.dir == "" {
		d, err := os.MkdirTemp("", "registry-bench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		c.dir = d
	}
	var keys []string
	for _, k := range allKeys {
		if selected(c.only, k) {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return fmt.Errorf("-only %q selects no target of %s", c.only, strings.Join(allKeys, ","))
	}
	fmt.Printf("GOMAXPROCS=%d, %d MiB per run (1 stream, then %d), %d runs, %d manifest clients × %d rounds of %s, image %d × %d KiB\n",
		runtime.GOMAXPROCS(0), c.sizeMiB, c.streams, c.runs, c.clients, c.rounds, c.dur, c.layers, c.layerKiB)

	random := make([]byte, c.sizeMiB<<20)
	if _, err := rand.Read(random); err != nil {
		return err
	}
	mb := float64(len(random)) / 1e6
	// The limit of one stream: a registry must hash every byte it receives (and verify what it serves).
	var sha float64
	for range 3 { // best of three: the limit, not this moment's share of the CPU
		start := time.Now()
		_ = digestOf(random)
		sha = max(sha, mb/time.Since(start).Seconds())
	}
	fmt.Printf("  Go sha256 on this machine: %.0f MB/s (one core, best of 3)\n", sha)
	fmt.Printf("  load average at the start: %s\n", loadAvg())

	var st stack
	defer st.stopAll()
	began := time.Now()
	targets, err := startTargets(&st, c, keys)
	if err != nil {
		return err
	}
	fmt.Printf("  built and started in %s\n", time.Since(began).Round(100*time.Millisecond))
	res := results{}

	// Blobs: one stream, then the same volume as c.streams blobs at once.
	part := len(random) / c.streams
	for i := range c.runs {
		order := slices.Clone(keys)
		if i%2 == 1 { // alternate who goes first: page cache and CPU frequency favour none
			slices.Reverse(order)
		}
		for _, k := range order {
			t := targets[k]
			if err := t.login(); err != nil { // a fresh token each run: they expire
				return err
			}
			stamp := func(b []byte, s int) string { // distinct content per target, run and stream: nothing deduplicated
				copy(b, fmt.Sprintf("%-12s%04d%04d", k, i, s))
				return digestOf(b)
			}
			dg := stamp(random, 99)
			syscall.Sync() // start each push with no dirty pages from the last one
			runtime.GC()
			cpu0 := t.cpu()
			start := time.Now()
			if err := pushBlob(t, i, random, dg); err != nil {
				return fmt.Errorf("%s push: %w", k, err)
			}
			push := mb / time.Since(start).Seconds()
			cpu1 := t.cpu()
			start = time.Now()
			if err := pullBlob(t, i+1, dg, int64(len(random))); err != nil { // from the other replica, if any
				return fmt.Errorf("%s pull: %w", k, err)
			}
			pull := mb / time.Since(start).Seconds()
			cpu2 := t.cpu()
			res.add(k, "push1", push)
			res.add(k, "pull1", pull)
			res.add(k, "push1cpu", float64(cpu1-cpu0)/1e6)
			res.add(k, "pull1cpu", float64(cpu2-cpu1)/1e6)

			blobs, dgs := make([][]byte, c.streams), make([]string, c.streams)
			for s := range c.streams {
				blobs[s] = random[s*part : (s+1)*part]
				dgs[s] = stamp(blobs[s], s)
			}
			syscall.Sync()
			runtime.GC()
			start = time.Now()
			if err := parallel(c.streams, func(s int) error { return pushBlob(t, i+s, blobs[s], dgs[s]) }); err != nil {
				return fmt.Errorf("%s parallel push: %w", k, err)
			}
			pushN := mb / time.Since(start).Seconds()
			start = time.Now()
			if err := parallel(c.streams, func(s int) error { return pullBlob(t, i+s+1, dgs[s], int64(part)) }); err != nil {
				return fmt.Errorf("%s parallel pull: %w", k, err)
			}
			pullN := mb / time.Since(start).Seconds()
			res.add(k, "pushN", pushN)
			res.add(k, "pullN", pullN)
			fmt.Printf("  run %d %-13s push %5.0f MB/s (server cpu %5dms)  pull %5.0f MB/s (%4dms)   %d streams: push %5.0f MB/s  pull %5.0f MB/s\n",
				i+1, k, push, (cpu1 - cpu0).Milliseconds(), pull, (cpu2 - cpu1).Milliseconds(), c.streams, pushN, pullN)
		}
	}

	// Manifests by tag.
	manifests := map[string][]byte{}
	for _, k := range keys {
		if err := targets[k].login(); err != nil {
			return err
		}
		m, err := pushImage(targets[k])
		if err != nil {
			return fmt.Errorf("%s image: %w", k, err)
		}
		manifests[k] = m
	}
	for round := range c.rounds {
		order := slices.Clone(keys)
		if round%2 == 1 {
			slices.Reverse(order)
		}
		for _, k := range order {
			if err := targets[k].login(); err != nil {
				return err
			}
			runtime.GC()
			rps, p99, cpu, err := manifestLoad(targets[k], c.clients, c.dur, nil)
			if err != nil {
				return fmt.Errorf("%s manifests: %w", k, err)
			}
			res.add(k, "rps", rps)
			res.add(k, "p99", float64(p99)/1e6)
			res.add(k, "getcpu", float64(cpu)/1e6)
			fmt.Printf("  round %d %-13s manifest GET %7.0f req/s  p99 %v  server CPU %v/req\n", round+1, k, rps, p99.Round(time.Microsecond), cpu)
			// Pushes by tag, at a few clients: each records a version (and a scan, and an audit entry).
			prps, pp99, pcpu, err := manifestLoad(targets[k], pushClients, c.dur, manifests[k])
			if err != nil {
				return fmt.Errorf("%s manifest pushes: %w", k, err)
			}
			res.add(k, "putrps", prps)
			res.add(k, "putp99", float64(pp99)/1e6)
			res.add(k, "putcpu", float64(pcpu)/1e6)
			fmt.Printf("  round %d %-13s manifest PUT %7.0f req/s  p99 %v  server CPU %v/req\n", round+1, k, prps, pp99.Round(time.Microsecond), pcpu)
		}
	}

	// crane and skopeo: the product against distribution, on the filesystem.
	var toolKeys []string
	for _, k := range []string{keyFS, keyDistFS} {
		if targets[k] != nil {
			toolKeys = append(toolKeys, k)
		}
	}
	if len(toolKeys) > 0 {
		var tts []*target
		for _, k := range toolKeys {
			tts = append(tts, targets[k])
		}
		tools, err := newTools(c.dir, tts)
		if err != nil {
			return err
		}
		for i := range c.runs {
			order := slices.Clone(toolKeys)
			if i%2 == 1 {
				slices.Reverse(order)
			}
			for _, k := range order {
				for _, tc := range tools {
					if err := measureTool(c, res, tc, targets[k], k, i, random); err != nil {
						return err
					}
				}
			}
		}
	}

	fmt.Printf("  measured in %s; load average at the end: %s\n", time.Since(began).Round(100*time.Millisecond), loadAvg())
	printTables(c, res, sha)
	return nil
}

// startTargets builds berth and distribution-fsync and starts the selected targets side by side.
func startTargets(st *stack, c config, keys []string) (map[string]*target, error) {
	dir := c.dir
	has := func(k string) bool { return slices.Contains(keys, k) }
	// Binaries go to a lasting directory: go build links again only when the sources changed.
	bins, err := os.UserCacheDir()
	if err != nil {
		bins = os.TempDir()
	}
	bins = filepath.Join(bins, "berth-bench-registry")
	berthBin, distBin := filepath.Join(bins, "berth"), filepath.Join(bins, "distribution-fsync")
	if src, _ := filepath.Abs(c.berthSrc); src != mustAbs(filepath.Join("..", "..")) {
		sum := sha256.Sum256([]byte(src))
		berthBin += "-" + hex.EncodeToString(sum[:4]) // another tree, another binary
	}
	var berthErr, distErr error
	var wg sync.WaitGroup
	if has(keyFS) || has(keyS3) || has(keyS3x2) {
		wg.Go(func() { berthErr = goBuild(c.berthSrc, "./cmd/berth", berthBin) })
	}
	if has(keyDistFS) {
		wg.Go(func() { distErr = goBuild(".", "./cmd/distribution-fsync", distBin) })
	}
	wg.Wait()
	if berthErr != nil || distErr != nil {
		return nil, fmt.Errorf("build: %w", errors.Join(berthErr, distErr))
	}

	var mu sync.Mutex
	targets := map[string]*target{}
	var errs []error
	start := func(k string, f func() (*target, error)) {
		wg.Go(func() {
			t, err := f()
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", k, err))
				return
			}
			targets[k] = t
		})
	}
	if has(keyDistFS) {
		start(keyDistFS, func() (*target, error) { return st.startDistribution(distBin, filepath.Join(dir, keyDistFS)) })
	}
	if has(keyFS) {
		start(keyFS, func() (*target, error) {
			return st.startBerth(keyFS, berthBin, filepath.Join(dir, keyFS), 1, nil, c.berthArgs...)
		})
	}
	if has(keyS3) || has(keyS3x2) {
		srv, s3pid, err := st.startS3(filepath.Join(dir, "s3"))
		if err != nil {
			wg.Wait()
			return nil, fmt.Errorf("versitygw: %w", err)
		}
		if has(keyS3) {
			start(keyS3, func() (*target, error) {
				if err := createBucket(srv, "bench-one"); err != nil {
					return nil, err
				}
				env, args := s3Args(srv, "bench-one")
				args = append(args, c.berthArgs...)
				t, err := st.startBerth(keyS3, berthBin, filepath.Join(dir, keyS3), 1, env, args...)
				if t != nil {
					t.pids = append(t.pids, s3pid)
				}
				return t, err
			})
		}
		if has(keyS3x2) {
			start(keyS3x2, func() (*target, error) {
				if err := createBucket(srv, "bench-two"); err != nil {
					return nil, err
				}
				mongo, redis, err := st.startShared(filepath.Join(dir, keyS3x2, "shared"))
				if err != nil {
					return nil, err
				}
				env, args := s3Args(srv, "bench-two")
				args = append(args, c.berthArgs...)
				t, err := st.startBerth(keyS3x2, berthBin, filepath.Join(dir, keyS3x2), 2, env, append(args, "--mongo-uri", mongo, "--redis-addr", redis)...)
				if t != nil {
					t.pids = append(t.pids, s3pid)
				}
				return t, err
			})
		}
	}
	wg.Wait()
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return targets, nil
}

// measureTool pushes a new image with tc to t and pulls it back, timing each.
func measureTool(c config, res results, tc *toolClient, t *target, k string, i int, random []byte) error {
	tag := fmt.Sprintf("%s-%d", tc.name, i)
	src := filepath.Join(c.dir, "image-"+tag)
	dst := filepath.Join(c.dir, "pulled-"+tag)
	defer os.RemoveAll(src)
	defer os.RemoveAll(dst)
	img, err := writeImage(src, tag, k+" "+tag, c.layers, c.layerKiB<<10, random)
	if err != nil {
		return err
	}
	mb := float64(img.bytes) / 1e6
	syscall.Sync()
	start := time.Now()
	if err := tc.push(t, img); err != nil {
		return fmt.Errorf("%s: %w", k, err)
	}
	push := mb / time.Since(start).Seconds()
	start = time.Now()
	if err := tc.pull(t, img, dst); err != nil {
		return fmt.Errorf("%s: %w", k, err)
	}
	pull := mb / time.Since(start).Seconds()
	res.add(k, tc.name+" push", push)
	res.add(k, tc.name+" pull", pull)
	fmt.Printf("  run %d %-13s %-6s push %5.0f MB/s  pull %5.0f MB/s  (%d layers, %.0f MB)\n", i+1, k, tc.name, push, pull, len(img.layers), mb)
	return nil
}

// loadAvg is the 1, 5 and 15 minute load averages (other jobs on the machine skew the figures).
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) >= 3 {
		return strings.Join(f[:3], " ") + fmt.Sprintf(" (%d CPUs)", runtime.NumCPU())
	}
	return "unknown"
}

func digestOf(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

// row is a metric of a table.
type row struct {
	label, metric string
	latency       bool // lower is better; printed in ms
}

func cell(v float64, latency bool) string {
	switch {
	case math.IsNaN(v):
		return "–"
	case latency && v < 1:
		return fmt.Sprintf("%.3f ms", v)
	case latency:
		return fmt.Sprintf("%.1f ms", v)
	}
	return fmt.Sprintf("%.0f", v)
}

// ratio is how many times faster a is than b (above 1: a is faster), latency rows included.
func ratio(a, b float64, latency bool) string {
	if math.IsNaN(a) || math.IsNaN(b) || a == 0 || b == 0 {
		return "–"
	}
	if latency {
		a, b = b, a
	}
	return fmt.Sprintf("%.2f×", a/b)
}

func printTable(header []string, rows [][]string) {
	w := make([]int, len(header))
	for _, r := range append([][]string{header}, rows...) {
		for i, c := range r {
			w[i] = max(w[i], len([]rune(c)))
		}
	}
	line := func(r []string) {
		var b strings.Builder
		for i, c := range r {
			pad := strings.Repeat(" ", w[i]-len([]rune(c)))
			if i == 0 {
				fmt.Fprintf(&b, "| %s%s ", c, pad)
			} else {
				fmt.Fprintf(&b, "| %s%s ", pad, c)
			}
		}
		fmt.Println(b.String() + "|")
	}
	line(header)
	var b strings.Builder
	for i := range header {
		b.WriteString("|" + strings.Repeat("-", w[i]+2))
	}
	fmt.Println(b.String() + "|")
	for _, r := range rows {
		line(r)
	}
}

func printTables(c config, res results, sha float64) {
	blobRows := []row{
		{fmt.Sprintf("%d MiB blob push, 1 stream (MB/s)", c.sizeMiB), "push1", false},
		{fmt.Sprintf("%d MiB blob pull, 1 stream (MB/s)", c.sizeMiB), "pull1", false},
		{"server CPU time of that push", "push1cpu", true},
		{"server CPU time of that pull", "pull1cpu", true},
		{fmt.Sprintf("%d × %d MiB blobs push, at once (MB/s)", c.streams, c.sizeMiB/c.streams), "pushN", false},
		{fmt.Sprintf("%d × %d MiB blobs pull, at once (MB/s)", c.streams, c.sizeMiB/c.streams), "pullN", false},
		{fmt.Sprintf("manifest GET by tag, %d clients (req/s)", c.clients), "rps", false},
		{fmt.Sprintf("manifest GET p99, %d clients", c.clients), "p99", true},
		{fmt.Sprintf("manifest PUT by new tag, %d clients (req/s)", pushClients), "putrps", false},
		{fmt.Sprintf("manifest PUT p99, %d clients", pushClients), "putp99", true},
		{"server CPU time per manifest GET", "getcpu", true},
		{"server CPU time per manifest PUT", "putcpu", true},
	}
	imgMB := float64(c.layers*c.layerKiB) * 1024 / 1e6
	toolRows := []row{
		{fmt.Sprintf("crane push, %d layers, %.0f MB (MB/s)", c.layers, imgMB), "crane push", false},
		{fmt.Sprintf("crane pull, %d layers (MB/s)", c.layers), "crane pull", false},
		{fmt.Sprintf("skopeo push, %d layers, %.0f MB (MB/s)", c.layers, imgMB), "skopeo push", false},
		{fmt.Sprintf("skopeo pull, %d layers (MB/s)", c.layers), "skopeo pull", false},
	}

	fmt.Printf("\nThe product: berth serve vs distribution v3.1.2 (medians of %d runs, %d manifest rounds)\n", c.runs, c.rounds)
	fmt.Println("both their own processes on 127.0.0.1, blobs on the filesystem with the same durability: a file is fsynced")
	fmt.Println("before its rename, the directory after (distribution through cmd/distribution-fsync). berth serve on its")
	fmt.Println("embedded defaults (store, queue, RAM policies, security gate) with token auth; distribution with auth off.")
	var rows [][]string
	for _, r := range append(slices.Clone(blobRows), toolRows...) {
		a, b := res.median(keyFS, r.metric), res.median(keyDistFS, r.metric)
		rows = append(rows, []string{r.label, cell(a, r.latency), cell(b, r.latency), ratio(a, b, r.latency)})
	}
	rows = append(rows, []string{"limit: Go sha256 of one stream (MB/s)", cell(sha, false), cell(sha, false), ""})
	printTable([]string{"metric", "berth serve", "distribution", "berth/dist"}, rows)
	fmt.Println("(ratios are speed: above 1 Berth is faster, for p99 too)")

	fmt.Printf("\nS3 and replicas (medians of %d runs, %d manifest rounds); S3 = versitygw v1.8.0, posix backend on the same\n", c.runs, c.rounds)
	fmt.Println("disk, which does not fsync (the fs columns do); 2 replicas = two berth serve on one FerretDB, one redis-server")
	fmt.Println("and one bucket, each blob pushed through one and pulled from the other, manifest clients split between them.")
	rows = nil
	for _, r := range blobRows {
		fs, s3, s3x2, dist := res.median(keyFS, r.metric), res.median(keyS3, r.metric), res.median(keyS3x2, r.metric), res.median(keyDistFS, r.metric)
		rows = append(rows, []string{r.label, cell(fs, r.latency), cell(s3, r.latency), cell(s3x2, r.latency), cell(dist, r.latency),
			ratio(s3, fs, r.latency), ratio(s3x2, s3, r.latency)})
	}
	printTable([]string{"metric", "Berth fs", "Berth S3", "Berth S3 ×2", "distribution fs", "S3/fs", "×2/×1 S3"}, rows)
	fmt.Println("(ratios are speed: above 1 the first is faster, for p99 too)")
}

func mustAbs(p string) string {
	a, err := filepath.Abs(p)
	if err != nil {
		return p
	}
	return a
}
