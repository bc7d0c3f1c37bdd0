package workers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-dev/berth/pipeline"
	"github.com/berth-dev/berth/policies/security"
	"github.com/berth-dev/berth/store"
)

// ScanRequest is a POST /scan of berth-scanner (workers/scanner): the image and how to pull it.
type ScanRequest struct {
	Image    string `json:"image"`
	Username string `json:"username,omitempty"`
	Password string `json:"password,omitempty"`
	Insecure bool   `json:"insecure,omitempty"`
	// SBOM asks for the image's CycloneDX SBOM in the report too.
	SBOM bool `json:"sbom,omitempty"`
}

// ScanReport is berth-scanner's report (the fields Berth keeps).
type ScanReport struct {
	Scanner         string              `json:"scanner"`
	ScannerVersion  string              `json:"scanner_version"`
	DBVersion       string              `json:"db_version"`
	OS              string              `json:"os"`
	StartedAt       time.Time           `json:"started_at"`
	FinishedAt      time.Time           `json:"finished_at"`
	Vulnerabilities []ScanVulnerability `json:"vulnerabilities"`
	// SBOM is the image's CycloneDX JSON SBOM when the request asked for it.
	SBOM json.RawMessage `json:"sbom,omitempty"`
}

// ScanVulnerability is one finding of a ScanReport.
type ScanVulnerability struct {
	ID               string `json:"id"`
	Package          string `json:"package"`
	InstalledVersion string `json:"installed_version"`
	FixedVersion     string `json:"fixed_version"`
	Severity         string `json:"severity"`
	Title            string `json:"title"`
	Link             string `json:"link"`
}

