package server

import (
	"context"
	"errors"
	"net/http"
	"time"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"github.com/berth-dev/berth/store"
)

// Field limits (SPEC §2).
const (
	MaxSummaryRunes     = 100
	MaxDescriptionBytes = 64 << 10
)

type repositoryView struct {
	Namespace   string `json:"namespace"`
	Name        string `json:"name"`
	Summary     string `json:"summary"`
	Description string `json:"description"`
	Visibility  string `json:"visibility"`
	Origin      string `json:"origin"`
	// ImmutableTags: a regular expression over whole tags; the tags it matches, once pushed, never move nor
	// go (SPEC §14). Empty: none.
	ImmutableTags string    `json:"immutable_tags"`
	CreatedAt     time.Time `json:"created_at"`
	UpdatedAt     time.Time `json:"updated_at"`
}

func viewRepository(r *store.Repository) repositoryView {
	return repositoryView{Namespace: r.Namespace, Name: r.Name, Summary: r.Summary, Description: r.Description,
		Visibility: r.Visibility, Origin: r.Origin, ImmutableTags: r.ImmutableTags, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt}
}

// checkRepositoryFields checks what a create or a PATCH may set on a repository.
func checkRepositoryFields(summary, description, visibility *string) error {
	if summary != nil && utf8.RuneCountInString(*summary) > MaxSummaryRunes {
		return badRequest("summary is %d characters; at most %d are allowed", utf8.RuneCountInString(*summary), MaxSummaryRunes)
	}
	if description != nil && len(*description) > MaxDescriptionBytes {
		return badRequest("description is %d bytes; at most %d are allowed", len(*description), MaxDescriptionBytes)
	}
	return checkVisibility("visibility", visibility)
}

func (a *api) createRepository(c *gin.Context) {
	var req struct {
		Name        string  `json:"name"`
		Summary     *string `json:"summary"`
		Description *string `json:"description"`
		Visibility  *string `json:"visibility"`
	}
	if err := bindJSON(c, &req); err != nil {
		fail(c, err)
		return
	}
	if err := store.ValidateRepositoryName(req.Name); err != nil {
		fail(c, errf(http.StatusBadRequest, CodeInvalidName, "%v", err))
		return
	}
	if err := checkRepositoryFields(req.Summary, req.Description, req.Visibility); err != nil {
		fail(c, err)
		return
	}
	ns, ok := a.namespaceOr404(c)
	if !ok {
		return
	}
	r := &store.Repository{Namespace: ns.Name, Name: req.Name, AccountID: ns.AccountID,
		Visibility: ns.DefaultVisibility, Origin: store.OriginUser}
	if req.Summary != nil {
		r.Summary = *req.Summary
	}
	if req.Description != nil {
		r.Description = *req.Description
	}
	if req.Visibility != nil {
		r.Visibility = *req.Visibility
	}
	err := a.Store.CreateRepository(c.Request.Context(), r)
	switch {
	case errors.Is(err, store.ErrAlreadyExists):
		fail(c, errf(http.StatusConflict, CodeAlreadyExists, "repository %s/%s already exists", ns.Name, req.Name))
	case errors.Is(err, store.ErrNotFound):
		fail(c, notFound("namespace %q does not exist", ns.Name))
	case err != nil:
		fail(c, err)
	default:
		c.JSON(http.StatusCreated, viewRepository(r))
	}
}

func (a *api) listRepositories(c *gin.Context) {
	p, err := page(c)
	if err != nil {
		fail(c, err)
		return
	}
	// GET /namespaces/{ns}/repositories answers 404 for a namespace that does not exist; GET /repositories'
	// ?namespace= is a filter, whose unknown namespace has no repositories.
	ns := c.Param("ns")
	if ns != "" {
		if _, ok := a.namespaceOr404(c); !ok {
			return
		}
	} else {
		ns = c.Query("namespace")
	}
	q := c.Query("q")
	if len(q) > 64 {
		fail(c, badRequest("q is %d characters; a repository name has at most 64", len(q)))
		return
	}
	items, total, err := a.Store.SearchRepositories(c.Request.Context(), a.AccountID, ns, q, p)
	if err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusOK, list(items, total, p, viewRepository))
}

