package app

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/hibiken/asynq"

	"github.com/berth-dev/berth/pipeline"
	"github.com/berth-dev/berth/webhooks/outbound"
	"github.com/berth-dev/berth/workers"
	"github.com/berth-dev/berth/workers/buildkit"
	"github.com/berth-dev/berth/workers/gitclone"
)

// sweepInterval is how often serve looks for builds whose worker died.
const sweepInterval = 30 * time.Second

// buildPipeline is this instance's share of the build pipeline: the service the API and webhooks use, the
// runner the workers use, and the BuildKit daemon the runner builds on (started on the first build when
// --buildkit-addr is empty and buildkitd is installed).
type buildPipeline struct {
	app       *App
	allow     []netip.Prefix // --build-allow-cidr
	creds     *pipeline.BuildCredentials
	builds    *pipeline.Builds
	runner    *workers.BuildRunner
	inspector *asynq.Inspector
	// guard confines non-administrators' code sources (--source-allow-cidr).
	guard *outbound.Guard

	mu      sync.Mutex
	daemon  *buildkit.Daemon
	builder *buildkit.Builder
	logFile *os.File
}

func (a *App) newBuildPipeline() (*buildPipeline, error) {
	u, err := a.Cfg.internalURL()
	if err != nil {
		return nil, err
	}
	allow, err := outbound.ParseAllowFlag(gitclone.SourceAllowFlag, a.Cfg.SourceAllow)
	if err != nil {
		return nil, err
	}
	guard := &outbound.Guard{Allow: allow, Flag: gitclone.SourceAllowFlag}
	buildAllow, err := parseBuildAllow(a.Cfg.BuildAllow)
	if err != nil {
		return nil, err
	}
	p := &buildPipeline{app: a, allow: buildAllow, creds: pipeline.NewBuildCredentials(a.Box.Derive("build-credentials")),
		inspector: asynq.NewInspector(a.Redis), guard: guard}
	p.builds = &pipeline.Builds{Store: a.Store, Queue: a.Enqueue, Inspector: p.inspector, Box: a.Box,
		Logger: a.Logger.With("component", "builds"), SourceGuard: guard}
	host, _ := os.Hostname()
	p.runner = &workers.BuildRunner{Store: a.Store, Box: a.Box, Builder: p.builderFor, Registry: u.Host,
		Insecure: u.Scheme == "http", Credentials: p.creds, WorkDir: filepath.Join(a.Cfg.DataDir, "work", "builds"),
		Worker: fmt.Sprintf("%s/%d", host, os.Getpid()), Logger: a.Logger.With("component", "builds"), SourceGuard: guard}
	if a.Cfg.CheckoutCache > 0 {
		if p.runner.Checkouts, err = gitclone.OpenCheckouts(filepath.Join(a.Cfg.DataDir, "work", "checkouts"),
			a.Cfg.CheckoutCache, time.Hour); err != nil {
			return nil, err
		}
	}
	a.stops = append(a.stops, p.close)
	if a.Cfg.BuildkitAddr == "" {
		if _, err := buildkit.FindBinary(); err == nil {
			// buildkitd starts with the first build; say now, not then, what builds will lack.
			if _, err := buildkit.CheckSandbox(); err != nil {
				a.Logger.Warn("builds will not run", "reason", err.Error())
			}
		}
	}
	return p, nil
}

// parseBuildAllow parses --build-allow-cidr: IPv4 prefixes or addresses, since builds have IPv4 only.
func parseBuildAllow(values []string) ([]netip.Prefix, error) {
	allow, err := outbound.ParseAllowCIDRs(values)
	if err != nil {
		return nil, fmt.Errorf("--build-allow-cidr: %s", strings.ReplaceAll(err.Error(), outbound.AllowFlag+" ", ""))
	}
	for _, p := range allow {
		if !p.Addr().Is4() {
			return nil, fmt.Errorf("--build-allow-cidr %s: builds have IPv4 only; give an IPv4 range like 10.20.0.0/16", p)
		}
	}
	return allow, nil
}

