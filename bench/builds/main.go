// Command builds benchmarks Berth's build pipeline on this machine and prints:
//
//   - webhook → QUEUED: the latency of a signed GitHub push delivery until its build is recorded QUEUED and
//     its task is on the queue (that is when POST /hooks answers), p50/p99 one at a time, and accepted
//     deliveries per second with -concurrency clients;
//   - build wall time: a push until the build is SUCCESS, against raw `buildctl build` of the same context
//     on the same buildkitd, pushing to the same registry: without cache; with the registry cache, building
//     the same commit again (Berth reads its kept checkout: --checkout-cache); and with the registry cache,
//     a new commit changing nothing the Dockerfile copies (Berth clones it).
//
// It starts a whole Berth (embedded store and queue, or --redis-addr) in a temporary directory, a buildkitd
// child (or uses --buildkit-addr), and a Git repository served by git http-backend, all on loopback.
//
// Berth and buildctl share the buildkitd, so its local cache is pruned (buildctl prune --all) before every
// measured build: the "registry cache" rows then measure imports from the registry cache, not local hits.
//
//	go run ./bench/builds [-hooks 2000] [-concurrency 16] [-runs 5]
//	go run ./bench/builds -smoke   # seconds: the test command runs this so the bench keeps working
package main

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/hibiken/asynq"

	"github.com/berth-dev/berth/server/app"
	"github.com/berth-dev/berth/workers/buildkit"
)

const adminPassword = "bench-admin-password"

var (
	hooks       = flag.Int("hooks", 2000, "webhook deliveries per latency and throughput run")
	concurrency = flag.Int("concurrency", 16, "concurrent webhook senders in the throughput run")
	runs        = flag.Int("runs", 5, "builds per side (Berth, buildctl) per cache mode")
	redisAddr   = flag.String("redis-addr", "", "a real Redis for the queue (default: embedded miniredis)")
	bkAddr      = flag.String("buildkit-addr", "", "a running buildkitd (default: start one when installed)")
	work        = flag.Int("work", 400000, "loop iterations of the benchmark Dockerfile's RUN step (its CPU work)")
	verbose     = flag.Bool("v", false, "print each Berth build's stage times and timing lines")
	cpuProfile  = flag.String("cpuprofile", "", "write a CPU profile of the webhook runs to this file")
	unsigned    = flag.Bool("unsigned", true, "also build on a second Berth with build signing and attestation off (Config.NoBuildSigning), alternating, to measure what they cost")
	smoke       = flag.Bool("smoke", false, "a few hooks and one build per row, to check the bench still runs (the test command)")
)

func main() {
	flag.Parse()
	if *smoke {
		*hooks, *concurrency, *runs, *work = 20, 4, 1, 1000
	}
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench/builds:", err)
		os.Exit(1)
	}
}

type berth struct {
	url, host string
	client    *http.Client
}

func run() error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	tmp, err := os.MkdirTemp("", "berth-bench-builds-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	// BuildKit first: Berth's builds and buildctl share it.
	addr := *bkAddr
	var buildctl string
	var daemon *buildkit.Daemon
	if addr == "" {
		bin, err := buildkit.FindBinary()
		if err != nil {
			fmt.Printf("build comparison skipped: %v\n", err)
		} else {
			d, err := buildkit.Start(ctx, buildkit.DaemonConfig{Binary: bin, RootDir: filepath.Join(tmp, "bk")})
			if err != nil {
				return err
			}
			defer d.Stop()
			addr, daemon = d.Addr(), d
			buildctl = filepath.Join(filepath.Dir(bin), "buildctl")
		}
	} else if p, err := exec.LookPath("buildctl"); err == nil {
		buildctl = p
	}

	b, cfg, a, closeBerth, err := openBerth(ctx, filepath.Join(tmp, "data"), daemon, addr, false)
	if err != nil {
		return err
	}
	defer closeBerth()
	fmt.Printf("Berth %s, %d CPUs, store: %s, queue: %s\n", b.url, runtime.NumCPU(), storeName(cfg), queueName(cfg, a))

	// Builds first, while the builds collection is small (the embedded store reads it whole for any query but
	// one by _id).
	if addr == "" || buildctl == "" || *runs < 1 {
		fmt.Println("build comparison skipped: no buildkitd/buildctl (scripts/install-buildkit.sh), or -runs 0")
	} else {
		var nb *berth
		if *unsigned {
			u, _, _, closeU, err := openBerth(ctx, filepath.Join(tmp, "data-unsigned"), daemon, addr, true)
			if err != nil {
				return err
			}
			defer closeU()
			nb = u
		}
		if err := benchBuilds(b, nb, tmp, addr, buildctl); err != nil {
			return err
		}
	}
	return benchHooks(b)
}

