// Package scanner owns Berth's image vulnerability scanning: it runs Trivy (v0.74, as a library) offline
// against a vulnerability DB directory and a layer analysis cache, pulls images from a registry with
// username/password credentials, and turns Trivy's results into Berth's small Report.
//
// It is a nested module because Trivy is heavy (≈2.5 GiB of modules, GOEXPERIMENT=jsonv2 required); the
// berth-scanner binary (cmd/berth-scanner) serves it over HTTP to Berth, or scans once from the command line.
//
//	s, err := scanner.New(scanner.Options{DBDir: "/data/scan-db", CacheDir: "/data/scan-cache"})
//	...
//	defer s.Close()
//	report, err := s.Scan(ctx, scanner.Request{Image: "127.0.0.1:5000/ns/app@sha256:…", Username: u, Password: p})
//
// Trivy keeps its vulnerability DB and its temporary directory in process-wide state, so a process holds at
// most one Scanner at a time.
package scanner

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	cdx "github.com/CycloneDX/cyclonedx-go"
	tdb "github.com/aquasecurity/trivy-db/pkg/db"
	"github.com/aquasecurity/trivy-db/pkg/metadata"
	dbtypes "github.com/aquasecurity/trivy-db/pkg/types"
	"github.com/aquasecurity/trivy/pkg/cache"
	"github.com/aquasecurity/trivy/pkg/db"
	"github.com/aquasecurity/trivy/pkg/fanal/analyzer"
	"github.com/aquasecurity/trivy/pkg/fanal/applier"
	"github.com/aquasecurity/trivy/pkg/fanal/artifact"
	artimage "github.com/aquasecurity/trivy/pkg/fanal/artifact/image"
	"github.com/aquasecurity/trivy/pkg/fanal/image"
	ftypes "github.com/aquasecurity/trivy/pkg/fanal/types"
	tlog "github.com/aquasecurity/trivy/pkg/log"
	"github.com/aquasecurity/trivy/pkg/sbom/cyclonedx"
	"github.com/aquasecurity/trivy/pkg/scan"
	"github.com/aquasecurity/trivy/pkg/scan/langpkg"
	"github.com/aquasecurity/trivy/pkg/scan/local"
	"github.com/aquasecurity/trivy/pkg/scan/ospkg"
	"github.com/aquasecurity/trivy/pkg/types"
	"github.com/aquasecurity/trivy/pkg/vulnerability"
	xhttp "github.com/aquasecurity/trivy/pkg/x/http"
	xos "github.com/aquasecurity/trivy/pkg/x/os"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// Errors callers branch on (the HTTP server maps them to status codes). Scan and DBInfo wrap them.
var (
	ErrNoDB             = errors.New("no vulnerability DB")
	ErrInvalidRequest   = errors.New("invalid scan request")
	ErrImageNotFound    = errors.New("image not found")
	ErrRegistryDenied   = errors.New("registry refused the credentials")
	ErrRegistry         = errors.New("registry error")
	errScannerInProcess = errors.New("a Scanner is already open in this process (Trivy keeps its DB in a global)")
)

// Options configure a Scanner.
type Options struct {
	// DBDir holds the vulnerability DB as DBDir/db/trivy.db and DBDir/db/metadata.json (what
	// `berth admin scan-db build --out DBDir` writes, or a copy of Trivy's cache dir). Never downloaded.
	DBDir string
	// CacheDir holds the layer analysis cache (CacheDir/fanal/fanal.db), and temporary files in CacheDir/tmp
	// with ManageTMPDIR. Layers analysed once are not downloaded or analysed again.
	CacheDir string
	// ManageTMPDIR points TMPDIR at CacheDir/tmp for the whole process (Trivy writes layer files under
	// TMPDIR) and removes the trivy-* directories earlier processes left there. For a process that owns
	// its environment, like berth-scanner; tests leave it off (t.TempDir follows TMPDIR).
	ManageTMPDIR bool
	// MaxScans bounds concurrent scans; further scans wait their turn. Default 1: a scan uses the cores it gets.
	MaxScans int
	// Parallel is how many layers of one image are analysed at once. Default 5, as in `trivy image`.
	Parallel int
	// UserAgent is sent to registries. Default "berth-scanner (trivy/<version>)".
	UserAgent string
	// Logger receives the scanner's own messages. Default slog.Default(). Trivy logs through slog.Default;
	// if the program has not set one, New makes Logger (or a stderr logger at Warn) the default.
	Logger *slog.Logger
}

