package server

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/berth-dev/berth/pipeline"
	"github.com/berth-dev/berth/store"
	"github.com/berth-dev/berth/webhooks/outbound"
	"github.com/berth-dev/berth/workers/gitclone"
)

// resolveTimeout bounds asking the Git server for a ref's head in "build now".
const resolveTimeout = 30 * time.Second

// ruleView is a build rule as the API shows it (SPEC §11).
type ruleView struct {
	ID             string            `json:"id"`
	SourceType     string            `json:"source_type"`
	SourceRef      string            `json:"source_ref"`
	DockerfileDir  string            `json:"dockerfile_dir"`
	DockerfileName string            `json:"dockerfile_name"`
	ImageTag       string            `json:"image_tag"`
	BuildArgs      map[string]string `json:"build_args"`
	Target         string            `json:"target"`
	Platforms      []string          `json:"platforms"`
}

func viewRule(r *store.BuildRule) ruleView {
	args, platforms := r.BuildArgs, r.Platforms
	if args == nil {
		args = map[string]string{}
	}
	if platforms == nil {
		platforms = []string{}
	}
	return ruleView{ID: r.ID, SourceType: r.SourceType, SourceRef: r.SourceRef, DockerfileDir: r.DockerfileDir,
		DockerfileName: r.DockerfileName, ImageTag: r.ImageTag, BuildArgs: args, Target: r.Target, Platforms: platforms}
}

// ruleRequest is the body of a create (source_type and source_ref required) or a PATCH (any field).
type ruleRequest struct {
	SourceType     *string            `json:"source_type"`
	SourceRef      *string            `json:"source_ref"`
	DockerfileDir  *string            `json:"dockerfile_dir"`
	DockerfileName *string            `json:"dockerfile_name"`
	ImageTag       *string            `json:"image_tag"`
	BuildArgs      *map[string]string `json:"build_args"`
	Target         *string            `json:"target"`
	Platforms      *[]string          `json:"platforms"`
}

// apply merges req into r and checks the result (pipeline.CheckRule, which also fills defaults).
func (req *ruleRequest) apply(r *store.BuildRule) error {
	set := func(dst *string, v *string) {
		if v != nil {
			*dst = *v
		}
	}
	set(&r.SourceType, req.SourceType)
	set(&r.SourceRef, req.SourceRef)
	set(&r.DockerfileDir, req.DockerfileDir)
	set(&r.DockerfileName, req.DockerfileName)
	set(&r.ImageTag, req.ImageTag)
	set(&r.Target, req.Target)
	if req.BuildArgs != nil {
		r.BuildArgs = *req.BuildArgs
	}
	if req.Platforms != nil {
		r.Platforms = *req.Platforms
	}
	if err := pipeline.CheckRule(r); err != nil {
		return badRequest("%s", strings.TrimPrefix(err.Error(), pipeline.ErrInvalidRule.Error()+": "))
	}
	return nil
}

func (a *api) createRule(c *gin.Context) {
	var req ruleRequest
	if err := bindJSON(c, &req); err != nil {
		fail(c, err)
		return
	}
	if req.SourceType == nil || req.SourceRef == nil {
		fail(c, badRequest("source_type (BRANCH or TAG) and source_ref (a name, or a regular expression like release-v(?<version>.*)) are required"))
		return
	}
	rule := &store.BuildRule{}
	if err := req.apply(rule); err != nil {
		fail(c, err)
		return
	}
	r, ok := a.repositoryOr404(c)
	if !ok {
		return
	}
	rule.Repository = r.FullName
	err := a.Store.CreateBuildRule(c.Request.Context(), rule)
	a.forgetRules(rule.Repository)
	switch {
	case errors.Is(err, store.ErrNotFound):
		fail(c, notFound("repository %s does not exist", r.FullName))
	case errors.Is(err, store.ErrLimitExceeded):
		fail(c, errf(http.StatusConflict, CodeConflict, "%s has %d build rules, the most allowed; delete one first", r.FullName, store.MaxBuildRules))
	case err != nil:
		fail(c, err)
	default:
		c.JSON(http.StatusCreated, viewRule(rule))
	}
}

func (a *api) listRules(c *gin.Context) {
	if resp, _, ok := pageOfRepository(a, c, a.Store.ListBuildRules, viewRule); ok {
		c.JSON(http.StatusOK, resp)
	}
}

// ruleOr404 loads :id of :ns/:repo.
func (a *api) ruleOr404(c *gin.Context) (*store.BuildRule, bool) {
	return childOr404(a, c, "build rule", "id", "build-rules", a.Store.GetBuildRule)
}

func (a *api) getRule(c *gin.Context) {
	if rule, ok := a.ruleOr404(c); ok {
		c.JSON(http.StatusOK, viewRule(rule))
	}
}

