package server

import (
	"context"
	"net/http"
	"time"

	"github.com/berth-dev/berth/policies/access"
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
