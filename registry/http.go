package registry

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/berth-dev/berth/registry/reference"
)

type routeKind uint8

const (
	routeNone routeKind = iota
	routeBase
	routeCatalog
	routeTags
	routeManifest
	routeBlob
	routeUploadStart
	routeUpload
	routeReferrers
)

var routeNames = [...]string{"none", "base", "catalog", "tags", "manifest", "blob", "upload_start", "upload", "referrers"}

type route struct {
	kind routeKind
	name string
	ref  string // tag or digest, blob digest, upload id
}

// parseRoute splits the part of the path after "/v2/". Repository names may
// contain "/", so the route is read from the end.
func parseRoute(rest string) route {
	if rest == "" {
		return route{kind: routeBase}
	}
	if rest == "_catalog" {
		return route{kind: routeCatalog}
	}
	if name, ok := strings.CutSuffix(rest, "/tags/list"); ok {
		return route{kind: routeTags, name: name}
	}
	i := strings.LastIndexByte(rest, '/')
	if i <= 0 {
		return route{}
	}
	last, before := rest[i+1:], rest[:i]
	j := strings.LastIndexByte(before, '/')
	if j <= 0 {
		return route{}
	}
	seg, name := before[j+1:], before[:j]
	switch seg {
	case "manifests":
		return route{kind: routeManifest, name: name, ref: last}
	case "blobs":
		if last == "uploads" {
			return route{kind: routeUploadStart, name: name}
		}
		return route{kind: routeBlob, name: name, ref: last}
	case "referrers":
		return route{kind: routeReferrers, name: name, ref: last}
	case "uploads":
		if n, ok := strings.CutSuffix(name, "/blobs"); ok && n != "" {
			if last == "" {
				return route{kind: routeUploadStart, name: n}
			}
			return route{kind: routeUpload, name: n, ref: last}
		}
	}
	return route{}
}

// ServeHTTP handles /v2/... and /token.
func (r *Registry) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	var start time.Time
	if r.metrics != nil || r.cfg.Audit != nil {
		start = time.Now()
	}
	path := req.URL.Path
	if path == "/token" {
		r.serveTokenAudited(w, req, start)
		return
	}
	rest, ok := strings.CutPrefix(path, "/v2/")
	if !ok {
		if path != "/v2" {
			http.NotFound(w, req)
			return
		}
		rest = ""
	}
	w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	rt := parseRoute(rest)
	sw := w
	var rec *statusRecorder
	if r.metrics != nil || r.cfg.Audit != nil {
		rec = &statusRecorder{ResponseWriter: w, status: 200}
		sw = rec
	}
	var ra *reqAudit
	if r.cfg.Audit != nil && r.audited(req, rt) {
		ra = &reqAudit{requestID: r.requestID(w, req)}
	}
	r.dispatch(sw, req, rt, ra)
	if r.metrics != nil {
		r.metrics.observe(rt.kind, req.Method, rec.status, time.Since(start))
	}
	if ra != nil {
		if ev, ok := r.auditEvent(req, rt, ra, rec.status); ok {
			ev.Time = start
			r.cfg.Audit.RegistryRequest(req, ev)
		}
	}
}

// serveTokenAudited serves a token request, and tells the Auditor of one that carried credentials.
func (r *Registry) serveTokenAudited(w http.ResponseWriter, req *http.Request, start time.Time) {
	if r.cfg.Audit == nil {
		r.serveToken(w, req)
		return
	}
	rec := &statusRecorder{ResponseWriter: w, status: 200}
	id := r.requestID(w, req)
	user, login := r.serveToken(rec, req)
	if login {
		r.cfg.Audit.RegistryRequest(req, AuditEvent{Kind: AuditLogin, Time: start, User: user, Status: rec.status, RequestID: id})
	}
}

