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
	// User is the subject's name, or the name a refused sign-in gave; "" is anonymous.
	User       string
	Repository string // namespace/name; "" for sign-ins
	Reference  string // tag or digest
	Status     int
}

// reqAudit collects, while a request is served, what its audit event needs.
type reqAudit struct {
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
	ev := AuditEvent{User: ra.subj.Name, Repository: rt.name, Reference: rt.ref, Status: status}
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