// openBerth starts a Berth in dataDir on a loopback port whose builds run on the buildkitd at bkAddr (daemon,
// when this bench started it, opens its path to the registry); unsigned turns build signing off.
func openBerth(ctx context.Context, dataDir string, daemon *buildkit.Daemon, bkAddr string, unsigned bool) (*berth, *app.Config, *app.App, func(), error) {
	cfg, err := app.ParseConfig("serve", nil)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, nil, nil, err
	}
	cfg.Addr, cfg.DataDir, cfg.NamespaceLimit, cfg.NoBuildSigning = ln.Addr().String(), dataDir, 0, unsigned
	if daemon != nil {
		// buildkitd reaches Berth's registry through the one path its sandbox opens to it.
		if _, err := daemon.AllowRegistry(ctx, cfg.Addr); err != nil {
			return nil, nil, nil, nil, err
		}
	}
	cfg.BuildkitAddr, cfg.RedisAddr = bkAddr, *redisAddr
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	os.Setenv("BERTH_ADMIN_PASSWORD", adminPassword)
	a, err := app.Open(ctx, cfg)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	sctx, cancel := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- a.Serve(sctx, ln) }()
	closeBerth := func() { cancel(); <-served; a.Close() }
	b := &berth{url: "http://" + cfg.Addr, host: cfg.Addr, client: &http.Client{Transport: &http.Transport{
		MaxIdleConnsPerHost: *concurrency * 2}}}
	if err := b.waitReady(); err != nil {
		closeBerth()
		return nil, nil, nil, nil, err
	}
	return b, cfg, a, closeBerth, nil
}

func storeName(c *app.Config) string {
	if c.MongoURI != "" {
		return "MongoDB"
	}
	return "embedded FerretDB (SQLite)"
}

func queueName(c *app.Config, a *app.App) string {
	if c.RedisAddr != "" {
		return "Redis " + c.RedisAddr
	}
	if o, ok := a.Redis.(asynq.RedisClientOpt); ok && o.Network == "unix" {
		return "embedded redis-server child"
	}
	return "embedded miniredis (redis-server is not installed)"
}

