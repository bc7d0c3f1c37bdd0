package app

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/berth-dev/berth/audit"
	"github.com/berth-dev/berth/policies"
	"github.com/berth-dev/berth/registry"
	"github.com/berth-dev/berth/server"
	"github.com/berth-dev/berth/store"
)

// newAuditLog starts the audit log's writer; it is closed (what is buffered written) before the store.
func (a *App) newAuditLog() (*audit.Log, error) {
	if a.Cfg.AuditRetention <= 0 {
		return nil, fmt.Errorf("--audit-retention must be positive, like 2160h; got %s", a.Cfg.AuditRetention)
	}
	l := audit.New(a.Store, audit.Options{Metrics: a.Metrics, Logger: a.Logger.With("component", "audit")})
	a.stops = append(a.stops, l.Close)
	return l, nil
}

// startAuditSweep deletes audit entries older than --audit-retention until the returned stop is called.
func (a *App) startAuditSweep(ctx context.Context) (stop func()) {
	return a.Audit.StartSweep(ctx, a.Cfg.AuditRetention)
}

// registryAudit turns the registry's audited requests into audit entries with the RAM action its token
// service checks (SPEC §9) on the repository's resource.
type registryAudit struct {
	log               *audit.Log
	region, accountID string
}

var registryAuditActions = map[registry.AuditKind]string{
	registry.AuditLogin:  audit.ActionLogin,
	registry.AuditPush:   policies.ActionPushRepository,
	registry.AuditDelete: policies.ActionDeleteRepositoryTag,
	registry.AuditPull:   policies.ActionPullRepository,
}

func (ra registryAudit) RegistryRequest(req *http.Request, ev registry.AuditEvent) {
	e := store.AuditEntry{Time: ev.Time, User: ev.User, Client: server.ClientAddr(req), Action: registryAuditActions[ev.Kind],
		Resource: policies.AnyResource, Status: ev.Status, RequestID: ev.RequestID}
	if ns, repo, ok := strings.Cut(ev.Repository, "/"); ok {
		e.Resource = policies.RepositoryResource(ra.region, ra.accountID, ns, repo)
	}
	ra.log.Record(req.Context(), e)
}