// repositoryOr404 loads :ns/:repo, answering 404 with a helpful message when it is missing.
func (a *api) repositoryOr404(c *gin.Context) (*store.Repository, bool) {
	r, err := a.Store.GetRepository(c.Request.Context(), c.Param("ns"), c.Param("repo"))
	if errors.Is(err, store.ErrNotFound) {
		fail(c, notFound("repository %s/%s does not exist", c.Param("ns"), c.Param("repo")))
		return nil, false
	}
	if err != nil {
		fail(c, err)
		return nil, false
	}
	return r, true
}

func (a *api) getRepository(c *gin.Context) {
	if r, ok := a.repositoryOr404(c); ok {
		c.JSON(http.StatusOK, viewRepository(r))
	}
}

func (a *api) updateRepository(c *gin.Context) {
	var req struct {
		Summary       *string `json:"summary"`
		Description   *string `json:"description"`
		Visibility    *string `json:"visibility"`
		ImmutableTags *string `json:"immutable_tags"`
	}
	if err := bindJSON(c, &req); err != nil {
		fail(c, err)
		return
	}
	if err := checkRepositoryFields(req.Summary, req.Description, req.Visibility); err != nil {
		fail(c, err)
		return
	}
	if req.ImmutableTags != nil {
		if _, err := store.CompilePattern(*req.ImmutableTags); err != nil {
			fail(c, badRequest("immutable_tags: %v", err))
			return
		}
	}
	r, err := a.Store.UpdateRepository(c.Request.Context(), c.Param("ns"), c.Param("repo"),
		store.RepositoryUpdate{Summary: req.Summary, Description: req.Description, Visibility: req.Visibility,
			ImmutableTags: req.ImmutableTags})
	if errors.Is(err, store.ErrNotFound) {
		fail(c, notFound("repository %s/%s does not exist", c.Param("ns"), c.Param("repo")))
		return
	}
	if err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusOK, viewRepository(r))
}

func (a *api) deleteRepository(c *gin.Context) {
	err := a.Store.DeleteRepository(c.Request.Context(), c.Param("ns"), c.Param("repo"))
	if errors.Is(err, store.ErrNotFound) {
		fail(c, notFound("repository %s/%s does not exist", c.Param("ns"), c.Param("repo")))
		return
	}
	if err != nil {
		fail(c, err)
		return
	}
	a.dropContent(c, c.Param("ns")+"/"+c.Param("repo"))
	c.Status(http.StatusNoContent)
}

// pageOfRepository reads one page of a repository's children (tags, builds, rules, triggers…), answering the
// error itself when the page parameters are bad or the repository is missing.
func pageOfRepository[S, T any](a *api, c *gin.Context, fetch func(ctx context.Context, repo string, p store.Page) ([]S, int64, error),
	view func(*S) T) (resp listResponse[T], repo string, ok bool) {
	p, err := page(c)
	if err != nil {
		fail(c, err)
		return resp, "", false
	}
	r, ok := a.repositoryOr404(c)
	if !ok {
		return resp, "", false
	}
	items, total, err := fetch(c.Request.Context(), r.FullName, p)
	if err != nil {
		fail(c, err)
		return resp, "", false
	}
	return list(items, total, p, view), r.FullName, true
}

// childOr404 loads the child named by path parameter param (a tag, build, rule, trigger…) of :ns/:repo,
// answering 404 with the kind and the route that lists them when the repository or the child is missing.
func childOr404[T any](a *api, c *gin.Context, kind, param, listRoute string,
	get func(ctx context.Context, repo, key string) (*T, error)) (*T, bool) {
	r, ok := a.repositoryOr404(c)
	if !ok {
		return nil, false
	}
	v, err := get(c.Request.Context(), r.FullName, c.Param(param))
	if errors.Is(err, store.ErrNotFound) {
		fail(c, notFound("%s %q of %s does not exist; list them with GET …/%s", kind, c.Param(param), r.FullName, listRoute))
		return nil, false
	}
	if err != nil {
		fail(c, err)
		return nil, false
	}
	return v, true
}