// Request names the image to scan and how to reach its registry.
type Request struct {
	Image    string `json:"image"` // host:port/ns/repo@sha256:… (a tag works too)
	Username string `json:"username,omitempty"`
	Password string `json:"password,omitempty"`
	// Insecure allows plain HTTP and unverified TLS for the registry.
	Insecure bool `json:"insecure,omitempty"`
	// SBOM asks for the image's SBOM (CycloneDX JSON) in the report too, made from the same analysis.
	SBOM bool `json:"sbom,omitempty"`
}

// Scanner scans images with Trivy. It is safe for concurrent use.
type Scanner struct {
	opts    Options
	log     *slog.Logger
	version string
	// trivyTmp is Trivy's per-process temporary directory.
	trivyTmp string

	cache      cache.Cache
	closeCache func()
	slots      chan struct{} // one per running scan

	// mu guards the open DB: scans hold it for reading; a reload after the DB files change holds it for writing.
	mu     sync.RWMutex
	db     *openDB // nil until a DB was opened
	closed bool
}

// errClosed is returned by a Scanner after Close.
var errClosed = errors.New("scanner closed")

type openDB struct {
	meta metadata.Metadata
	file os.FileInfo // trivy.db when opened, to notice a replaced file
}

var scannerOpen atomic.Bool

// New opens the layer cache and, if present, the vulnerability DB. A missing DB is not an error here: Scan
// and DBInfo report it (wrapping ErrNoDB) until one is installed, and a new DB is picked up without restart.
func New(opts Options) (*Scanner, error) {
	if opts.DBDir == "" || opts.CacheDir == "" {
		return nil, errors.New("scanner: DBDir and CacheDir are required")
	}
	var err error
	if opts.DBDir, err = filepath.Abs(opts.DBDir); err != nil {
		return nil, err
	}
	if opts.CacheDir, err = filepath.Abs(opts.CacheDir); err != nil {
		return nil, err
	}
	if opts.MaxScans <= 0 {
		opts.MaxScans = 1
	}
	if opts.Parallel <= 0 {
		opts.Parallel = 5
	}
	if _, deferred := slog.Default().Handler().(*tlog.DeferredHandler); deferred {
		// Until a program installs a logger, Trivy's log package buffers every record, debug included, in
		// memory and without locking. Install ours so a long-running scanner neither grows nor races.
		l := opts.Logger
		if l == nil {
			l = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
		}
		slog.SetDefault(l)
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	version := TrivyVersion()
	if opts.UserAgent == "" {
		opts.UserAgent = "berth-scanner (trivy/" + version + ")"
	}
	if !scannerOpen.CompareAndSwap(false, true) {
		return nil, errScannerInProcess
	}
	s := &Scanner{opts: opts, log: opts.Logger, version: version, slots: make(chan struct{}, opts.MaxScans)}
	if err := s.init(); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func (s *Scanner) init() error {
	// The fs cache is a bbolt file with an exclusive lock: once it is open no other scanner uses this
	// cache dir, so leftovers in its tmp are ours to remove.
	c, closeCache, err := cache.New(cache.Options{Backend: "fs", CacheDir: s.opts.CacheDir})
	if err != nil {
		return fmt.Errorf("open layer cache in %s: %w", s.opts.CacheDir, err)
	}
	s.cache, s.closeCache = c, closeCache
	if s.opts.ManageTMPDIR {
		if err := s.useTempDir(filepath.Join(s.opts.CacheDir, "tmp")); err != nil {
			return err
		}
	}
	s.trivyTmp = xos.TempDir()
	return s.loadDB()
}

// useTempDir points TMPDIR at dir and removes the trivy-* directories earlier processes left there.
// Trivy makes one such directory per process, on first use (so a second Scanner in the same process
// keeps the first one's).
func (s *Scanner) useTempDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create temporary dir: %w", err)
	}
	if err := os.Setenv("TMPDIR", dir); err != nil {
		return err
	}
	own := xos.TempDir()
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		if strings.HasPrefix(e.Name(), "trivy-") && p != own {
			if err := os.RemoveAll(p); err != nil {
				s.log.Warn("removing an old temporary directory", "dir", p, "err", err)
			}
		}
	}
	return nil
}

