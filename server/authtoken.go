package server

import (
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/berth-dev/berth/policies/access"
)

// createAuthToken issues a temporary username/password (SPEC §9 GetAuthorizationToken) for `docker login`,
// also usable as "Authorization: Bearer <password>" on this API. It carries the caller's own permissions and
// stops working when the caller is disabled or deleted, or the credential it was issued for (the password, or
// the access key) is changed, disabled or deleted: at once on this instance, within access.CacheTTL on others. The body is optional: {"ttl_seconds": N}, at most
// 12 hours, default 1 hour.
func (a *api) createAuthToken(c *gin.Context) {
	var req struct {
		TTLSeconds *int64 `json:"ttl_seconds"`
	}
	if err := bindOptionalJSON(c, &req); err != nil {
		fail(c, err)
		return
	}
	ttl := access.DefaultTokenTTL
	if req.TTLSeconds != nil {
		maxS := int64(access.MaxTokenTTL / time.Second)
		if *req.TTLSeconds < 1 || *req.TTLSeconds > maxS {
			fail(c, badRequest("ttl_seconds must be from 1 to %d (12 hours), got %d", maxS, *req.TTLSeconds))
			return
		}
		ttl = time.Duration(*req.TTLSeconds) * time.Second
	}
	p := principal(c)
	if p.Temporary {
		// Otherwise a token could renew itself for ever, outliving the expiry it was given.
		fail(c, errf(http.StatusForbidden, CodeForbidden,
			"a temporary token cannot issue another; authenticate with a password or an access key"))
		return
	}
	tok, expires, err := a.Auth.IssueTemporaryFor(c.Request.Context(), p, ttl)
	if err != nil {
		fail(c, err)
		return
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, gin.H{"username": p.Name, "password": tok, "expires_at": expires})
}