// builderFor returns the BuildKit client builds use: --buildkit-addr's, or a buildkitd child started now (and
// again if it has exited). Without either, the error matches buildkit.ErrNoBuilder and fails the build.
func (p *buildPipeline) builderFor(context.Context) (*buildkit.Builder, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.builder != nil {
		if p.daemon == nil {
			return p.builder, nil
		}
		select {
		case <-p.daemon.Done():
			p.app.Logger.Warn("buildkitd exited; starting it again")
			// Stop removes its sandbox (namespace, firewall tables, the paths to the registry).
			_ = p.daemon.Stop()
			p.builder.Close()
			p.builder, p.daemon = nil, nil
		default:
			return p.builder, nil
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if addr := p.app.Cfg.BuildkitAddr; addr != "" {
		b, err := buildkit.NewBuilder(ctx, addr)
		if err != nil {
			return nil, err
		}
		p.builder = b
		return b, nil
	}
	bin, err := buildkit.FindBinary()
	if err != nil {
		return nil, err
	}
	root := filepath.Join(p.app.Cfg.DataDir, "buildkit")
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, err
	}
	if p.logFile == nil {
		if p.logFile, err = os.OpenFile(filepath.Join(root, "buildkitd.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600); err != nil {
			return nil, err
		}
	}
	// buildkitd reaches Berth's registry (FROM its images, the push, the registry cache) through the one path
	// its sandbox opens to it.
	cfg := buildkit.DaemonConfig{Binary: bin, RootDir: root, LogWriter: p.logFile, AllowCIDRs: p.allow,
		Registries: []string{p.runner.Registry}}
	if p.runner.Insecure {
		cfg.InsecureRegistries = []string{p.runner.Registry}
	}
	start := time.Now()
	d, err := buildkit.Start(ctx, cfg)
	if err != nil {
		return nil, err
	}
	b, err := buildkit.NewBuilder(ctx, d.Addr())
	if err != nil {
		d.Stop()
		return nil, err
	}
	p.app.Logger.Info("buildkitd started", "addr", d.Addr(), "root", root, "took", time.Since(start).Round(time.Millisecond))
	p.daemon, p.builder = d, b
	return b, nil
}

// BuildkitAddr is the address of the BuildKit daemon builds use: --buildkit-addr, or the child's once it has
// started; "" before.
func (a *App) BuildkitAddr() string {
	if a.Cfg.BuildkitAddr != "" {
		return a.Cfg.BuildkitAddr
	}
	a.pipe.mu.Lock()
	defer a.pipe.mu.Unlock()
	if a.pipe.daemon == nil {
		return ""
	}
	return a.pipe.daemon.Addr()
}

func (p *buildPipeline) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.builder != nil {
		p.builder.Close()
	}
	if p.daemon != nil {
		if err := p.daemon.Stop(); err != nil {
			p.app.Logger.Warn("stop buildkitd", "err", err)
		}
	}
	if p.logFile != nil {
		p.logFile.Close()
	}
	_ = p.inspector.Close()
	p.builder, p.daemon, p.logFile = nil, nil, nil
}

// QueuesNone as serve's --queues runs no build workers in the process.
const QueuesNone = "none"

// CheckQueues refuses a --queues value that names "none" beside queues, or "none" for a worker (cmd "worker").
func CheckQueues(cmd, queues string) error {
	names := strings.Split(queues, ",")
	for _, q := range names {
		if strings.TrimSpace(q) != QueuesNone {
			continue
		}
		if cmd != "serve" {
			return fmt.Errorf("--queues none: a berth %s with no build queue does nothing; name its queues, e.g. --queues default", cmd)
		}
		if len(names) > 1 {
			return fmt.Errorf("--queues %q: none means no build queue, so it cannot stand beside others", queues)
		}
	}
	return nil
}

// buildQueues are the build queues (regions) serve works on: --queues, else the home region's "default";
// none for --queues none (a serve replica that leaves builds to `berth worker` processes).
func (a *App) buildQueues() map[string]int {
	qs := map[string]int{}
	if strings.TrimSpace(a.Cfg.Queues) == QueuesNone {
		return qs
	}
	for _, q := range strings.Split(a.Cfg.Queues, ",") {
		if q = strings.TrimSpace(q); q != "" {
			qs[q] = 1
		}
	}
	if len(qs) == 0 {
		qs[pipeline.QueueDefault] = 1
	}
	return qs
}

// startBuilds runs serve's build workers (their own Asynq server, so long builds never hold up events, scans
// and triggers), queues again the builds a previous run left behind, and sweeps builds whose worker died,
// until the returned stop is called.
func (a *App) startBuilds(ctx context.Context) (stop func(), err error) {
	queues := a.buildQueues()
	shutdown, unregister := func() {}, func() {}
	if len(queues) > 0 {
		qs := a.buildServer(queues)
		if err := qs.Start(workers.Handlers(a.workerDeps())); err != nil {
			return nil, fmt.Errorf("start build workers: %w", err)
		}
		shutdown, unregister = qs.Shutdown, a.registerWorker(ctx, queues)
	} else {
		a.Logger.Info("no build workers in this process (--queues none): builds run on berth worker processes")
	}
	stopCheck := a.startQueueCheck(ctx)
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if n, err := a.pipe.builds.Recover(ctx); err != nil {
			a.Logger.Warn("re-enqueue builds", "err", err)
		} else if n > 0 {
			a.Logger.Info("builds queued again after a restart", "builds", n)
		}
		t := time.NewTicker(sweepInterval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if _, err := a.pipe.builds.Sweep(ctx, pipeline.StaleAfter); err != nil && ctx.Err() == nil {
				a.Logger.Warn("sweep builds", "err", err)
			}
		}
	}()
	return func() { cancel(); wg.Wait(); stopCheck(); shutdown(); unregister() }, nil
}

