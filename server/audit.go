package server

import (
	"context"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/berth-dev/berth/audit"
	"github.com/berth-dev/berth/server/forwarded"
	"github.com/berth-dev/berth/store"
)

// Auditor takes the audit log's entries (*audit.Log); Record must not block.
type Auditor interface {
	Record(ctx context.Context, e store.AuditEntry)
}

// ClientAddr is the address of r's client: the peer's, or, behind a trusted proxy (--trusted-proxy), the one it
// forwarded (server/forwarded), as ClientIP is for a gin request.
func ClientAddr(r *http.Request) string { return forwarded.ClientIP(r) }

// auditKey marks a request whose credentials were refused, with the name they gave.
const auditLoginFailed = "audit_login_failed"

// audit records the request of rt in the audit log once it is answered: every change (any method but GET),
// allowed or refused, with the route's action and resource; and every request whose credentials were refused,
// whatever its method, as a failed sign-in (audit.ActionLogin on "*", under the name or access key id given).
func (a *api) audit(rt route) gin.HandlerFunc {
	return func(c *gin.Context) {
		start := time.Now()
		c.Next()
		if a.Audit == nil {
			return
		}
		failedAs, failed := c.Get(auditLoginFailed)
		if !failed && (c.Request.Method == http.MethodGet || c.Request.Method == http.MethodHead) {
			return
		}
		e := store.AuditEntry{Time: start, User: c.GetString("user"), Client: ClientIP(c), Action: rt.Action,
			Resource: a.resource(rt.Resource, c), Status: c.Writer.Status(), RequestID: requestID(c)}
		if failed {
			e.User, e.Action, e.Resource = failedAs.(string), audit.ActionLogin, "*"
		}
		a.Audit.Record(c.Request.Context(), e)
	}
}

// loginFailed marks c as a failed sign-in for the audit log.
func loginFailed(c *gin.Context) {
	name, _, ok := c.Request.BasicAuth()
	if !ok || name == "" {
		name = audit.Anonymous // a refused Bearer token names no one
	}
	c.Set(auditLoginFailed, name)
}

// listAuditLogs pages through the audit log, newest first, filtered by user, action, resource and time.
func (a *api) listAuditLogs(c *gin.Context) {
	p, err := page(c)
	if err != nil {
		fail(c, err)
		return
	}
	f := store.AuditFilter{User: c.Query("user"), Action: c.Query("action"), Resource: c.Query("resource")}
	for _, t := range []struct {
		name string
		to   *time.Time
	}{{"since", &f.Since}, {"until", &f.Until}} {
		if v := c.Query(t.name); v != "" {
			if *t.to, err = time.Parse(time.RFC3339, v); err != nil {
				fail(c, badRequest("%s must be an RFC 3339 time like 2026-01-02T15:04:05Z, got %q", t.name, v))
				return
			}
		}
	}
	items, total, err := a.Store.ListAuditEntries(c.Request.Context(), f, p)
	if err != nil {
		fail(c, err)
		return
	}
	resp := list(items, total, p, auditView)
	c.JSON(http.StatusOK, auditList{listResponse: resp, TotalCapped: total >= store.AuditTotalCap})
}

// auditList is a list answer whose total stops at store.AuditTotalCap (total_capped says it did).
type auditList struct {
	listResponse[AuditEntryView]
	TotalCapped bool `json:"total_capped"`
}

// AuditEntryView is an audit entry as the API answers it (SPEC §14's fields).
type AuditEntryView struct {
	ID        string    `json:"id"`
	Time      time.Time `json:"time"`
	User      string    `json:"user"`
	Client    string    `json:"client"`
	Action    string    `json:"action"`
	Resource  string    `json:"resource"`
	Status    int       `json:"status"`
	RequestID string    `json:"request_id"`
}

func auditView(e *store.AuditEntry) AuditEntryView {
	return AuditEntryView{ID: e.ID, Time: e.Time.UTC(), User: e.User, Client: e.Client, Action: e.Action,
		Resource: e.Resource, Status: e.Status, RequestID: e.RequestID}
}