// benchHooks measures webhook → QUEUED on a source whose builds run overseas (no worker here), so the
// builds stay QUEUED and nothing but the webhook path is measured.
func benchHooks(b *berth) error {
	for _, step := range []struct{ method, path string }{
		{"POST", "/api/v1/namespaces"}, {"POST", "/api/v1/namespaces/hooks/repositories"},
	} {
		body := map[string]any{"name": "hooks"}
		if step.path != "/api/v1/namespaces" {
			body = map[string]any{"name": "app"}
		}
		if _, err := b.call(step.method, step.path, body, 201); err != nil {
			return err
		}
	}
	src, err := b.call("PUT", "/api/v1/repositories/hooks/app/source", map[string]any{"provider": "github",
		"url": "https://git.example.com/hooks/app.git", "overseas_build": true}, 201)
	if err != nil {
		return err
	}
	for _, rule := range []map[string]any{
		{"source_type": "BRANCH", "source_ref": "main"},
		{"source_type": "BRANCH", "source_ref": "develop", "image_tag": "dev"},
		{"source_type": "TAG", "source_ref": "release-v(?<version>.*)", "image_tag": "${version}"},
	} {
		if _, err := b.call("POST", "/api/v1/repositories/hooks/app/build-rules", rule, 201); err != nil {
			return err
		}
	}
	url, secret := src["webhook_url"].(string), src["webhook_secret"].(string)
	var seq atomic.Int64
	send := func() (time.Duration, error) {
		n := seq.Add(1)
		commit := fmt.Sprintf("%040x", rand.Uint64())
		body, _ := json.Marshal(map[string]any{"ref": "refs/heads/main", "before": strings.Repeat("0", 40), "after": commit,
			"head_commit": map[string]any{"id": commit}, "pusher": map[string]any{"name": "bench"}})
		mac := hmac.New(sha256.New, []byte(secret))
		mac.Write(body)
		req, _ := http.NewRequest("POST", url, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-GitHub-Event", "push")
		req.Header.Set("X-GitHub-Delivery", fmt.Sprintf("bench-%d", n))
		req.Header.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(mac.Sum(nil)))
		start := time.Now()
		resp, err := b.client.Do(req)
		if err != nil {
			return 0, err
		}
		data, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		took := time.Since(start)
		if resp.StatusCode != 202 || !bytes.Contains(data, []byte(`"builds":["`)) {
			return 0, fmt.Errorf("webhook: %d %s", resp.StatusCode, data)
		}
		return took, nil
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	for range 50 { // warm up connections and caches
		if _, err := send(); err != nil {
			return err
		}
	}
	lat := make([]time.Duration, 0, *hooks)
	for range *hooks {
		d, err := send()
		if err != nil {
			return err
		}
		lat = append(lat, d)
	}
	slices.Sort(lat)
	fmt.Printf("\nwebhook → QUEUED, one at a time (%d deliveries, 1 build each):\n  p50 %v   p90 %v   p99 %v   max %v\n",
		len(lat), pct(lat, 50), pct(lat, 90), pct(lat, 99), lat[len(lat)-1])

	var wg sync.WaitGroup
	var failed atomic.Value
	var done atomic.Int64
	start := time.Now()
	for range *concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for done.Add(1) <= int64(*hooks) {
				if _, err := send(); err != nil {
					failed.Store(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		return err
	}
	took := time.Since(start)
	fmt.Printf("accepted deliveries, %d concurrent senders: %d in %v = %.0f/s\n", *concurrency, *hooks, took.Round(time.Millisecond),
		float64(*hooks)/took.Seconds())
	return nil
}

func pct(sorted []time.Duration, p int) time.Duration {
	i := (len(sorted)*p + 99) / 100
	return sorted[max(0, min(i, len(sorted))-1)].Round(10 * time.Microsecond)
}

// benchBuilds compares a push → SUCCESS in Berth with `buildctl build` of the same checkout, and, when u is
// set, with the same build on u, a Berth that neither signs nor attests its builds.
func benchBuilds(b, u *berth, tmp, addr, buildctl string) error {
	if _, err := b.call("POST", "/api/v1/namespaces", map[string]any{"name": "library", "default_visibility": "PUBLIC"}, 201); err != nil {
		return err
	}
	base, err := pushBusybox(b)
	if err != nil {
		return err
	}
	if _, err := b.call("POST", "/api/v1/namespaces", map[string]any{"name": "bench"}, 201); err != nil {
		return err
	}
	for _, repo := range []string{"app", "raw"} {
		if _, err := b.call("POST", "/api/v1/namespaces/bench/repositories", map[string]any{"name": repo}, 201); err != nil {
			return err
		}
	}
	// A small, typical build: copy sources, do about a second of work in a RUN, copy the result on.
	files := map[string]string{
		"Dockerfile": "FROM " + base + " AS build\nCOPY src /src\n" +
			fmt.Sprintf("RUN i=0; while [ $i -lt %d ]; do i=$((i+1)); done; cat /src/* > /out.txt; echo $i >> /out.txt\n", *work) +
			"FROM " + base + "\nCOPY --from=build /out.txt /app/out.txt\nCOPY src /app/src\n",
	}
	for i := range 20 {
		files[fmt.Sprintf("src/file%02d.txt", i)] = strings.Repeat(fmt.Sprintf("line %d\n", i), 2000)
	}
	gitURL, work, commit, err := gitRepo(tmp, files)
	if err != nil {
		return err
	}
	// connect gives bench/app of a Berth the repository as its source, with a rule building main.
	connect := func(b *berth) (*buildSide, error) {
		src, err := b.call("PUT", "/api/v1/repositories/bench/app/source", map[string]any{"provider": "github", "url": gitURL, "no_cache": true}, 201)
		if err != nil {
			return nil, err
		}
		if _, err := b.call("POST", "/api/v1/repositories/bench/app/build-rules", map[string]any{"source_type": "BRANCH", "source_ref": "main"}, 201); err != nil {
			return nil, err
		}
		return &buildSide{b: b, hookURL: src["webhook_url"].(string), secret: src["webhook_secret"].(string)}, nil
	}
	signed, err := connect(b)
	if err != nil {
		return err
	}
	sides := []*buildSide{signed}
	if u != nil {
		// The unsigned Berth builds FROM the same base image, which is public in the first.
		if _, err := u.call("POST", "/api/v1/namespaces", map[string]any{"name": "bench"}, 201); err != nil {
			return err
		}
		if _, err := u.call("POST", "/api/v1/namespaces/bench/repositories", map[string]any{"name": "app"}, 201); err != nil {
			return err
		}
		unsignedSide, err := connect(u)
		if err != nil {
			return err
		}
		sides = append(sides, unsignedSide)
	}
	dockerConfig := filepath.Join(tmp, "docker")
	os.MkdirAll(dockerConfig, 0o700)
	auth := base64.StdEncoding.EncodeToString([]byte("admin:" + adminPassword))
	os.WriteFile(filepath.Join(dockerConfig, "config.json"), []byte(`{"auths":{"`+b.host+`":{"auth":"`+auth+`"}}}`), 0o600)

	var delivery int
	// berthBuild pushes and waits for SUCCESS; it returns the time to the end of PUSHING (clone, build and
	// push: what buildctl does) and to the final status (with the SCANNING stage).
	berthBuild := func(side *buildSide) (pushed, final, before time.Duration, err error) {
		b, hookURL, secret := side.b, side.hookURL, side.secret
		delivery++
		// Each delivery differs (the message): the same signed body again is a replay and builds nothing.
		body, _ := json.Marshal(map[string]any{"ref": "refs/heads/main", "before": strings.Repeat("0", 40), "after": commit,
			"head_commit": map[string]any{"id": commit, "message": fmt.Sprintf("rebuild %d", delivery)}})
		mac := hmac.New(sha256.New, []byte(secret))
		mac.Write(body)
		req, _ := http.NewRequest("POST", hookURL, bytes.NewReader(body))
		req.Header.Set("X-GitHub-Event", "push")
		req.Header.Set("X-GitHub-Delivery", fmt.Sprintf("build-%d", delivery))
		req.Header.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(mac.Sum(nil)))
		start := time.Now()
		resp, err := b.client.Do(req)
		if err != nil {
			return 0, 0, 0, err
		}
		var ans struct{ Builds []string }
		json.NewDecoder(resp.Body).Decode(&ans)
		resp.Body.Close()
		if len(ans.Builds) != 1 {
			return 0, 0, 0, fmt.Errorf("webhook started %d builds", len(ans.Builds))
		}
		for {
			bd, err := b.call("GET", "/api/v1/repositories/bench/app/builds/"+ans.Builds[0], nil, 200)
			if err != nil {
				return 0, 0, 0, err
			}
			switch bd["status"] {
			case "SUCCESS":
				// The build's own stage times, not when this poll noticed the end.
				line := "    Berth:"
				for _, st := range bd["stages"].([]any) {
					m := st.(map[string]any)
					s0, _ := time.Parse(time.RFC3339Nano, m["started_at"].(string))
					s1, _ := time.Parse(time.RFC3339Nano, m["finished_at"].(string))
					line += fmt.Sprintf(" %s +%v %v;", m["name"], s0.Sub(start).Round(time.Millisecond), s1.Sub(s0).Round(time.Millisecond))
					final = s1.Sub(start)
					if m["name"] == "PUSHING" {
						pushed = s1.Sub(start)
					}
					if m["name"] == "BUILDING" {
						before = s0.Sub(start)
					}
				}
				if *verbose {
					log, _ := b.text("/api/v1/repositories/bench/app/builds/" + ans.Builds[0] + "/logs")
					for _, l := range strings.Split(log, "\n") {
						if strings.Contains(l, "cloned in") || strings.Contains(l, "built and pushed") || strings.Contains(l, "attested") {
							line += " " + l[strings.Index(l, "] ")+11:]
						}
					}
					fmt.Println(line)
				}
				return pushed, final, before, nil
			case "FAILED", "CANCELED", "BLOCKED":
				return 0, 0, 0, fmt.Errorf("build %v: %v", bd["status"], bd["error"])
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	rawBuild := func(noCache bool) (time.Duration, error) {
		args := []string{"--addr", addr, "build", "--progress", "plain", "--frontend", "dockerfile.v0",
			"--local", "context=" + work, "--local", "dockerfile=" + work,
			"--output", "type=image,name=" + b.host + "/bench/raw:latest,push=true,registry.insecure=true"}
		if noCache {
			args = append(args, "--opt", "no-cache=", "--opt", "image-resolve-mode=pull")
		} else {
			ref := b.host + "/bench/raw:buildcache"
			args = append(args, "--export-cache", "type=registry,ref="+ref+",mode=max,registry.insecure=true",
				"--import-cache", "type=registry,ref="+ref+",registry.insecure=true")
		}
		cmd := exec.Command(buildctl, args...)
		cmd.Env = append(os.Environ(), "DOCKER_CONFIG="+dockerConfig)
		start := time.Now()
		if out, err := cmd.CombinedOutput(); err != nil {
			return 0, fmt.Errorf("buildctl: %v\n%s", err, out)
		}
		took := time.Since(start)
		if *verbose {
			fmt.Printf("    buildctl %v\n", took.Round(time.Millisecond))
		}
		return took, nil
	}

	prune := func() error {
		if out, err := exec.Command(buildctl, "--addr", addr, "prune", "--all").CombinedOutput(); err != nil {
			return fmt.Errorf("buildctl prune: %v\n%s", err, out)
		}
		return nil
	}
	fmt.Printf("build wall time, medians of %d runs each, alternating; buildkitd's local cache pruned before every build. Berth: webhook → end of PUSHING (clone, build, push:\n"+
		"what buildctl does), and → SUCCESS (after the SCANNING stage); buildctl: the same checkout on the same buildkitd,\n"+
		"pushed to the same registry, process start included. webhook → BUILDING: what Berth spends before BuildKit\n"+
		"(queue pickup, clone, records).\n", *runs)
	// newCommit commits and pushes a change outside what the Dockerfile copies: the build is all cached, but
	// Berth has a commit to clone that no checkout of its holds.
	n := 0
	newCommit := func() error {
		n++
		if err := os.WriteFile(filepath.Join(work, "NOTES.md"), []byte(fmt.Sprintf("note %d\n", n)), 0o644); err != nil {
			return err
		}
		for _, args := range [][]string{{"add", "-A"}, {"-c", "user.email=b@example.com", "-c", "user.name=b", "commit", "-q", "-m", "note"},
			{"push", "-q", filepath.Join(tmp, "git", "app.git"), "HEAD:refs/heads/main"}} {
			if out, err := exec.Command("git", append([]string{"-C", work}, args...)...).CombinedOutput(); err != nil {
				return fmt.Errorf("git %v: %v: %s", args, err, out)
			}
		}
		out, err := exec.Command("git", "-C", work, "rev-parse", "HEAD").Output()
		commit = strings.TrimSpace(string(out))
		return err
	}
	for _, mode := range []struct {
		name      string
		noCache   bool
		newCommit bool
	}{{"no cache", true, false}, {"registry cache, same commit", false, false}, {"registry cache, new commit", false, true}} {
		// Warm every side (and prime the caches).
		for _, side := range sides {
			if _, err := side.b.call("PUT", "/api/v1/repositories/bench/app/source", map[string]any{"no_cache": mode.noCache}, 200); err != nil {
				return err
			}
			if _, _, _, err := berthBuild(side); err != nil {
				return err
			}
		}
		if _, err := rawBuild(mode.noCache); err != nil {
			return err
		}
		var pushedT, finalT, rawT, preT, uPushedT, uFinalT []time.Duration
		for range *runs {
			if mode.newCommit {
				if err := newCommit(); err != nil {
					return err
				}
			}
			// Both sides share this buildkitd: a row that claims the registry cache starts each build with the
			// local cache empty, so that the layers come from the registry cache and not from local hits.
			if err := prune(); err != nil {
				return err
			}
			p, f, pre, err := berthBuild(signed)
			if err != nil {
				return err
			}
			pushedT, finalT, preT = append(pushedT, p), append(finalT, f), append(preT, pre)
			if len(sides) > 1 {
				if err := prune(); err != nil {
					return err
				}
				p, f, _, err := berthBuild(sides[1])
				if err != nil {
					return err
				}
				uPushedT, uFinalT = append(uPushedT, p), append(uFinalT, f)
			}
			if err := prune(); err != nil {
				return err
			}
			d, err := rawBuild(mode.noCache)
			if err != nil {
				return err
			}
			rawT = append(rawT, d)
		}
		pm, fm, rm := median(pushedT), median(finalT), median(rawT)
		fmt.Printf("  %-33s buildctl %v   Berth pushed %v (%.2f×)   Berth SUCCESS %v (%.2f×)   webhook → BUILDING %v\n", mode.name+":",
			rm.Round(time.Millisecond), pm.Round(time.Millisecond), float64(pm)/float64(rm), fm.Round(time.Millisecond), float64(fm)/float64(rm),
			median(preT).Round(time.Millisecond))
		if len(uPushedT) > 0 {
			upm, ufm := median(uPushedT), median(uFinalT)
			fmt.Printf("  %-33s Berth unsigned: pushed %v, SUCCESS %v   signed/unsigned: pushed %.2f×, SUCCESS %.2f×\n", "",
				upm.Round(time.Millisecond), ufm.Round(time.Millisecond), float64(pm)/float64(upm), float64(fm)/float64(ufm))
		}
	}
	fmt.Println()
	return nil
}

// buildSide is a Berth whose bench/app builds the benchmark repository, and its webhook.
type buildSide struct {
	b               *berth
	hookURL, secret string
}

func median(ds []time.Duration) time.Duration {
	slices.Sort(ds)
	return ds[len(ds)/2]
}

func (b *berth) waitReady() error {
	for range 200 {
		if resp, err := b.client.Get(b.url + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("berth not ready")
}

func (b *berth) text(path string) (string, error) {
	req, _ := http.NewRequest("GET", b.url+path, nil)
	req.SetBasicAuth("admin", adminPassword)
	resp, err := b.client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	return string(data), err
}

func (b *berth) call(method, path string, body any, want int) (map[string]any, error) {
	var rd io.Reader
	if body != nil {
		data, _ := json.Marshal(body)
		rd = bytes.NewReader(data)
	}
	req, _ := http.NewRequest(method, b.url+path, rd)
	req.SetBasicAuth("admin", adminPassword)
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

// gitRepo commits files into a bare repository served by git http-backend; it returns the clone URL, a
// checkout of the commit (buildctl's context) and the commit.
func gitRepo(tmp string, files map[string]string) (url, work, commit string, err error) {
	root := filepath.Join(tmp, "git")
	work = filepath.Join(tmp, "work")
	git := func(dir string, args ...string) (string, error) {
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			return "", fmt.Errorf("git %s: %v: %s", strings.Join(args, " "), err, out)
		}
		return strings.TrimSpace(string(out)), nil
	}
	os.MkdirAll(root, 0o755)
	steps := [][]string{{"init", "-q", "--bare", "-b", "main", filepath.Join(root, "app.git")}, {"init", "-q", "-b", "main", work}}
	for _, s := range steps {
		if _, err := git(tmp, s...); err != nil {
			return "", "", "", err
		}
	}
	for p, c := range files {
		os.MkdirAll(filepath.Dir(filepath.Join(work, p)), 0o755)
		if err := os.WriteFile(filepath.Join(work, p), []byte(c), 0o644); err != nil {
			return "", "", "", err
		}
	}
	for _, s := range [][]string{{"add", "-A"}, {"-c", "user.email=b@example.com", "-c", "user.name=b", "commit", "-q", "-m", "bench"},
		{"push", "-q", filepath.Join(root, "app.git"), "HEAD:refs/heads/main"}} {
		if _, err := git(work, s...); err != nil {
			return "", "", "", err
		}
	}
	if commit, err = git(work, "rev-parse", "HEAD"); err != nil {
		return "", "", "", err
	}
	execPath, err := git(tmp, "--exec-path")
	if err != nil {
		return "", "", "", err
	}
	srv := httptest.NewServer(&cgi.Handler{Path: filepath.Join(execPath, "git-http-backend"),
		Env: []string{"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1"}})
	return srv.URL + "/app.git", work, commit, nil
}

// pushBusybox makes HOST/library/busybox:latest from Debian's busybox-static.
func pushBusybox(b *berth) (string, error) {
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		return "", fmt.Errorf("need /bin/busybox (apt-get install busybox-static): %w", err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	mod := time.Unix(0, 0)
	tw.WriteHeader(&tar.Header{Name: "bin/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: mod})
	tw.WriteHeader(&tar.Header{Name: "tmp/", Typeflag: tar.TypeDir, Mode: 0o1777, ModTime: mod})
	tw.WriteHeader(&tar.Header{Name: "bin/busybox", Typeflag: tar.TypeReg, Mode: 0o755, Size: int64(len(bb)), ModTime: mod})
	tw.Write(bb)
	for _, tool := range []string{"sh", "cat", "echo", "true"} {
		tw.WriteHeader(&tar.Header{Name: "bin/" + tool, Typeflag: tar.TypeSymlink, Linkname: "busybox", Mode: 0o777, ModTime: mod})
	}
	tw.Close()
	data := buf.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil },
		tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return "", err
	}
	img, err := mutate.AppendLayers(mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON), layer)
	if err != nil {
		return "", err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return "", err
	}
	img, err = mutate.ConfigFile(img, &v1.ConfigFile{OS: "linux", Architecture: runtime.GOARCH, RootFS: cf.RootFS,
		Config: v1.Config{Env: []string{"PATH=/bin"}}})
	if err != nil {
		return "", err
	}
	ref := b.host + "/library/busybox:latest"
	tag, err := name.NewTag(ref, name.Insecure)
	if err != nil {
		return "", err
	}
	return ref, remote.Write(tag, img, remote.WithAuth(&authn.Basic{Username: "admin", Password: adminPassword}))
}
