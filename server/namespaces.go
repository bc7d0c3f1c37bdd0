package server

import (
	"errors"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/berth-dev/berth/store"
)

type namespaceView struct {
	Name              string    `json:"name"`
	AutoCreateRepo    bool      `json:"auto_create_repo"`
	DefaultVisibility string    `json:"default_visibility"`
	CreatedAt         time.Time `json:"created_at"`
}

func viewNamespace(ns *store.Namespace) namespaceView {
	return namespaceView{Name: ns.Name, AutoCreateRepo: ns.AutoCreateRepo, DefaultVisibility: ns.DefaultVisibility, CreatedAt: ns.CreatedAt}
}

func checkVisibility(field string, v *string) error {
	if v != nil && !store.ValidVisibility(*v) {
		return badRequest("%s must be PUBLIC or PRIVATE, got %q", field, *v)
	}
	return nil
}

func (a *api) createNamespace(c *gin.Context) {
	var req struct {
		Name              string  `json:"name"`
		AutoCreateRepo    *bool   `json:"auto_create_repo"`
		DefaultVisibility *string `json:"default_visibility"`
	}
	if err := bindJSON(c, &req); err != nil {
		fail(c, err)
		return
	}
	if err := store.ValidateNamespaceName(req.Name); err != nil {
		fail(c, errf(http.StatusBadRequest, CodeInvalidName, "%v", err))
		return
	}
	if err := checkVisibility("default_visibility", req.DefaultVisibility); err != nil {
		fail(c, err)
		return
	}
	ns := &store.Namespace{Name: req.Name, AccountID: a.AccountID, AutoCreateRepo: true, DefaultVisibility: store.VisibilityPrivate}
	if req.AutoCreateRepo != nil {
		ns.AutoCreateRepo = *req.AutoCreateRepo
	}
	if req.DefaultVisibility != nil {
		ns.DefaultVisibility = *req.DefaultVisibility
	}
	err := a.Store.CreateNamespace(c.Request.Context(), ns, a.NamespaceLimit)
	switch {
	case errors.Is(err, store.ErrLimitExceeded):
		fail(c, errf(http.StatusConflict, CodeNamespaceLimitExceeded,
			"this account already has %d namespaces, the limit; delete one or ask the operator to raise --namespace-limit", a.NamespaceLimit))
	case errors.Is(err, store.ErrAlreadyExists):
		fail(c, errf(http.StatusConflict, CodeAlreadyExists, "namespace %q already exists; choose another name", req.Name))
	case err != nil:
		fail(c, err)
	default:
		c.JSON(http.StatusCreated, viewNamespace(ns))
	}
}

func (a *api) listNamespaces(c *gin.Context) {
	p, err := page(c)
	if err != nil {
		fail(c, err)
		return
	}
	items, total, err := a.Store.ListNamespaces(c.Request.Context(), a.AccountID, p)
	if err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusOK, list(items, total, p, viewNamespace))
}

// namespaceOr404 loads :ns, answering 404 with a helpful message when it is missing.
func (a *api) namespaceOr404(c *gin.Context) (*store.Namespace, bool) {
	ns, err := a.Store.GetNamespace(c.Request.Context(), c.Param("ns"))
	if errors.Is(err, store.ErrNotFound) {
		fail(c, notFound("namespace %q does not exist; create it with POST /api/v1/namespaces", c.Param("ns")))
		return nil, false
	}
	if err != nil {
		fail(c, err)
		return nil, false
	}
	return ns, true
}

func (a *api) getNamespace(c *gin.Context) {
	if ns, ok := a.namespaceOr404(c); ok {
		c.JSON(http.StatusOK, viewNamespace(ns))
	}
}

func (a *api) updateNamespace(c *gin.Context) {
	var req struct {
		AutoCreateRepo    *bool   `json:"auto_create_repo"`
		DefaultVisibility *string `json:"default_visibility"`
	}
	if err := bindJSON(c, &req); err != nil {
		fail(c, err)
		return
	}
	if err := checkVisibility("default_visibility", req.DefaultVisibility); err != nil {
		fail(c, err)
		return
	}
	ns, err := a.Store.UpdateNamespace(c.Request.Context(), c.Param("ns"),
		store.NamespaceUpdate{AutoCreateRepo: req.AutoCreateRepo, DefaultVisibility: req.DefaultVisibility})
	if errors.Is(err, store.ErrNotFound) {
		fail(c, notFound("namespace %q does not exist", c.Param("ns")))
		return
	}
	if err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusOK, viewNamespace(ns))
}

func (a *api) deleteNamespace(c *gin.Context) {
	force := c.Query("force") == "true"
	repos, err := a.Store.DeleteNamespace(c.Request.Context(), c.Param("ns"), force)
	switch {
	case errors.Is(err, store.ErrNotFound):
		fail(c, notFound("namespace %q does not exist", c.Param("ns")))
		return
	case errors.Is(err, store.ErrNotEmpty):
		fail(c, errf(http.StatusConflict, CodeNamespaceNotEmpty,
			"namespace %q still holds %d repositories; delete them first or repeat with ?force=true", c.Param("ns"), len(repos)))
		return
	case err != nil:
		fail(c, err)
		return
	}
	a.dropContent(c, repos...)
	c.Status(http.StatusNoContent)
}

// dropContent removes the registry content of deleted repositories — every manifest, tagged or not, referrers,
// blob links and uploads, so that nothing stays pullable by digest once the name is used again — and makes their
// webhooks stop at once. Failures are logged, not returned: the metadata is gone. Blobs no other repository
// references are freed by garbage collection.
func (a *api) dropContent(c *gin.Context, fullNames ...string) {
	if a.Builds != nil {
		for _, full := range fullNames {
			a.Builds.Forget(full)
		}
	}
	if a.Registry == nil {
		return
	}
	for _, full := range fullNames {
		if err := a.Registry.DeleteRepository(c.Request.Context(), full); err != nil {
			logger(c).Error("drop registry content", "repository", full, "err", err)
		}
	}
}
