package server

import (
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"

	"github.com/gin-gonic/gin"
)

// resourceKind says which RAM resource a route's action is checked on (SPEC §9).
type resourceKind int

const (
	resAny        resourceKind = iota // "*"
	resNamespace                      // acs:cr:$region:$account:repository/$ns
	resRepository                     // acs:cr:$region:$account:repository/$ns/$repo
)

// route is one REST route with the one action it checks on one resource. This table is the single source
// of the router, the authorization checks, the OpenAPI document and the authorization tests.
type route struct {
	Method   string
	Path     string
	Action   string
	Resource resourceKind
	Summary  string
	Handle   func(*api, *gin.Context)
}

var routes = []route{
	{"POST", "/api/v1/namespaces", "cr:CreateNamespace", resAny, "Create a namespace", (*api).createNamespace},
	{"GET", "/api/v1/namespaces", "cr:ListNamespace", resAny, "List namespaces", (*api).listNamespaces},
	{"GET", "/api/v1/namespaces/:ns", "cr:GetNamespace", resNamespace, "Get a namespace", (*api).getNamespace},
	{"PATCH", "/api/v1/namespaces/:ns", "cr:UpdateNamespace", resNamespace, "Change a namespace's settings", (*api).updateNamespace},
	{"DELETE", "/api/v1/namespaces/:ns", "cr:DeleteNamespace", resNamespace, "Delete a namespace (?force=true deletes its repositories)", (*api).deleteNamespace},
	{"POST", "/api/v1/namespaces/:ns/repositories", "cr:CreateRepository", resNamespace, "Create a repository", (*api).createRepository},
	{"GET", "/api/v1/namespaces/:ns/repositories", "cr:ListRepository", resAny, "List a namespace's repositories", (*api).listRepositories},
	{"GET", "/api/v1/repositories", "cr:ListRepository", resAny, "List all repositories", (*api).listRepositories},
	{"GET", "/api/v1/repositories/:ns/:repo", "cr:GetRepository", resRepository, "Get a repository", (*api).getRepository},
	{"PATCH", "/api/v1/repositories/:ns/:repo", "cr:UpdateRepository", resRepository, "Change a repository", (*api).updateRepository},
	{"DELETE", "/api/v1/repositories/:ns/:repo", "cr:DeleteRepository", resRepository, "Delete a repository and its images", (*api).deleteRepository},
	{"GET", "/api/v1/repositories/:ns/:repo/tags", "cr:ListRepositoryTag", resRepository, "List image versions, newest first", (*api).listTags},
	{"GET", "/api/v1/repositories/:ns/:repo/tags/:tag", "cr:ListRepositoryTag", resRepository, "Get one image version", (*api).getTag},
	{"DELETE", "/api/v1/repositories/:ns/:repo/tags/:tag", "cr:DeleteRepositoryTag", resRepository, "Delete a tag", (*api).deleteTag},
	{"GET", "/api/v1/repositories/:ns/:repo/tags/:tag/layers", "cr:GetRepositoryLayers", resRepository, "Layers of a version with their build history (?platform= for an index)", (*api).getTagLayers},
	{"GET", "/api/v1/repositories/:ns/:repo/tags/:tag/manifest", "cr:GetRepositoryManifest", resRepository, "The manifest of a version", (*api).getTagManifest},
	{"DELETE", "/api/v1/repositories/:ns/:repo/manifests/:digest", "cr:DeleteRepositoryManifest", resRepository, "Delete a manifest by digest (and every tag on it)", (*api).deleteManifest},
	{"POST", "/api/v1/repositories/:ns/:repo/triggers", "cr:CreateTrigger", resRepository, "Create a trigger (outgoing webhook); a generated secret is shown in this answer only", (*api).createTrigger},
	{"GET", "/api/v1/repositories/:ns/:repo/triggers", "cr:ListTrigger", resRepository, "List a repository's triggers", (*api).listTriggers},
	{"GET", "/api/v1/repositories/:ns/:repo/triggers/:id", "cr:GetTrigger", resRepository, "Get a trigger (never its secret)", (*api).getTrigger},
	{"PATCH", "/api/v1/repositories/:ns/:repo/triggers/:id", "cr:UpdateTrigger", resRepository, "Change a trigger", (*api).updateTrigger},
	{"DELETE", "/api/v1/repositories/:ns/:repo/triggers/:id", "cr:DeleteTrigger", resRepository, "Delete a trigger and its records", (*api).deleteTrigger},
	{"GET", "/api/v1/repositories/:ns/:repo/triggers/:id/records", "cr:ListTriggerRecord", resRepository, "A trigger's access records, newest first", (*api).listTriggerRecords},
	{"POST", "/api/v1/repositories/:ns/:repo/triggers/:id/test", "cr:UpdateTrigger", resRepository, "Send a sample delivery now and return its record", (*api).testTrigger},
}

