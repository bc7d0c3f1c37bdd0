// Package server is Berth's HTTP API: the /api/v1 REST routes, the /hooks endpoint for inbound Git webhooks,
// authentication and authorization middleware, health, readiness and metrics. Handlers stay thin: parse,
// authorize, call a store or pipeline function, render.
package server

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/berth-dev/berth/store"
	"github.com/berth-dev/berth/webhooks/outbound"
)

// MaxBodyBytes bounds every JSON request body.
const MaxBodyBytes = 1 << 20

// Pagination bounds (SPEC §11).
const (
	DefaultPageSize = 20
	MaxPageSize     = 100
)

// Registry is the built-in registry as the API reads and changes it.
type Registry interface {
	GetManifest(ctx context.Context, name, reference string) (mediaType string, payload []byte, dgst string, err error)
	OpenBlob(ctx context.Context, name, dgst string) (io.ReadCloser, int64, error)
	ListTags(ctx context.Context, name string) ([]string, error)
	DeleteTag(ctx context.Context, name, tag string) error
	DeleteManifest(ctx context.Context, name, dgst string) error
	// DeleteRepository removes all of a repository's registry content (untagged manifests, referrers, blob
	// links, uploads), leaving unreferenced blobs to the garbage collector.
	DeleteRepository(ctx context.Context, name string) error
}

// ReadinessCheck is one dependency /readyz asks about. A failing check makes /readyz answer 503, unless it is
// Optional: builds and scans report {"ok": false, "reason": …} there while the API and registry serve.
type ReadinessCheck struct {
	Name     string
	Check    func(ctx context.Context) error
	Optional bool
}

// Deps are everything the API needs; the binary wires them.
type Deps struct {
	Store          store.Store
	Auth           Authenticator
	Logger         *slog.Logger
	Region         string
	AccountID      string
	NamespaceLimit int      // 0 = unlimited
	Registry       Registry // may be nil in tests of metadata-only routes
	Ready          []ReadinessCheck
	Metrics        *prometheus.Registry // may be nil
	Triggers       TriggerService       // may be nil: creating and testing triggers then answer 503
	Builds         BuildService         // may be nil: sources, build now, cancel and webhooks then answer 503
	Scans          ScanService          // may be nil: tags show NOT_SCANNED, unblocked, and POST …/scan answers 503
	// SourceGuard vets the hosts of non-administrators' code sources (--source-allow-cidr); nil refuses
	// every non-public address.
	SourceGuard *outbound.Guard
	Workers     WorkerService        // may be nil: GET /api/v1/system/workers answers 503
	GC          GCService            // may be nil: POST /api/v1/system/gc then answers 503
	Retention   RetentionService     // may be nil: POST …/retention-runs then answers 503
	Scanner     ScannerStatusService // may be nil: GET /api/v1/system/scanner then answers 503
	// Audit takes an entry for every change and failed sign-in (SPEC §14); nil keeps no audit log.
	Audit Auditor
	// SigningKey is the instance's image signing key (SPEC §15); nil: GET /api/v1/system/signing-key answers 503.
	SigningKey SigningKey
}

// SigningKey is the instance's image signing key as the API shows it: its public half only.
type SigningKey interface {
	PublicPEM() ([]byte, error)
}

type api struct {
	Deps
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
}

// New builds the HTTP handler of the API.
func New(d Deps) http.Handler {
	if d.Logger == nil {
		d.Logger = slog.Default()
	}
	if d.Metrics == nil {
		d.Metrics = prometheus.NewRegistry()
	}
	a := &api{Deps: d}
	a.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "berth_api_requests_total", Help: "REST API requests by route and status.",
	}, []string{"method", "route", "status"})
	a.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "berth_api_request_duration_seconds", Help: "REST API request latency.",
		Buckets: prometheus.DefBuckets,
	}, []string{"method", "route"})
	d.Metrics.MustRegister(a.requests, a.latency)

	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.HandleMethodNotAllowed = true
	// gin's own c.ClientIP would believe X-Forwarded-For from anyone; ClientIP (package forwarded) is the one
	// that knows the trusted proxies.
	r.ForwardedByClientIP = false
	r.Use(a.requestID, a.recover, a.observe, limitBody)
	r.GET("/healthz", func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"status": "ok"}) })
	r.GET("/readyz", a.readyz)
	r.GET("/metrics", gin.WrapH(promhttp.HandlerFor(d.Metrics, promhttp.HandlerOpts{})))
	r.GET("/api/v1/openapi.json", a.openapi)
	// Inbound Git webhooks: no user authentication (receiveHook verifies the signature) and their own body limit.
	r.POST(hookPath, a.receiveHook)
	for _, rt := range routes {
		rt := rt
		r.Handle(rt.Method, rt.Path, a.audit(rt), refuseCrossSite, a.authorize(rt), func(c *gin.Context) { rt.Handle(a, c) })
	}
	r.NoRoute(func(c *gin.Context) {
		fail(c, notFound("no route %s %s; the API is described at /api/v1/openapi.json", c.Request.Method, c.Request.URL.Path))
	})
	r.NoMethod(func(c *gin.Context) {
		fail(c, errf(http.StatusMethodNotAllowed, CodeInvalidArgument, "method %s is not allowed on %s", c.Request.Method, c.Request.URL.Path))
	})
	return r
}

var requestIDPattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

func (a *api) requestID(c *gin.Context) {
	id := RequestID(c.Request)
	c.Set("request_id", id)
	c.Header("X-Request-Id", id)
	c.Set("logger", a.Logger.With("request_id", id))
	c.Next()
}

