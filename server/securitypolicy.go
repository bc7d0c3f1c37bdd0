package server

import (
	"errors"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/berth-dev/berth/pipeline"
	"github.com/berth-dev/berth/policies/security"
	"github.com/berth-dev/berth/store"
)

// repoPolicyView is a repository's policy in force; Override says whether it is the repository's own (else
// it is its namespace's). Override is ignored on input.
type repoPolicyView struct {
	security.Policy
	Override bool `json:"override"`
}

func viewSecurityPolicy(p security.Policy) security.Policy {
	if p.Allowlist == nil {
		p.Allowlist = []security.AllowEntry{}
	}
	if p.TrustedKeys == nil {
		p.TrustedKeys = []string{}
	}
	return p
}

// bindPolicy reads and validates a policy from the body.
func bindPolicy(c *gin.Context) (security.Policy, bool) {
	var in repoPolicyView
	if err := bindJSON(c, &in); err != nil {
		fail(c, err)
		return security.Policy{}, false
	}
	p := in.Policy
	p.BlockSeverity = strings.ToUpper(strings.TrimSpace(p.BlockSeverity))
	if p.BlockSeverity == "" {
		p.BlockSeverity = security.SeverityNone
	}
	p = viewSecurityPolicy(p)
	if err := p.Validate(); err != nil {
		fail(c, badRequest("%s", strings.TrimPrefix(err.Error(), security.ErrInvalidPolicy.Error()+": ")))
		return security.Policy{}, false
	}
	return p, true
}

func (a *api) policyChanged() {
	if a.Scans != nil {
		a.Scans.PolicyChanged()
	}
}

func (a *api) getNamespacePolicy(c *gin.Context) {
	ns, ok := a.namespaceOr404(c)
	if !ok {
		return
	}
	sp, err := a.Store.GetSecurityPolicy(c.Request.Context(), ns.Name)
	switch {
	case errors.Is(err, store.ErrNotFound):
		c.JSON(http.StatusOK, security.Default())
	case err != nil:
		fail(c, err)
	default:
		c.JSON(http.StatusOK, viewSecurityPolicy(pipeline.PolicyFromStore(sp)))
	}
}

// putNamespacePolicy replaces the namespace's policy; repositories with an override keep theirs.
func (a *api) putNamespacePolicy(c *gin.Context) {
	ns, ok := a.namespaceOr404(c)
	if !ok {
		return
	}
	p, ok := bindPolicy(c)
	if !ok {
		return
	}
	if err := a.Store.PutSecurityPolicy(c.Request.Context(), pipeline.PolicyToStore(p, ns.Name, "")); err != nil {
		fail(c, err)
		return
	}
	a.policyChanged()
	c.JSON(http.StatusOK, p)
}

func (a *api) getRepositoryPolicy(c *gin.Context) {
	r, ok := a.repositoryOr404(c)
	if !ok {
		return
	}
	p, err := pipeline.LoadPolicy(c.Request.Context(), a.Store, r.FullName)
	if err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusOK, repoPolicyView{Policy: viewSecurityPolicy(p.Policy), Override: p.Override})
}

// putRepositoryPolicy sets the repository's override: it replaces the namespace's policy whole.
func (a *api) putRepositoryPolicy(c *gin.Context) {
	r, ok := a.repositoryOr404(c)
	if !ok {
		return
	}
	p, ok := bindPolicy(c)
	if !ok {
		return
	}
	if err := a.Store.PutSecurityPolicy(c.Request.Context(), pipeline.PolicyToStore(p, r.Namespace, r.FullName)); err != nil {
		fail(c, err)
		return
	}
	a.policyChanged()
	c.JSON(http.StatusOK, repoPolicyView{Policy: p, Override: true})
}

// deleteRepositoryPolicy drops the override: the namespace's policy applies again.
func (a *api) deleteRepositoryPolicy(c *gin.Context) {
	r, ok := a.repositoryOr404(c)
	if !ok {
		return
	}
	err := a.Store.DeleteSecurityPolicy(c.Request.Context(), r.FullName)
	if errors.Is(err, store.ErrNotFound) {
		fail(c, notFound("repository %s has no security policy of its own; it follows its namespace's", r.FullName))
		return
	}
	if err != nil {
		fail(c, err)
		return
	}
	a.policyChanged()
	c.Status(http.StatusNoContent)
}