// buildWakeWait is how long an idle build worker waits for a wake-up before it polls its queues again.
const buildWakeWait = time.Second

// buildServer is the Asynq server of the build workers of queues: two builds at a time, woken by the builds
// queued through any Berth process sharing the Redis (pipeline.WakingQueue) instead of finding them by polling.
func (a *App) buildServer(queues map[string]int) *wokenServer {
	qc := a.tuneQueue(asynq.Config{Concurrency: 2, Queues: queues,
		Logger: asynqLogger{a.Logger.With("component", "queue")}, LogLevel: asynq.WarnLevel})
	// A build whose worker died runs again soon, rather than after Asynq's long default backoff.
	qc.RetryDelayFunc = pipeline.BuildRetryDelayFunc(qc.RetryDelayFunc)
	qc.ShutdownTimeout = 10 * time.Second
	return newWokenServer(a.Redis, qc, buildWakeWait)
}

// wokenServer is an Asynq server whose idle workers wait for wake-ups (pipeline.WakeOnEnqueue) of its queues,
// up to wait at a time, between polls.
type wokenServer struct {
	*asynq.Server
	opt *pipeline.WakingConnOpt
}

func newWokenServer(r asynq.RedisConnOpt, qc asynq.Config, wait time.Duration) *wokenServer {
	names := make([]string, 0, len(qc.Queues))
	for q := range qc.Queues {
		names = append(names, q)
	}
	opt := pipeline.WakeOnEnqueue(r, names, wait)
	return &wokenServer{Server: asynq.NewServer(opt, qc), opt: opt}
}

// Shutdown ends the workers' waits, then shuts the server down.
func (s *wokenServer) Shutdown() {
	s.opt.Stop()
	s.Server.Shutdown()
}
