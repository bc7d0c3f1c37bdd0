package server

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/berth-dev/berth/policies/access"
	"github.com/berth-dev/berth/server/forwarded"
)

// Principal is the authenticated caller of a request.
type Principal = access.Principal

// Authenticator turns a request's credentials into a Principal and issues temporary tokens.
// *access.Service implements it.
type Authenticator interface {
	Authenticate(ctx context.Context, r *http.Request) (*Principal, error)
	IssueTemporary(ctx context.Context, user string, ttl time.Duration) (string, time.Time, error)
	// IssueTemporaryFor issues a temporary token that dies with the credential p authenticated with.
	IssueTemporaryFor(ctx context.Context, p *Principal, ttl time.Duration) (string, time.Time, error)
	NewAccessKey(ctx context.Context, user string) (id, secret string, err error)
	Invalidate(user string)
}

var (
	ErrNoCredentials  = access.ErrNoCredentials
	ErrBadCredentials = access.ErrBadCredentials
	ErrRateLimited    = access.ErrRateLimited
)

// ClientIP is the address of the request's client: the peer's, or, behind a trusted proxy (--trusted-proxy),
// the one it forwarded. Login limits, logs and audit entries use it.
func ClientIP(c *gin.Context) string { return forwarded.ClientIP(c.Request) }

// RegistryHost is the registry's host[:port] in the docker commands shown to the request's client.
func RegistryHost(r *http.Request) string {
	u := forwarded.PublicURL(r)
	if i := strings.Index(u, "://"); i >= 0 {
		u = u[i+3:]
	}
	return u
}