// RequestID is the id of r: its X-Request-Id when that is a sane one (1 to 64 of A-Z a-z 0-9 . _ -), else a
// new random one.
func RequestID(r *http.Request) string {
	id := r.Header.Get("X-Request-Id")
	if !requestIDPattern.MatchString(id) {
		var b [8]byte
		_, _ = rand.Read(b[:])
		id = hex.EncodeToString(b[:])
	}
	return id
}

func requestID(c *gin.Context) string { return c.GetString("request_id") }

func logger(c *gin.Context) *slog.Logger {
	if l, ok := c.Get("logger"); ok {
		return l.(*slog.Logger)
	}
	return slog.Default()
}

func (a *api) recover(c *gin.Context) {
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			fail(c, fmt.Errorf("panic: %v", v))
		}
	}()
	c.Next()
}

func (a *api) observe(c *gin.Context) {
	start := time.Now()
	c.Next()
	route := c.FullPath()
	if route == "" {
		route = "unmatched"
	}
	a.requests.WithLabelValues(c.Request.Method, route, strconv.Itoa(c.Writer.Status())).Inc()
	a.latency.WithLabelValues(c.Request.Method, route).Observe(time.Since(start).Seconds())
	if route != "/healthz" && route != "/readyz" && route != "/metrics" {
		logger(c).Info("request", "method", c.Request.Method, "route", route, "status", c.Writer.Status(),
			"duration_ms", time.Since(start).Milliseconds(), "user", c.GetString("user"), "client", ClientIP(c))
	}
}

func limitBody(c *gin.Context) {
	if c.Request.Body != nil && c.FullPath() != hookPath { // webhooks allow inbound.MaxBody
		c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, MaxBodyBytes)
	}
	c.Next()
}

func (a *api) readyz(c *gin.Context) {
	ctx, cancel := context.WithTimeout(c.Request.Context(), 3*time.Second)
	defer cancel()
	checks := gin.H{}
	ok := true
	for _, rc := range a.Ready {
		if rc.Optional {
			if err := rc.Check(ctx); err != nil {
				checks[rc.Name] = gin.H{"ok": false, "reason": err.Error()}
			} else {
				checks[rc.Name] = gin.H{"ok": true}
			}
			continue
		}
		if err := rc.Check(ctx); err != nil {
			checks[rc.Name] = err.Error()
			ok = false
		} else {
			checks[rc.Name] = "ok"
		}
	}
	if !ok {
		c.JSON(http.StatusServiceUnavailable, gin.H{"status": "unavailable", "checks": checks})
		return
	}
	c.JSON(http.StatusOK, gin.H{"status": "ok", "checks": checks})
}

// bindJSON decodes the request body into v, refusing unknown fields, trailing data and oversized bodies.
// bindOptionalJSON is bindJSON for an optional body: an empty (or blank) one leaves v as it is.
func bindOptionalJSON(c *gin.Context, v any) error {
	body, err := io.ReadAll(c.Request.Body)
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return errf(http.StatusRequestEntityTooLarge, CodeBodyTooLarge, "request body is larger than %d bytes", mbe.Limit)
	case err != nil:
		return badRequest("read the request body: %v", err)
	case len(bytes.TrimSpace(body)) == 0:
		return nil
	}
	c.Request.Body = io.NopCloser(bytes.NewReader(body))
	return bindJSON(c, v)
}

func bindJSON(c *gin.Context, v any) error {
	dec := json.NewDecoder(c.Request.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &mbe):
			return errf(http.StatusRequestEntityTooLarge, CodeBodyTooLarge, "request body is larger than %d bytes", mbe.Limit)
		case errors.Is(err, io.EOF):
			return errf(http.StatusBadRequest, CodeInvalidJSON, "request body is empty; send a JSON object")
		case errors.As(err, &se):
			return errf(http.StatusBadRequest, CodeInvalidJSON, "request body is not valid JSON at byte %d: %v", se.Offset, err)
		case errors.As(err, &te):
			return errf(http.StatusBadRequest, CodeInvalidJSON, "field %q must be a %s, not %s", te.Field, te.Type, te.Value)
		default:
			return errf(http.StatusBadRequest, CodeInvalidJSON, "request body: %v", err)
		}
	}
	if dec.More() {
		return errf(http.StatusBadRequest, CodeInvalidJSON, "request body has data after the JSON object")
	}
	return nil
}

// page reads page and page_size from the query.
func page(c *gin.Context) (store.Page, error) {
	p := store.Page{Page: 1, PageSize: DefaultPageSize}
	if v := c.Query("page"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1_000_000 {
			return p, badRequest("page must be a whole number from 1 to 1000000, got %q", v)
		}
		p.Page = n
	}
	if v := c.Query("page_size"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxPageSize {
			return p, badRequest("page_size must be a whole number from 1 to %d, got %q", MaxPageSize, v)
		}
		p.PageSize = n
	}
	return p, nil
}

type listResponse[T any] struct {
	Items    []T   `json:"items"`
	Total    int64 `json:"total"`
	Page     int   `json:"page"`
	PageSize int   `json:"page_size"`
}

func list[S any, T any](items []S, total int64, p store.Page, view func(*S) T) listResponse[T] {
	out := make([]T, len(items))
	for i := range items {
		out[i] = view(&items[i])
	}
	return listResponse[T]{Items: out, Total: total, Page: p.Page, PageSize: p.PageSize}
}
