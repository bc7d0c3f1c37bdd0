// Command regserve runs Berth's registry alone, for the OCI conformance suite
// and manual testing: a static authorizer (user conformance/conformance-pass
// with full rights on conformance/*, anonymous nothing), no hooks.
//
//	go run ./registry/cmd/regserve -addr 127.0.0.1:5000 -root /tmp/reg
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/berth-dev/berth/registry"
	"github.com/berth-dev/berth/registry/registrytest"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:5000", "listen address (loopback)")
	root := flag.String("root", "", "storage root (default: a temporary directory)")
	verbose := flag.Bool("v", false, "debug logging")
	flag.Parse()
	if err := run(*addr, *root, *verbose); err != nil {
		fmt.Fprintln(os.Stderr, "regserve:", err)
		os.Exit(1)
	}
}

func run(addr, root string, verbose bool) error {
	if root == "" {
		d, err := os.MkdirTemp("", "regserve-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		root = d
	}
	lvl := slog.LevelInfo
	if verbose {
		lvl = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	reg, err := registry.New(registry.Config{
		RootDir:   root,
		PublicURL: "http://" + ln.Addr().String(),
		Logger:    log,
	}, registrytest.Conformance(), registry.NopHooks{})
	if err != nil {
		return err
	}
	defer reg.Close()
	srv := &http.Server{Handler: reg, ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	log.Info("registry listening", "addr", ln.Addr().String(), "root", root)
	if err := srv.Serve(ln); err != nil && err != http.ErrServerClosed {
		return err
	}
	return nil
}