// resource names the RAM resource a request acts on.
func (a *api) resource(kind resourceKind, c *gin.Context) string {
	switch kind {
	case resNamespace:
		return fmt.Sprintf("acs:cr:%s:%s:repository/%s", a.Region, a.AccountID, c.Param("ns"))
	case resRepository:
		return fmt.Sprintf("acs:cr:%s:%s:repository/%s/%s", a.Region, a.AccountID, c.Param("ns"), c.Param("repo"))
	default:
		return "*"
	}
}

// authorize authenticates the caller and checks the route's action on its resource.
func (a *api) authorize(rt route) gin.HandlerFunc {
	return func(c *gin.Context) {
		p, err := a.Auth.Authenticate(c.Request.Context(), c.Request)
		switch {
		case errors.Is(err, ErrNoCredentials):
			c.Header("WWW-Authenticate", `Basic realm="Berth"`)
			fail(c, errf(http.StatusUnauthorized, CodeUnauthorized,
				"authentication required: use HTTP Basic with a user name and password or an access key, or a Bearer temporary token"))
			return
		case errors.Is(err, ErrRateLimited):
			c.Header("Retry-After", "60")
			fail(c, errf(http.StatusTooManyRequests, CodeTooManyRequests, "too many failed logins; wait a minute and try again"))
			return
		case errors.Is(err, ErrBadCredentials):
			c.Header("WWW-Authenticate", `Basic realm="Berth"`)
			fail(c, errf(http.StatusUnauthorized, CodeUnauthorized, "invalid credentials, or the user is disabled"))
			return
		case err != nil:
			fail(c, err)
			return
		}
		c.Set("principal", p)
		c.Set("user", p.Name)
		res := a.resource(rt.Resource, c)
		if !p.Can(rt.Action, res) {
			fail(c, errf(http.StatusForbidden, CodeForbidden,
				"%s is not allowed %s on %s; ask an administrator to attach a policy that allows it", p.Name, rt.Action, res))
			return
		}
		c.Next()
	}
}

func principal(c *gin.Context) *Principal {
	p, _ := c.Get("principal")
	pp, _ := p.(*Principal)
	return pp
}

// openapi serves an OpenAPI 3 document generated from the route table, so it always matches the routes.
func (a *api) openapi(c *gin.Context) {
	paths := map[string]map[string]any{}
	for _, rt := range routes {
		p := rt.Path
		var params []map[string]any
		for _, seg := range strings.Split(p, "/") {
			if strings.HasPrefix(seg, ":") {
				params = append(params, map[string]any{"name": seg[1:], "in": "path", "required": true, "schema": map[string]string{"type": "string"}})
			}
		}
		p = colonParam.ReplaceAllString(p, "{$1}")
		if paths[p] == nil {
			paths[p] = map[string]any{}
		}
		op := map[string]any{
			"summary":      rt.Summary,
			"operationId":  strings.ToLower(rt.Method) + strings.ReplaceAll(strings.ReplaceAll(p, "/", "_"), "{", ""),
			"description":  fmt.Sprintf("RAM action %s on %s.", rt.Action, resourceDoc[rt.Resource]),
			"x-ram-action": rt.Action,
			"responses": map[string]any{
				"default": map[string]any{"description": "error", "content": map[string]any{"application/json": map[string]any{"schema": map[string]string{"$ref": "#/components/schemas/Error"}}}},
				"200":     map[string]any{"description": "success"},
			},
		}
		if len(params) > 0 {
			op["parameters"] = params
		}
		paths[p][strings.ToLower(rt.Method)] = op
	}
	c.JSON(http.StatusOK, gin.H{
		"openapi": "3.0.3",
		"info":    gin.H{"title": "Berth API", "version": "1"},
		"servers": []gin.H{{"url": a.PublicURL}},
		"paths":   paths,
		"components": gin.H{
			"securitySchemes": gin.H{"basic": gin.H{"type": "http", "scheme": "basic"}, "bearer": gin.H{"type": "http", "scheme": "bearer"}},
			"schemas": gin.H{"Error": gin.H{"type": "object", "properties": gin.H{
				"code": gin.H{"type": "string"}, "message": gin.H{"type": "string"}, "request_id": gin.H{"type": "string"}}}},
		},
		"security": []gin.H{{"basic": []string{}}, {"bearer": []string{}}},
	})
}

var colonParam = regexp.MustCompile(`:([a-z_]+)`)

var resourceDoc = map[resourceKind]string{
	resAny:        "*",
	resNamespace:  "acs:cr:$region:$account:repository/$ns",
	resRepository: "acs:cr:$region:$account:repository/$ns/$repo",
}