func (a *api) updateRule(c *gin.Context) {
	var req ruleRequest
	if err := bindJSON(c, &req); err != nil {
		fail(c, err)
		return
	}
	full := c.Param("ns") + "/" + c.Param("repo")
	rule, err := a.Store.UpdateBuildRule(c.Request.Context(), full, c.Param("id"), req.apply)
	a.forgetRules(full)
	if errors.Is(err, store.ErrNotFound) {
		fail(c, notFound("build rule %q of %s does not exist", c.Param("id"), full))
		return
	}
	if err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusOK, viewRule(rule))
}

func (a *api) deleteRule(c *gin.Context) {
	full := c.Param("ns") + "/" + c.Param("repo")
	err := a.Store.DeleteBuildRule(c.Request.Context(), full, c.Param("id"))
	a.forgetRules(full)
	if errors.Is(err, store.ErrNotFound) {
		fail(c, notFound("build rule %q of %s does not exist", c.Param("id"), full))
		return
	}
	if err != nil {
		fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

// buildNow runs a rule on the head of its branch or tag, resolved on the Git server now. A rule whose
// source_ref is a pattern needs the name to build: {"ref": "release-v1.3"}.
func (a *api) buildNow(c *gin.Context) {
	var req struct {
		Ref *string `json:"ref"`
	}
	if err := bindOptionalJSON(c, &req); err != nil {
		fail(c, err)
		return
	}
	if !a.buildsOr503(c) {
		return
	}
	rule, ok := a.ruleOr404(c)
	if !ok {
		return
	}
	ctx := c.Request.Context()
	src, err := a.Store.GetSource(ctx, rule.Repository)
	if errors.Is(err, store.ErrNotFound) {
		fail(c, errf(http.StatusConflict, CodeConflict, "%s has no code source; connect one with PUT …/source first", rule.Repository))
		return
	}
	if err != nil {
		fail(c, err)
		return
	}
	m, err := pipeline.CompileRef(rule.SourceRef)
	if err != nil {
		fail(c, badRequest("%v", err))
		return
	}
	name := rule.SourceRef
	switch {
	case req.Ref != nil:
		name = *req.Ref
	case m.IsPattern():
		fail(c, badRequest("source_ref %q is a pattern: say which %s to build with {\"ref\": \"…\"}", rule.SourceRef, strings.ToLower(rule.SourceType)))
		return
	}
	if _, ok := m.Match(name); !ok {
		fail(c, badRequest("%q does not match the rule's source_ref %q", name, rule.SourceRef))
		return
	}
	rctx, cancel := context.WithTimeout(ctx, resolveTimeout)
	defer cancel()
	commit, err := a.Builds.ResolveHead(rctx, src, rule.SourceType, name)
	if err != nil {
		fail(c, gitServerFailure(ctx, err, name))
		return
	}
	who := ""
	if p := principal(c); p != nil {
		who = p.Name
	}
	b, err := a.Builds.Start(ctx, src, rule, pipeline.Ref{Type: rule.SourceType, Name: name, Commit: commit, Pusher: who}, store.BuildByManual)
	switch {
	case errors.Is(err, pipeline.ErrNoMatch), errors.Is(err, pipeline.ErrBadImageTag), errors.Is(err, pipeline.ErrInvalidRule):
		fail(c, badRequest("%v", err))
		return
	case err != nil:
		fail(c, err)
		return
	}
	c.Header("Location", "/api/v1/repositories/"+b.Repository+"/builds/"+b.ID)
	c.JSON(http.StatusAccepted, viewBuild(b))
}

// forgetRules makes this instance's next webhook of repo read its build rules again (pipeline.RulesTTL bounds
// how long other replicas may use the old ones).
func (a *api) forgetRules(repo string) {
	if a.Builds != nil {
		a.Builds.Forget(repo)
	}
}

// gitServerFailure words for the API an error of asking a source's Git server (the head of a ref for "build
// now", its refs) about what.
func gitServerFailure(ctx context.Context, err error, what string) error {
	switch {
	case errors.Is(err, gitclone.ErrRefNotFound), errors.Is(err, gitclone.ErrInvalidRequest):
		return badRequest("%v", err)
	case errors.Is(err, outbound.ErrRefused), errors.Is(err, gitclone.ErrLocalSource):
		return errf(http.StatusForbidden, CodeForbidden, "%v; the administrator may set this source's url, or the operator allow the range with %s",
			err, gitclone.SourceAllowFlag)
	case errors.Is(err, gitclone.ErrAuth), errors.Is(err, gitclone.ErrRepoNotFound), errors.Is(err, gitclone.ErrInvalidURL):
		return errf(http.StatusConflict, CodeConflict, "%v; check the source's url and credentials", err)
	case ctx.Err() == nil:
		return errf(http.StatusBadGateway, CodeUnavailable, "could not ask the Git server for %s: %v", what, err)
	}
	return err
}
