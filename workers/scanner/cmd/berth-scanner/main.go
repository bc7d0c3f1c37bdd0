// Command berth-scanner scans container images for vulnerabilities with Trivy, offline, for Berth.
//
//	berth-scanner scan  --db-dir DIR --cache-dir DIR --image REF [--username U --password P] [--insecure]
//	berth-scanner serve --addr 127.0.0.1:PORT --db-dir DIR --cache-dir DIR
//	berth-scanner version
//
// scan prints the JSON report on stdout. serve answers POST /scan, GET /db and GET /healthz, and prints
// "listening on ADDR" on stdout once it accepts connections.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/berth-dev/berth/workers/scanner"
)

const usage = `usage:
  berth-scanner scan  --db-dir DIR --cache-dir DIR --image REF [--username U (--password P | --password-stdin)] [--insecure]
  berth-scanner serve --addr 127.0.0.1:PORT --db-dir DIR --cache-dir DIR [--max-scans N] [--scan-timeout D]
  berth-scanner version
`

// errUsage marks command-line mistakes (exit code 2).
var errUsage = errors.New("usage error")

func main() {
	if err := run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "berth-scanner: %v\n", err)
		if errors.Is(err, errUsage) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("%w: a command is required", errUsage)
	}
	switch args[0] {
	case "scan":
		return runScan(args[1:], stdin, stdout, stderr)
	case "serve":
		return runServe(args[1:], stdout, stderr)
	case "version":
		fmt.Fprintf(stdout, "berth-scanner (trivy %s)\n", scanner.TrivyVersion())
		return nil
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("%w: unknown command %q", errUsage, args[0])
	}
}

type common struct {
	dbDir, cacheDir, logLevel string
}

func (c *common) register(fs *flag.FlagSet, level string) {
	fs.StringVar(&c.dbDir, "db-dir", "", "directory holding db/trivy.db and db/metadata.json (required)")
	fs.StringVar(&c.cacheDir, "cache-dir", "", "layer analysis cache and temporary files (required)")
	fs.StringVar(&c.logLevel, "log-level", level, "debug, info, warn or error (logs go to stderr)")
}

func (c *common) check(fs *flag.FlagSet) error {
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	if c.dbDir == "" || c.cacheDir == "" {
		return fmt.Errorf("%w: --db-dir and --cache-dir are required", errUsage)
	}
	return nil
}

func (c *common) logger(stderr io.Writer) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(c.logLevel)); err != nil {
		return nil, fmt.Errorf("%w: --log-level: %w", errUsage, err)
	}
	l := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lvl}))
	slog.SetDefault(l) // Trivy logs through the default logger
	return l, nil
}

func parse(fs *flag.FlagSet, args []string, stderr io.Writer) error {
	fs.SetOutput(stderr)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	return nil
}

func runScan(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("scan", flag.ContinueOnError)
	var c common
	c.register(fs, "warn")
	var req scanner.Request
	var passwordStdin bool
	fs.StringVar(&req.Image, "image", "", "image reference, e.g. 127.0.0.1:5000/ns/repo@sha256:… (required)")
	fs.StringVar(&req.Username, "username", "", "registry username")
	fs.StringVar(&req.Password, "password", "", "registry password (prefer --password-stdin)")
	fs.BoolVar(&passwordStdin, "password-stdin", false, "read the registry password from stdin")
	fs.BoolVar(&req.Insecure, "insecure", false, "allow plain HTTP and unverified TLS to the registry")
	timeout := fs.Duration("timeout", 10*time.Minute, "give up after this long")
	if err := parse(fs, args, stderr); err != nil {
		return err
	}
	if err := c.check(fs); err != nil {
		return err
	}
	if req.Image == "" {
		return fmt.Errorf("%w: --image is required", errUsage)
	}
	if passwordStdin {
		if req.Password != "" {
			return fmt.Errorf("%w: --password and --password-stdin are exclusive", errUsage)
		}
		line, err := bufio.NewReader(stdin).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("read password from stdin: %w", err)
		}
		req.Password = strings.TrimRight(line, "\r\n")
	}
	log, err := c.logger(stderr)
	if err != nil {
		return err
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()

	s, err := scanner.New(scanner.Options{DBDir: c.dbDir, CacheDir: c.cacheDir, ManageTMPDIR: true, Logger: log})
	if err != nil {
		return err
	}
	rep, err := s.Scan(ctx, req)
	if cerr := s.Close(); cerr != nil {
		log.Warn("closing the scanner", "err", cerr)
	}
	if cerr := scanner.CleanupTemp(); cerr != nil {
		log.Warn("removing temporary files", "err", cerr)
	}
	if err != nil {
		return err
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}

func runServe(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	var c common
	c.register(fs, "info")
	addr := fs.String("addr", "127.0.0.1:0", "listen address; port 0 picks a free port (the real address is printed)")
	maxScans := fs.Int("max-scans", 1, "scans run at once; more wait their turn")
	scanTimeout := fs.Duration("scan-timeout", 10*time.Minute, "limit for one scan, waiting included")
	grace := fs.Duration("shutdown-timeout", 30*time.Second, "on SIGTERM, how long running scans may finish")
	if err := parse(fs, args, stderr); err != nil {
		return err
	}
	if err := c.check(fs); err != nil {
		return err
	}
	log, err := c.logger(stderr)
	if err != nil {
		return err
	}

	s, err := scanner.New(scanner.Options{DBDir: c.dbDir, CacheDir: c.cacheDir, ManageTMPDIR: true, MaxScans: *maxScans, Logger: log})
	if err != nil {
		return err
	}
	defer func() {
		if err := s.Close(); err != nil {
			log.Warn("closing the scanner", "err", err)
		}
		if err := scanner.CleanupTemp(); err != nil {
			log.Warn("removing temporary files", "err", err)
		}
	}()
	if _, err := s.DBInfo(); err != nil {
		log.Warn("serving without a vulnerability DB until one is installed", "err", err)
	}

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	baseCtx, cancelScans := context.WithCancel(context.Background())
	defer cancelScans()
	srv := &http.Server{
		Handler:           scanner.NewHandler(s, scanner.HandlerOptions{ScanTimeout: *scanTimeout, Logger: log}),
		ReadHeaderTimeout: 10 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return baseCtx },
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	// Berth starts the scanner as a child and reads this line to learn the address.
	fmt.Fprintf(stdout, "listening on %s\n", ln.Addr())
	log.Info("berth-scanner serving", "addr", ln.Addr().String(), "trivy", scanner.TrivyVersion())

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sig)
	select {
	case err := <-served:
		return err
	case got := <-sig:
		log.Info("shutting down", "signal", got.String())
	}
	ctx, cancel := context.WithTimeout(context.Background(), *grace)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		log.Warn("running scans did not finish in time; cancelling them", "err", err)
		cancelScans()
		_ = srv.Close()
	}
	return nil
}
