// Package console is Berth's web console (SPEC §12): server-rendered pages over the REST API, served at / by
// `berth serve`. It has no rules of its own: every page reads, and every form changes, through the API's own
// handler (the same route table, RAM check, validation and error messages), called in process as the
// signed-in user; actions are offered only where the same route-table check allows them.
//
// Templates and assets are embedded: one layout, partials, one template per page under templates/pages, one
// stylesheet and one script (no inline script: every answer carries a Content-Security-Policy without it).
package console

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"time"

	"github.com/berth-dev/berth/server"
	"github.com/berth-dev/berth/store"
)

//go:embed templates static
var files embed.FS

// Session lifetimes.
const (
	DefaultIdleTimeout     = 2 * time.Hour
	DefaultAbsoluteTimeout = 12 * time.Hour
)

// Sessions is what the console needs of the identity service (*access.Service).
type Sessions interface {
	Authenticate(ctx context.Context, r *http.Request) (*server.Principal, error)
	SessionStamp(ctx context.Context, name string) (string, error)
	SessionPrincipal(ctx context.Context, name string, signedIn time.Time, stamp string) (*server.Principal, error)
}

// Deps are what the console stands on; the binary wires them.
type Deps struct {
	API    http.Handler // the REST API (server.New): every read and change goes through it
	Authz  server.Authorization
	Auth   Sessions
	Store  store.Store // sessions only
	Logger *slog.Logger
	// Audit takes the console's own sign-ins and sign-outs (its changes go through the API, which records
	// them); nil keeps none.
	Audit server.Auditor
	// IdleTimeout and AbsoluteTimeout end sessions (0: the defaults).
	IdleTimeout, AbsoluteTimeout time.Duration
}

// Console is the web console's HTTP handler.
type Console struct {
	Deps
	mux       *http.ServeMux
	pages     map[string]*template.Template
	staticTag string
}

// New builds the console.
func New(d Deps) (*Console, error) {
	if d.Logger == nil {
		d.Logger = slog.Default()
	}
	if d.IdleTimeout <= 0 {
		d.IdleTimeout = DefaultIdleTimeout
	}
	if d.AbsoluteTimeout <= 0 {
		d.AbsoluteTimeout = DefaultAbsoluteTimeout
	}
	c := &Console{Deps: d}
	var err error
	if c.pages, err = parseTemplates(); err != nil {
		return nil, err
	}
	c.staticTag = staticVersion()
	c.mux = http.NewServeMux()
	c.routes()
	return c, nil
}

// ServeHTTP serves a console page, with the headers every console answer carries.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "+
		"connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	c.mux.ServeHTTP(w, r)
}

// apiError is an error answer of the API, as the console shows it.
type apiError struct {
	Status  int
	Code    string
	Message string
}

func (e *apiError) Error() string { return e.Message }

// statusOf is the HTTP status an error is shown with.
func statusOf(err error) int {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae.Status
	}
	return http.StatusInternalServerError
}

// apiPath joins path segments into an /api/v1 path, escaping each.
func apiPath(segs ...string) string {
	var b strings.Builder
	b.WriteString("/api/v1")
	for _, s := range segs {
		b.WriteByte('/')
		b.WriteString(url.PathEscape(s))
	}
	return b.String()
}

// apiRequest makes the in-process request of an API call made as the session's user.
func (x *reqCtx) apiRequest(method, path string, body io.Reader) *http.Request {
	req := httptest.NewRequestWithContext(server.WithPrincipal(x.r.Context(), x.p), method, path, body)
	req.RemoteAddr = x.r.RemoteAddr
	if id := x.r.Header.Get("X-Request-Id"); id != "" {
		req.Header.Set("X-Request-Id", id)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return req
}

// call makes an API call as the session's user: body (if not nil) is sent as JSON, a success answer is
// decoded into out (if not nil), an error answer is returned as *apiError with the API's message.
func (x *reqCtx) call(method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(data)
	}
	rec := httptest.NewRecorder()
	x.c.API.ServeHTTP(rec, x.apiRequest(method, path, rd))
	if rec.Code >= 300 {
		ae := &apiError{Status: rec.Code}
		var e struct{ Code, Message string }
		if json.Unmarshal(rec.Body.Bytes(), &e) == nil && e.Message != "" {
			ae.Code, ae.Message = e.Code, e.Message
		} else {
			ae.Message = fmt.Sprintf("the API answered %d", rec.Code)
		}
		return ae
	}
	if out != nil && rec.Body.Len() > 0 {
		if err := json.Unmarshal(rec.Body.Bytes(), out); err != nil {
			return fmt.Errorf("decode %s %s: %w", method, path, err)
		}
	}
	return nil
}

// can reports whether the session's user may make the API call method path (no query), by the route table.
func (x *reqCtx) can(method, path string) bool {
	if x.p == nil {
		return false
	}
	return x.c.Authz.Can(x.p, method, path)
}

// staticVersion is a short digest of the embedded assets, for cache-busting their URLs.
func staticVersion() string {
	var n int64
	_ = fs.WalkDir(files, "static", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			data, _ := files.ReadFile(p)
			for _, b := range data {
				n = n*31 + int64(b)
			}
		}
		return nil
	})
	return fmt.Sprintf("%x", uint32(n))
}

// registry is the registry's host[:port] in the docker commands the page shows, as its client reaches it.
func (x *reqCtx) registry() string { return server.RegistryHost(x.r) }