func (r *Registry) dispatch(w http.ResponseWriter, req *http.Request, rt route, ra *reqAudit) {
	if rt.kind == routeNone {
		writeError(w, req, &Error{Code: CodeNameUnknown, Message: "no such endpoint", Status: http.StatusNotFound})
		return
	}
	if rt.kind != routeBase && rt.kind != routeCatalog {
		if !reference.ValidName(rt.name) {
			writeError(w, req, ErrNameInvalid("invalid repository name"))
			return
		}
	}
	var need, extra []Access
	method := req.Method
	switch rt.kind {
	case routeBase:
		if method != http.MethodGet && method != http.MethodHead {
			r.methodNotAllowed(w, req)
			return
		}
	case routeCatalog:
		if method != http.MethodGet {
			r.methodNotAllowed(w, req)
			return
		}
		need = []Access{{Type: "registry", Name: "catalog", Actions: []string{ActionAll}}}
	case routeTags, routeReferrers:
		if method != http.MethodGet {
			r.methodNotAllowed(w, req)
			return
		}
		need = pullAccess(rt.name)
	case routeManifest:
		switch method {
		case http.MethodGet, http.MethodHead:
			need = pullAccess(rt.name)
		case http.MethodPut:
			need = pushAccess(rt.name)
		case http.MethodDelete:
			need = []Access{{Type: "repository", Name: rt.name, Actions: []string{ActionDelete}}}
		default:
			r.methodNotAllowed(w, req)
			return
		}
	case routeBlob:
		switch method {
		case http.MethodGet, http.MethodHead:
			need = pullAccess(rt.name)
		case http.MethodDelete:
			need = []Access{{Type: "repository", Name: rt.name, Actions: []string{ActionDelete}}}
		default:
			r.methodNotAllowed(w, req)
			return
		}
	case routeUploadStart:
		if method != http.MethodPost {
			r.methodNotAllowed(w, req)
			return
		}
		need = pushAccess(rt.name)
		if from := req.URL.Query().Get("from"); from != "" && from != rt.name && reference.ValidName(from) {
			extra = []Access{{Type: "repository", Name: from, Actions: []string{ActionPull}}}
		}
	case routeUpload:
		// As distribution, the status GET needs only pull (the upload id is
		// an unguessable capability); writing or cancelling needs push.
		switch method {
		case http.MethodGet:
			need = pullAccess(rt.name)
		case http.MethodPatch, http.MethodPut, http.MethodDelete:
			need = pushAccess(rt.name)
		default:
			r.methodNotAllowed(w, req)
			return
		}
	}
	subj, grants, ok := r.authorize(w, req, need, extra, ra)
	if !ok {
		return
	}
	ctx := context.WithValue(req.Context(), userAgentKey{}, req.UserAgent())
	switch rt.kind {
	case routeBase:
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", "2")
		w.WriteHeader(http.StatusOK)
		if method == http.MethodGet {
			_, _ = w.Write([]byte("{}"))
		}
	case routeCatalog:
		r.serveCatalog(w, req)
	case routeTags:
		r.serveTags(w, req, rt.name)
	case routeReferrers:
		r.serveReferrers(w, req, rt.name, rt.ref)
	case routeManifest:
		switch method {
		case http.MethodGet, http.MethodHead:
			r.serveManifestGet(ctx, w, req, subj, rt.name, rt.ref)
		case http.MethodPut:
			r.serveManifestPut(ctx, w, req, subj, rt.name, rt.ref)
		case http.MethodDelete:
			r.serveManifestDelete(ctx, w, req, rt.name, rt.ref)
		}
	case routeBlob:
		if method == http.MethodDelete {
			r.serveBlobDelete(ctx, w, req, rt.name, rt.ref)
		} else {
			r.serveBlobGet(ctx, w, req, rt.name, rt.ref)
		}
	case routeUploadStart:
		r.serveUploadStart(ctx, w, req, subj, grants, rt.name)
	case routeUpload:
		switch method {
		case http.MethodGet:
			r.serveUploadStatus(ctx, w, req, rt.name, rt.ref)
		case http.MethodPatch:
			r.serveUploadPatch(ctx, w, req, rt.name, rt.ref)
		case http.MethodPut:
			r.serveUploadPut(ctx, w, req, rt.name, rt.ref)
		case http.MethodDelete:
			r.serveUploadCancel(ctx, w, req, rt.name, rt.ref)
		}
	}
}