// ScanDBInfo is berth-scanner's GET /db.
type ScanDBInfo struct {
	Version   string    `json:"version"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Scanner is the vulnerability scanner as the scan worker uses it. ScannerClient speaks to a berth-scanner;
// serve wraps it to start berth-scanner as a child when needed.
type Scanner interface {
	Scan(ctx context.Context, req ScanRequest) (ScanReport, error)
	DB(ctx context.Context) (ScanDBInfo, error)
}

// Scanner error codes Berth branches on (workers/scanner's API).
const (
	ScannerNoVulnDB    = "NO_VULN_DB"
	ScannerUnreachable = "SCANNER_UNREACHABLE"
)

// ScannerError is an answer of the scanner that is not a report, or the scanner not being there.
type ScannerError struct {
	Status  int // HTTP status; 0 when the scanner was not reached
	Code    string
	Message string
}

func (e *ScannerError) Error() string {
	if e.Code == ScannerNoVulnDB {
		return "no vulnerability DB: " + e.Message
	}
	return e.Message
}

// Unreachable reports whether the scanner was not reached at all (worth a retry).
func (e *ScannerError) Unreachable() bool { return e.Code == ScannerUnreachable }

// ScannerClient calls a berth-scanner serve at Addr (host:port).
type ScannerClient struct {
	Addr string
	HTTP *http.Client // default: no overall timeout (ctx bounds a scan)
}

func (c *ScannerClient) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://"+c.Addr+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return &ScannerError{Code: ScannerUnreachable, Message: fmt.Sprintf("scanner at %s unreachable: %v", c.Addr, err)}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return &ScannerError{Code: ScannerUnreachable, Message: fmt.Sprintf("scanner at %s: reading the answer: %v", c.Addr, err)}
	}
	if resp.StatusCode != http.StatusOK {
		var e struct{ Code, Message string }
		if json.Unmarshal(data, &e) != nil || e.Code == "" {
			e.Code, e.Message = "SCAN_FAILED", fmt.Sprintf("scanner answered %d: %.200s", resp.StatusCode, data)
		}
		return &ScannerError{Status: resp.StatusCode, Code: e.Code, Message: e.Message}
	}
	return json.Unmarshal(data, out)
}

// Scan posts req to the scanner.
func (c *ScannerClient) Scan(ctx context.Context, req ScanRequest) (ScanReport, error) {
	var r ScanReport
	err := c.do(ctx, http.MethodPost, "/scan", req, &r)
	return r, err
}

// DB asks which vulnerability DB the scanner has.
func (c *ScannerClient) DB(ctx context.Context) (ScanDBInfo, error) {
	var d ScanDBInfo
	err := c.do(ctx, http.MethodGet, "/db", nil, &d)
	return d, err
}

// NoScannerMessage is the error of scans when no scanner is configured.
const NoScannerMessage = "no scanner: build bin/berth-scanner (task build-scanner) or set --scanner-addr"

// ScanRunner runs image:scan tasks: it asks the scanner for a report on each image of the manifest (each
// platform image of an index), stores the result per digest, and hands the pushes waiting for it to the
// policy gate and their triggers.
type ScanRunner struct {
	Scans *pipeline.Scans
	// Content reads manifests from the registry's storage.
	Content pipeline.Content
	// Scanner nil fails every scan with NoScannerMessage.
	Scanner Scanner
	// Credentials issue the scanner's pull logins.
	Credentials *pipeline.ScanCredentials
	// Registry is the host[:port] the scanner pulls from; Insecure when it speaks plain HTTP.
	Registry string
	Insecure bool
	Logger   *slog.Logger
}

func (d Deps) scanImage(ctx context.Context, t *asynq.Task) error {
	if d.Scans == nil {
		return fmt.Errorf("%w: this worker was started without a scan runner", asynq.SkipRetry)
	}
	return d.Scans.Run(ctx, t)
}

// errRetry marks a scan failure worth another attempt (the scanner was not reached).
type errRetry struct{ err error }

func (e errRetry) Error() string { return e.err.Error() }

// Run handles one image:scan task.
func (r *ScanRunner) Run(ctx context.Context, t *asynq.Task) error {
	var p pipeline.ScanTask
	if err := json.Unmarshal(t.Payload(), &p); err != nil || p.Digest == "" || p.Repository == "" {
		return fmt.Errorf("%w: bad scan task payload", asynq.SkipRetry)
	}
	st := r.Scans.Store
	started := time.Now().UTC()
	if err := st.StartScan(ctx, p.Digest, p.Repository, started); err != nil {
		return err
	}
	r.Scans.Gate.Changed()
	res, err := r.scanManifest(ctx, p.Repository, p.Digest, started)
	if err != nil {
		var rt errRetry
		retried, _ := asynq.GetRetryCount(ctx)
		maxRetry, _ := asynq.GetMaxRetry(ctx)
		if errors.As(err, &rt) && retried < maxRetry {
			r.log().Warn("scan: scanner unreachable, will retry", "digest", p.Digest, "err", err)
			return err
		}
		if ctx.Err() != nil && retried < maxRetry {
			return ctx.Err()
		}
		res = failed(started, err.Error())
	}
	sc, err := st.FinishScan(context.WithoutCancel(ctx), p.Digest, res)
	if err != nil {
		return err
	}
	r.Scans.Gate.Changed()
	r.log().Info("scan finished", "repository", p.Repository, "digest", p.Digest, "status", sc.Status,
		"high", sc.Summary.High, "medium", sc.Summary.Medium, "low", sc.Summary.Low, "unrated", sc.Summary.Unrated,
		"error", sc.Error, "took", time.Since(started).Round(time.Millisecond), "reason", p.Reason)
	return r.Scans.Release(context.WithoutCancel(ctx), sc)
}

func failed(started time.Time, msg string) store.ScanResult {
	return store.ScanResult{Status: store.ScanFailed, StartedAt: started, FinishedAt: time.Now().UTC(), Error: msg}
}

// Media types of what can be scanned.
var (
	manifestTypes = map[string]bool{ocispec.MediaTypeImageManifest: true, "application/vnd.docker.distribution.manifest.v2+json": true}
	indexTypes    = map[string]bool{ocispec.MediaTypeImageIndex: true, "application/vnd.docker.distribution.manifest.list.v2+json": true}
	configTypes   = map[string]bool{ocispec.MediaTypeImageConfig: true, "application/vnd.docker.container.image.v1+json": true}
)

type manifestDoc struct {
	MediaType string               `json:"mediaType"`
	Config    *ocispec.Descriptor  `json:"config"`
	Manifests []ocispec.Descriptor `json:"manifests"`
}

// scanManifest scans an image, or each platform image of an index (blocked when any child is). Artifacts that
// are not images (a build cache, a mirrored DB) have nothing to scan: DONE with no findings.
func (r *ScanRunner) scanManifest(ctx context.Context, repo, digest string, started time.Time) (store.ScanResult, error) {
	mt, payload, _, err := r.Content.GetManifest(ctx, repo, digest)
	if err != nil {
		return failed(started, fmt.Sprintf("manifest %s is not in %s any more: %v", digest, repo, err)), nil
	}
	var m manifestDoc
	if err := json.Unmarshal(payload, &m); err != nil {
		return failed(started, fmt.Sprintf("manifest %s is not JSON: %v", digest, err)), nil
	}
	if m.MediaType == "" {
		m.MediaType = mt
	}
	nothing := store.ScanResult{Status: store.ScanDone, StartedAt: started, FinishedAt: time.Now().UTC()}
	if m.Config != nil || manifestTypes[m.MediaType] {
		if m.Config == nil || !configTypes[m.Config.MediaType] {
			return nothing, nil
		}
		return r.scanImage(ctx, repo, digest, started)
	}
	var children []ocispec.Descriptor
	for _, d := range m.Manifests {
		if !manifestTypes[d.MediaType] || (d.Platform != nil && d.Platform.OS == "unknown") ||
			d.Annotations["vnd.docker.reference.type"] == "attestation-manifest" {
			continue
		}
		children = append(children, d)
	}
	if len(children) == 0 {
		return nothing, nil
	}
	agg := store.ScanResult{Status: store.ScanDone, StartedAt: started}
	seen := map[string]bool{}
	var errs []string
	for _, c := range children {
		cd := c.Digest.String()
		cstart := time.Now().UTC()
		if err := r.Scans.Store.StartScan(ctx, cd, repo, cstart); err != nil {
			return store.ScanResult{}, err
		}
		res, err := r.scanManifest(ctx, repo, cd, cstart)
		if err != nil {
			return store.ScanResult{}, err
		}
		if _, err := r.Scans.Store.FinishScan(ctx, cd, res); err != nil {
			return store.ScanResult{}, err
		}
		agg.Children = append(agg.Children, cd)
		if res.Status != store.ScanDone {
			errs = append(errs, platformOf(c)+": "+res.Error)
			continue
		}
		if agg.Scanner == "" {
			agg.Scanner, agg.DBVersion, agg.OS = res.Scanner, res.DBVersion, res.OS
		}
		for _, v := range res.Vulnerabilities {
			k := v.ID + "\x00" + v.Package + "\x00" + v.InstalledVersion
			if !seen[k] {
				seen[k] = true
				agg.Vulnerabilities = append(agg.Vulnerabilities, v)
			}
		}
	}
	if len(errs) > 0 {
		agg.Status, agg.Error = store.ScanFailed, strings.Join(errs, "; ")
	}
	agg.Summary = summarize(agg.Vulnerabilities)
	agg.FinishedAt = time.Now().UTC()
	return agg, nil
}

func platformOf(d ocispec.Descriptor) string {
	if d.Platform == nil {
		return d.Digest.String()
	}
	p := d.Platform.OS + "/" + d.Platform.Architecture
	if d.Platform.Variant != "" {
		p += "/" + d.Platform.Variant
	}
	return p
}

// scanImage has the scanner pull and scan one image manifest.
func (r *ScanRunner) scanImage(ctx context.Context, repo, digest string, started time.Time) (store.ScanResult, error) {
	if r.Scanner == nil {
		return failed(started, NoScannerMessage), nil
	}
	user, pass := r.Credentials.Issue(repo, pipeline.ScanTaskTimeout+5*time.Minute)
	rep, err := r.Scanner.Scan(ctx, ScanRequest{Image: r.Registry + "/" + repo + "@" + digest, Username: user, Password: pass,
		Insecure: r.Insecure})
	if err != nil {
		var se *ScannerError
		if errors.As(err, &se) && se.Unreachable() {
			return store.ScanResult{}, errRetry{err}
		}
		if ctx.Err() != nil {
			return store.ScanResult{}, ctx.Err()
		}
		return failed(started, err.Error()), nil
	}
	res := store.ScanResult{Status: store.ScanDone, Scanner: strings.TrimSpace(rep.Scanner + " " + rep.ScannerVersion),
		DBVersion: rep.DBVersion, OS: rep.OS, StartedAt: started, FinishedAt: time.Now().UTC(),
		Vulnerabilities: make([]store.ScanVulnerability, len(rep.Vulnerabilities))}
	for i, v := range rep.Vulnerabilities {
		res.Vulnerabilities[i] = store.ScanVulnerability(v)
	}
	res.Summary = summarize(res.Vulnerabilities)
	return res, nil
}

func summarize(vs []store.ScanVulnerability) store.ScanSummary {
	sv := make([]security.Vulnerability, len(vs))
	for i, v := range vs {
		sv[i] = security.Vulnerability{ID: v.ID, Severity: v.Severity}
	}
	s := security.Summarize(sv)
	return store.ScanSummary{High: s.High, Medium: s.Medium, Low: s.Low, Unrated: s.Unrated}
}

// RescanRecent queues a rescan of the images pushed since `since` (at most limit versions, newest first)
// whose last result did not use dbVersion; it returns how many it queued. Run it when the DB changes.
func (r *ScanRunner) RescanRecent(ctx context.Context, dbVersion string, since time.Time, limit int) (int, error) {
	vs, err := r.Scans.Store.RecentImageVersions(ctx, since, limit)
	if err != nil {
		return 0, err
	}
	done := map[string]bool{}
	n := 0
	for _, v := range vs {
		if done[v.Digest] {
			continue
		}
		done[v.Digest] = true
		if sc, err := r.Scans.Store.GetScan(ctx, v.Digest); err == nil &&
			(!store.ScanFinal(sc.Status) || (sc.ResultStatus == store.ScanDone && sc.DBVersion == dbVersion)) {
			continue // being scanned now, or scanned with this DB already
		}
		if err := r.Scans.Rescan(ctx, v.Repository, v.Digest, "db-update"); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

func (r *ScanRunner) log() *slog.Logger {
	if r.Logger == nil {
		return slog.Default()
	}
	return r.Logger
}