func (s *Scanner) loadDB() error {
	if err := s.ensureDB(); err != nil && !errors.Is(err, ErrNoDB) {
		s.log.Warn("vulnerability DB not usable yet", "err", err)
	}
	return nil
}

// Close releases the DB and the cache, and empties Trivy's temporary directory.
func (s *Scanner) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	var errs []error
	if s.db != nil {
		errs = append(errs, db.Close())
		s.db = nil
	}
	if s.closeCache != nil {
		s.closeCache()
		s.closeCache = nil
	}
	if s.trivyTmp != "" {
		errs = append(errs, emptyDir(s.trivyTmp))
	}
	scannerOpen.Store(false)
	return errors.Join(errs...)
}

// emptyDir removes what is in dir but keeps dir: Trivy remembers its temporary directory for the life of
// the process (the command removes it on exit with CleanupTemp).
func emptyDir(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	var errs []error
	for _, e := range entries {
		errs = append(errs, os.RemoveAll(filepath.Join(dir, e.Name())))
	}
	return errors.Join(errs...)
}

// CleanupTemp removes Trivy's temporary directory. Call it once, at process exit, after Close.
func CleanupTemp() error { return xos.Cleanup() }

// TrivyVersion is the version of the Trivy library linked in, e.g. "0.74.0".
func TrivyVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, dep := range bi.Deps {
			if dep.Path == "github.com/aquasecurity/trivy" {
				if dep.Replace != nil && dep.Replace.Version != "" {
					dep = dep.Replace
				}
				return strings.TrimPrefix(dep.Version, "v")
			}
		}
	}
	return "0.74.0" // go.mod pins it; build info is missing only in unusual builds
}

// DBInfo returns the metadata of the DB in use, reloading it first if the files changed.
func (s *Scanner) DBInfo() (DBInfo, error) {
	if err := s.ensureDB(); err != nil {
		return DBInfo{}, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed || s.db == nil {
		return DBInfo{}, errClosed
	}
	return dbInfo(s.db.meta), nil
}

func dbInfo(m metadata.Metadata) DBInfo {
	v := fmt.Sprintf("v%d", m.Version)
	if !m.UpdatedAt.IsZero() {
		v = m.UpdatedAt.UTC().Format(time.RFC3339)
	}
	return DBInfo{Version: v, Schema: m.Version, UpdatedAt: m.UpdatedAt, NextUpdate: m.NextUpdate, DownloadedAt: m.DownloadedAt}
}

// ensureDB opens the DB, or reopens it when trivy.db or metadata.json changed since it was opened.
func (s *Scanner) ensureDB() error {
	dbDir := db.Dir(s.opts.DBDir)
	meta, file, err := statDB(dbDir)
	if err != nil {
		return err
	}
	same := func(o *openDB) bool {
		return o != nil && os.SameFile(o.file, file) && o.file.ModTime().Equal(file.ModTime()) &&
			o.file.Size() == file.Size() && o.meta.UpdatedAt.Equal(meta.UpdatedAt) &&
			o.meta.DownloadedAt.Equal(meta.DownloadedAt)
	}
	s.mu.RLock()
	ok := same(s.db)
	s.mu.RUnlock()
	if ok {
		return nil
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errClosed
	}
	if same(s.db) {
		return nil
	}
	if s.db != nil {
		if err := db.Close(); err != nil {
			s.log.Warn("closing the old vulnerability DB", "err", err)
		}
		s.db = nil
	}
	// Trivy's Init opens read-only and never downloads.
	if err := db.Init(dbDir); err != nil {
		return fmt.Errorf("%w in %s: open trivy.db: %w", ErrNoDB, dbDir, err)
	}
	s.db = &openDB{meta: meta, file: file}
	s.log.Info("vulnerability DB opened", "dir", dbDir, "version", dbInfo(meta).Version)
	return nil
}

// statDB checks dbDir holds a DB this Trivy can read, without creating anything (db.Init would create
// an empty trivy.db in a read-write open).
func statDB(dbDir string) (metadata.Metadata, os.FileInfo, error) {
	file, err := os.Stat(tdb.Path(dbDir))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return metadata.Metadata{}, nil, fmt.Errorf("%w in %s: trivy.db not found (build one with `berth admin scan-db build` or copy a Trivy DB there)", ErrNoDB, dbDir)
		}
		return metadata.Metadata{}, nil, fmt.Errorf("%w in %s: %w", ErrNoDB, dbDir, err)
	}
	meta, err := metadata.NewClient(dbDir).Get()
	if err != nil {
		return metadata.Metadata{}, nil, fmt.Errorf("%w in %s: metadata.json: %w", ErrNoDB, dbDir, err)
	}
	if meta.Version != tdb.SchemaVersion {
		return metadata.Metadata{}, nil, fmt.Errorf("%w in %s: schema version %d, this scanner reads %d",
			ErrNoDB, dbDir, meta.Version, tdb.SchemaVersion)
	}
	return meta, file, nil
}