func pullAccess(name string) []Access {
	return []Access{{Type: "repository", Name: name, Actions: []string{ActionPull}}}
}

func pushAccess(name string) []Access {
	return []Access{{Type: "repository", Name: name, Actions: []string{ActionPull, ActionPush}}}
}

func (r *Registry) methodNotAllowed(w http.ResponseWriter, req *http.Request) {
	writeError(w, req, ErrUnsupported("method "+req.Method+" not allowed here"))
}

// requiredOf is what a request must be granted: push requests need only
// push, though the challenge asks for pull too, as Docker clients do.
func requiredOf(need []Access) []Access {
	out := make([]Access, len(need))
	for i, a := range need {
		out[i] = a
		if len(a.Actions) == 2 && a.Actions[0] == ActionPull && a.Actions[1] == ActionPush {
			out[i].Actions = []string{ActionPush}
		}
	}
	return out
}

// authorize authenticates req and checks it may do need. extra entries are
// asked for alongside (so tokens carry them) but may be refused; callers
// check them in the returned grant set. On failure the response is written.
// ra, when not nil, learns the subject (also of a refused request) and whether the credentials were refused.
func (r *Registry) authorize(w http.ResponseWriter, req *http.Request, need, extra []Access, ra *reqAudit) (Subject, grantSet, bool) {
	authz := req.Header.Get("Authorization")
	scope := append(append([]Access(nil), need...), extra...)
	required := requiredOf(need)
	switch {
	case len(authz) > 7 && strings.EqualFold(authz[:7], "bearer "):
		v, err := r.signer.verify(strings.TrimSpace(authz[7:]))
		if err != nil {
			r.writeChallenge(w, req, scope, "invalid_token", "invalid or expired token")
			return Subject{}, nil, false
		}
		if ra != nil {
			ra.subj = v.subj
		}
		if !r.subjectActive(req.Context(), v.subj, v.iat) {
			r.writeChallenge(w, req, scope, "invalid_token", "the credentials were revoked")
			return Subject{}, nil, false
		}
		for _, a := range required {
			if !v.grants.allows(a) {
				// Asked for and refused: an authenticated subject is denied.
				// Otherwise the token was made for something else: challenge
				// for the right scope, as distribution does.
				if !v.subj.Anonymous && v.grants.asked(a) {
					writeError(w, req, ErrDenied("requested access to the resource is denied").WithDetail(a))
				} else {
					r.writeChallenge(w, req, scope, "insufficient_scope", "authentication required")
				}
				return Subject{}, nil, false
			}
		}
		for _, a := range extra {
			// A token that never asked for the extra resource gets a challenge
			// naming it; one that asked and was refused goes on without it.
			if !v.grants.asked(a) {
				r.writeChallenge(w, req, scope, "insufficient_scope", "authentication required")
				return Subject{}, nil, false
			}
		}
		return v.subj, v.grants, true
	case len(authz) > 6 && strings.EqualFold(authz[:6], "basic "):
		e, err := r.basicAuth(withClientAddr(req), authz, scope)
		if err == nil && !r.subjectActive(req.Context(), e.subj, e.exp.Add(-basicCacheTTL)) {
			err = ErrUnauthorized
		}
		if err != nil {
			if errors.Is(err, ErrUnauthorized) {
				if ra != nil {
					ra.refused, ra.failedLogin = true, basicUser(authz)
				}
				r.writeChallenge(w, req, scope, "", "authentication required")
			} else {
				r.log.Error("registry: authorizer failed", "err", err)
				writeError(w, req, toError(err))
			}
			return Subject{}, nil, false
		}
		if ra != nil {
			ra.subj = e.subj
		}
		for _, a := range required {
			if !e.grants.allows(a) {
				writeError(w, req, ErrDenied("requested access to the resource is denied").WithDetail(a))
				return Subject{}, nil, false
			}
		}
		return e.subj, e.grants, true
	default:
		r.writeChallenge(w, req, scope, "", "authentication required")
		return Subject{}, nil, false
	}
}

