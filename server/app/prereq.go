package app

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/berth-dev/berth/workers/buildkit"
)

// buildsReadyTTL is how long the answer of the builds readiness check is reused (it may dial buildkitd).
const buildsReadyTTL = 10 * time.Second

// buildsReady is the "builds" check of /readyz: whether this instance can run a build now, and if not, what
// is missing and how to fix it (the same reason a build fails with).
type buildsReady struct {
	p    *buildPipeline
	mu   sync.Mutex
	at   time.Time
	last error
}

func (r *buildsReady) check(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if time.Since(r.at) < buildsReadyTTL {
		return r.last
	}
	r.last, r.at = r.p.ready(ctx), time.Now()
	return r.last
}

// ready says whether builds can run: the running buildkitd answers, --buildkit-addr answers, or buildkitd,
// runc and root are here to start one.
func (p *buildPipeline) ready(ctx context.Context) error {
	p.mu.Lock()
	b, d := p.builder, p.daemon
	p.mu.Unlock()
	if b != nil && (d == nil || !isDone(d.Done())) {
		return b.Ping(ctx)
	}
	if addr := p.app.Cfg.BuildkitAddr; addr != "" {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		c, err := buildkit.NewBuilder(ctx, addr)
		if err != nil {
			return fmt.Errorf("%w: --buildkit-addr %s: %w", buildkit.ErrNoBuilder, addr, err)
		}
		defer c.Close()
		if err := c.Ping(ctx); err != nil {
			return fmt.Errorf("%w: --buildkit-addr %s does not answer: %w", buildkit.ErrNoBuilder, addr, err)
		}
		return nil
	}
	_, err := buildkit.FindBinary()
	return err
}

func isDone(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// hasOverlayfs says whether the kernel offers overlayfs (BuildKit's fast snapshotter; without it buildkitd
// falls back to copying layers).
func hasOverlayfs() bool {
	b, err := os.ReadFile("/proc/filesystems")
	return err != nil || bytes.Contains(b, []byte("\toverlay\n"))
}

// logPrerequisites says at start what builds and scans lack and how to fix it.
func (a *App) logPrerequisites(ctx context.Context) {
	if err := a.pipe.ready(ctx); err != nil {
		a.Logger.Warn("builds cannot run: every build will fail until this is fixed", "reason", err.Error())
	} else if a.Cfg.BuildkitAddr == "" && !hasOverlayfs() {
		a.Logger.Warn("no overlayfs in this kernel: buildkitd uses its native snapshotter, builds are slower (modprobe overlay)")
	}
	if st := a.scan.ScannerStatus(ctx); st.State != scannerReady {
		a.Logger.Warn("scans cannot run yet: they end FAILED with this reason until it is fixed", "state", st.State, "reason", st.Reason)
	}
}