// disabledAnalyzers are those `trivy image --scanners vuln` disables, plus the ones that would reach the
// network or a DB we do not have: executables (Rekor) and JARs (Java DB).
var disabledAnalyzers = func() []analyzer.Type {
	var a []analyzer.Type
	a = append(a, analyzer.TypeLockfiles...)   // `trivy image` does not scan lock files
	a = append(a, analyzer.TypeConfigFiles...) // misconfiguration
	return append(a,
		analyzer.TypeSecret, analyzer.TypeImageConfigSecret, // secrets
		analyzer.TypeLicenseFile, analyzer.TypeDpkgLicense, // licences
		analyzer.TypeHistoryDockerfile, analyzer.TypeApkCommand, // image config
		analyzer.TypeExecutable, // queries Rekor over the network
		analyzer.TypeJar,        // needs the Java DB
		analyzer.TypeRpmArchive, // experimental in Trivy
	)
}()

// Scan pulls the image's manifest and config, analyses the layers not yet in the cache and matches the
// packages found against the DB. Errors wrap ErrInvalidRequest, ErrNoDB, ErrImageNotFound, ErrRegistryDenied
// or ErrRegistry where they apply, and the context's error when it ends.
func (s *Scanner) Scan(ctx context.Context, req Request) (Report, error) {
	if strings.TrimSpace(req.Image) == "" {
		return Report{}, fmt.Errorf("%w: image is required", ErrInvalidRequest)
	}
	var nameOpts []name.Option
	if req.Insecure {
		nameOpts = append(nameOpts, name.Insecure)
	}
	if _, err := name.ParseReference(req.Image, nameOpts...); err != nil {
		return Report{}, fmt.Errorf("%w: image %q: %w", ErrInvalidRequest, req.Image, err)
	}
	if req.Password != "" && req.Username == "" {
		return Report{}, fmt.Errorf("%w: password given without username", ErrInvalidRequest)
	}

	select {
	case s.slots <- struct{}{}:
		defer func() { <-s.slots }()
	case <-ctx.Done():
		return Report{}, ctx.Err()
	}

	if err := s.ensureDB(); err != nil {
		return Report{}, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed || s.db == nil {
		return Report{}, errClosed
	}

	started := time.Now().UTC()
	tr, err := s.scan(ctx, req)
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return Report{}, fmt.Errorf("scan %s: %w", req.Image, ctxErr)
		}
		return Report{}, classify(req.Image, err)
	}
	rep := Report{
		Scanner:         "trivy",
		ScannerVersion:  s.version,
		DBVersion:       dbInfo(s.db.meta).Version,
		StartedAt:       started,
		FinishedAt:      time.Now().UTC(),
		Vulnerabilities: vulnerabilities(tr),
	}
	if detected := tr.Metadata.OS; detected != nil {
		rep.OS = strings.TrimSpace(string(detected.Family) + " " + detected.Name)
	}
	if req.SBOM {
		if rep.SBOM, err = s.cycloneDX(ctx, tr); err != nil {
			return Report{}, fmt.Errorf("SBOM of %s: %w", req.Image, err)
		}
	}
	return rep, nil
}