func (r *Registry) writeChallenge(w http.ResponseWriter, req *http.Request, scope []Access, errParam, msg string) {
	var b strings.Builder
	challenge, _ := r.challengeFor(req)
	b.WriteString(challenge)
	if len(scope) > 0 {
		b.WriteString(`,scope="`)
		b.WriteString(scopeString(scope))
		b.WriteByte('"')
	}
	if errParam != "" {
		b.WriteString(`,error="`)
		b.WriteString(errParam)
		b.WriteByte('"')
	}
	w.Header().Set("WWW-Authenticate", b.String())
	var detail any
	if len(scope) > 0 {
		detail = scope
	}
	writeError(w, req, &Error{Code: CodeUnauthorized, Message: msg, Detail: detail, Status: http.StatusUnauthorized})
}

// basicCache remembers Basic-auth decisions on /v2 for a few seconds so a
// client sending Basic on every request does not run the Authorizer each time.
type basicCache struct {
	mu sync.Mutex
	m  map[[32]byte]*basicEntry
}

type basicEntry struct {
	subj   Subject
	grants grantSet
	exp    time.Time
}

const (
	basicCacheTTL = 5 * time.Second
	basicCacheMax = 4096
)

func newBasicCache() *basicCache { return &basicCache{m: map[[32]byte]*basicEntry{}} }

func (r *Registry) basicAuth(ctx context.Context, header string, scope []Access) (*basicEntry, error) {
	h := sha256.New()
	h.Write([]byte(header))
	h.Write([]byte{0})
	h.Write([]byte(scopeString(scope)))
	var key [32]byte
	h.Sum(key[:0])
	now := time.Now()
	r.basic.mu.Lock()
	e, ok := r.basic.m[key]
	r.basic.mu.Unlock()
	if ok && now.Before(e.exp) {
		return e, nil
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(header[6:]))
	if err != nil {
		return nil, ErrUnauthorized
	}
	user, pass, ok := strings.Cut(string(raw), ":")
	if !ok {
		return nil, ErrUnauthorized
	}
	subj, err := r.authz.Authenticate(ctx, user, pass)
	if err != nil {
		return nil, err
	}
	var granted []Access
	if len(scope) > 0 {
		granted, err = r.authz.Grant(ctx, subj, scope)
		if err != nil {
			return nil, err
		}
	}
	g := newGrantSet(granted, scope)
	e = &basicEntry{subj: subj, grants: g, exp: now.Add(basicCacheTTL)}
	r.basic.mu.Lock()
	if len(r.basic.m) >= basicCacheMax {
		for k, old := range r.basic.m {
			if !now.Before(old.exp) || len(r.basic.m) >= basicCacheMax {
				delete(r.basic.m, k)
			}
			if len(r.basic.m) < basicCacheMax/2 {
				break
			}
		}
	}
	r.basic.m[key] = e
	r.basic.mu.Unlock()
	return e, nil
}

// statusRecorder captures the status for metrics; it keeps ReadFrom so
// sendfile still works.
type statusRecorder struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (s *statusRecorder) WriteHeader(code int) {
	if !s.wrote {
		s.status, s.wrote = code, true
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	s.wrote = true
	return s.ResponseWriter.Write(b)
}

func (s *statusRecorder) ReadFrom(src io.Reader) (int64, error) {
	s.wrote = true
	if rf, ok := s.ResponseWriter.(io.ReaderFrom); ok {
		return rf.ReadFrom(src)
	}
	return io.Copy(struct{ io.Writer }{s.ResponseWriter}, src)
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }
