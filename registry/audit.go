package registry

import (
	"encoding/base64"
	"net/http"
	"strings"
	"time"
)

// Auditor hears of the requests an audit log keeps (Config.Audit): sign-ins at the token service, manifest
// pushes, manifest and blob deletes, and (Config.AuditPulls) manifest GETs. It is called after the answer is
// written, on the request's goroutine, and must not block.
type Auditor interface {
	RegistryRequest(req *http.Request, ev AuditEvent)
}

// AuditKind says what an audited request did.
type AuditKind uint8

const (
	AuditLogin  AuditKind = iota + 1 // a token request with credentials, or /v2 Basic credentials refused
	AuditPush                        // manifest PUT
	AuditDelete                      // manifest or blob DELETE
	AuditPull                        // manifest GET (Config.AuditPulls)
)

// AuditEvent is one audited request.
type AuditEvent struct {
	Kind AuditKind
	Time time.Time // when the request came
	// RequestID is the request's id (Config.RequestID), also answered in X-Request-Id.
	RequestID string
	// User is the subject's name, or the name a refused sign-in gave; "" is anonymous.
	User       string
	Repository string // namespace/name; "" for sign-ins
	Reference  string // tag or digest
	Status     int
}

// reqAudit collects, while a request is served, what its audit event needs.
type reqAudit struct {
	requestID   string
	subj        Subject
	failedLogin string // the name refused credentials gave
	refused     bool   // credentials were refused
}

// basicUser is the user name of a Basic authorization header ("" when it has none).
func basicUser(header string) string {
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(header[min(6, len(header)):]))
	if err != nil {
		return ""
	}
	user, _, _ := strings.Cut(string(raw), ":")
	return user
}

// auditEvent is the event of a /v2 request of route rt that was answered with status, or false when the
// request is none the audit log keeps. A 401 challenge to a request without credentials is the protocol's
// first step, not a refusal: it is not kept.
func (r *Registry) auditEvent(req *http.Request, rt route, ra *reqAudit, status int) (AuditEvent, bool) {
	ev := AuditEvent{User: ra.subj.Name, Repository: rt.name, Reference: rt.ref, Status: status, RequestID: ra.requestID}
	if ra.subj.Anonymous {
		ev.User = ""
	}
	if ra.refused {
		ev.Kind, ev.User, ev.Repository, ev.Reference = AuditLogin, ra.failedLogin, "", ""
		return ev, true
	}
	if status == http.StatusUnauthorized && req.Header.Get("Authorization") == "" {
		return ev, false
	}
	switch {
	case rt.kind == routeManifest && req.Method == http.MethodPut:
		ev.Kind = AuditPush
	case (rt.kind == routeManifest || rt.kind == routeBlob) && req.Method == http.MethodDelete:
		ev.Kind = AuditDelete
	case rt.kind == routeManifest && req.Method == http.MethodGet && r.cfg.AuditPulls:
		ev.Kind = AuditPull
	default:
		return ev, false
	}
	return ev, true
}

// audited reports whether a /v2 request of route rt may be audited (before it is served: its request id is
// answered in X-Request-Id). Other requests (blob reads and uploads, tag lists, manifest HEADs, with a token or
// none) cost nothing.
func (r *Registry) audited(req *http.Request, rt route) bool {
	if h := req.Header.Get("Authorization"); len(h) > 6 && strings.EqualFold(h[:6], "basic ") {
		return true // refused Basic credentials are a failed sign-in on any route
	}
	switch req.Method {
	case http.MethodPut:
		return rt.kind == routeManifest
	case http.MethodDelete:
		return rt.kind == routeManifest || rt.kind == routeBlob
	case http.MethodGet:
		return rt.kind == routeManifest && r.cfg.AuditPulls
	}
	return false
}

// requestID gives an audited request its id and answers it in X-Request-Id.
func (r *Registry) requestID(w http.ResponseWriter, req *http.Request) string {
	if r.cfg.RequestID == nil {
		return ""
	}
	id := r.cfg.RequestID(req)
	w.Header().Set("X-Request-Id", id)
	return id
}