// cycloneDX is the CycloneDX JSON SBOM of a scan's report: every package found (the report keeps them all;
// only Trivy's JSON output drops those without findings), as `trivy image --format cyclonedx` writes it.
func (s *Scanner) cycloneDX(ctx context.Context, tr types.Report) ([]byte, error) {
	m := cyclonedx.NewMarshaler(s.version)
	bom, err := m.MarshalReport(ctx, tr)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	enc := cdx.NewBOMEncoder(&buf, cdx.BOMFileFormatJSON)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(bom); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func (s *Scanner) scan(ctx context.Context, req Request) (types.Report, error) {
	regOpts := ftypes.RegistryOptions{Insecure: req.Insecure}
	if req.Username != "" {
		regOpts.Credentials = []ftypes.Credential{{Username: req.Username, Password: req.Password}}
	}
	imgOpts := ftypes.ImageOptions{RegistryOptions: regOpts, ImageSources: ftypes.ImageSources{ftypes.RemoteImageSource}}
	ctx = xhttp.WithTransport(ctx, xhttp.NewTransport(xhttp.Options{Insecure: req.Insecure, UserAgent: s.opts.UserAgent}))

	img, cleanup, err := image.NewContainerImage(ctx, req.Image, imgOpts)
	if err != nil {
		return types.Report{}, err
	}
	defer cleanup()

	art, err := artimage.NewArtifact(img, s.cache, artifact.Option{
		DisabledAnalyzers: disabledAnalyzers,
		Parallel:          s.opts.Parallel,
		NoProgress:        true,
		Offline:           true,
		Insecure:          req.Insecure,
		ImageOption:       imgOpts,
	})
	if err != nil {
		return types.Report{}, fmt.Errorf("prepare image analysis: %w", err)
	}
	backend := local.NewService(applier.NewApplier(s.cache), ospkg.NewScanner(), langpkg.NewScanner(),
		vulnerability.NewClient(tdb.Config{}))
	return scan.NewService(backend, art).ScanArtifact(ctx, types.ScanOptions{
		PkgTypes:         []string{types.PkgTypeOS, types.PkgTypeLibrary},
		PkgRelationships: ftypes.Relationships, // all of them; without it nothing is matched
		Scanners:         types.Scanners{types.VulnerabilityScanner},
		// "auto": the advisory's own source first, then NVD, as `trivy image` does by default.
		VulnSeveritySources: []dbtypes.SourceID{"auto"},
	})
}

// classify wraps a Trivy/registry error with the sentinel a caller can act on.
func classify(ref string, err error) error {
	var terr *transport.Error
	if errors.As(err, &terr) {
		switch {
		case terr.StatusCode == http.StatusNotFound || hasCode(terr, transport.ManifestUnknownErrorCode, transport.NameUnknownErrorCode):
			return oneLine(fmt.Errorf("%w: %s: %w", ErrImageNotFound, ref, err))
		case terr.StatusCode == http.StatusUnauthorized || terr.StatusCode == http.StatusForbidden:
			return oneLine(fmt.Errorf("%w for %s: %w", ErrRegistryDenied, ref, err))
		default:
			return oneLine(fmt.Errorf("%w: %s: %w", ErrRegistry, ref, err))
		}
	}
	var nerr net.Error
	if errors.As(err, &nerr) {
		return oneLine(fmt.Errorf("%w: %s: %w", ErrRegistry, ref, err))
	}
	return oneLine(fmt.Errorf("scan %s: %w", ref, err))
}

// oneLine keeps err for errors.Is/As but prints it on one line: Trivy's multi-errors span several.
func oneLine(err error) error { return lineError{err} }

type lineError struct{ err error }

func (e lineError) Error() string { return strings.Join(strings.Fields(e.err.Error()), " ") }
func (e lineError) Unwrap() error { return e.err }

func hasCode(terr *transport.Error, codes ...transport.ErrorCode) bool {
	for _, d := range terr.Errors {
		for _, c := range codes {
			if d.Code == c {
				return true
			}
		}
	}
	return false
}

// vulnerabilities flattens Trivy's per-target results into one list, one entry per vulnerable package
// version (the same package found at two paths is one finding for Berth).
func vulnerabilities(r types.Report) []Vulnerability {
	out := []Vulnerability{}
	seen := make(map[Vulnerability]bool)
	for _, res := range r.Results {
		for _, v := range res.Vulnerabilities {
			link := v.PrimaryURL
			if link == "" && len(v.References) > 0 {
				link = v.References[0]
			}
			f := Vulnerability{
				ID:               v.VulnerabilityID,
				Package:          v.PkgName,
				InstalledVersion: v.InstalledVersion,
				FixedVersion:     v.FixedVersion,
				//lint:ignore SA1019 on a detected vulnerability this is the severity Trivy selected (trivy's own JSON "Severity")
				Severity: v.Severity,
				Title:    v.Title,
				Link:     link,
			}
			if f.Severity == "" {
				f.Severity = "UNKNOWN"
			}
			if !seen[f] {
				seen[f] = true
				out = append(out, f)
			}
		}
	}
	sortVulnerabilities(out)
	return out
}
