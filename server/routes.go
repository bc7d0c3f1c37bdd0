package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/berth-dev/berth/policies"
	"github.com/berth-dev/berth/server/forwarded"
)

// resourceKind says which RAM resource a route's action is checked on (SPEC §9).
type resourceKind int

const (
	resAny        resourceKind = iota // "*"
	resNamespace                      // acs:cr:$region:$account:repository/$ns
	resRepository                     // acs:cr:$region:$account:repository/$ns/$repo
	// resPublic: no authentication, no action checked (the route's Action is ""). Only for what anyone may
	// read, like the public half of the signing key.
	resPublic
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
	{"POST", "/api/v1/namespaces", policies.ActionCreateNamespace, resAny, "Create a namespace", (*api).createNamespace},
	{"GET", "/api/v1/namespaces", policies.ActionListNamespace, resAny, "List namespaces", (*api).listNamespaces},
	{"GET", "/api/v1/namespaces/:ns", policies.ActionGetNamespace, resNamespace, "Get a namespace", (*api).getNamespace},
	{"PATCH", "/api/v1/namespaces/:ns", policies.ActionUpdateNamespace, resNamespace, "Change a namespace's settings", (*api).updateNamespace},
	{"DELETE", "/api/v1/namespaces/:ns", policies.ActionDeleteNamespace, resNamespace, "Delete a namespace (?force=true deletes its repositories)", (*api).deleteNamespace},
	{"POST", "/api/v1/namespaces/:ns/repositories", policies.ActionCreateRepository, resNamespace, "Create a repository", (*api).createRepository},
	{"GET", "/api/v1/namespaces/:ns/repositories", policies.ActionListRepository, resAny, "List a namespace's repositories (?q= keeps those whose name contains it)", (*api).listRepositories},
	{"GET", "/api/v1/repositories", policies.ActionListRepository, resAny, "List all repositories (?namespace= keeps one namespace's, ?q= those whose name contains it)", (*api).listRepositories},
	{"GET", "/api/v1/repositories/:ns/:repo", policies.ActionGetRepository, resRepository, "Get a repository", (*api).getRepository},
	{"PATCH", "/api/v1/repositories/:ns/:repo", policies.ActionUpdateRepository, resRepository, "Change a repository", (*api).updateRepository},
	{"DELETE", "/api/v1/repositories/:ns/:repo", policies.ActionDeleteRepository, resRepository, "Delete a repository and its images", (*api).deleteRepository},
	{"GET", "/api/v1/repositories/:ns/:repo/tags", policies.ActionListRepositoryTag, resRepository, "List image versions, newest first", (*api).listTags},
	{"GET", "/api/v1/repositories/:ns/:repo/tags/:tag", policies.ActionListRepositoryTag, resRepository, "Get one image version, with signed, signature_key, accessories (signatures, attestations, SBOMs) and provenance", (*api).getTag},
	{"DELETE", "/api/v1/repositories/:ns/:repo/tags/:tag", policies.ActionDeleteRepositoryTag, resRepository, "Delete a tag", (*api).deleteTag},
	{"GET", "/api/v1/repositories/:ns/:repo/tags/:tag/sbom", policies.ActionListRepositoryTag, resRepository, "The version's SBOM (CycloneDX JSON) from its verified attestation, as a download", (*api).getTagSBOM},
	{"GET", "/api/v1/repositories/:ns/:repo/tags/:tag/layers", policies.ActionGetRepositoryLayers, resRepository, "Layers of a version with their build history (?platform= for an index)", (*api).getTagLayers},
	{"GET", "/api/v1/repositories/:ns/:repo/tags/:tag/manifest", policies.ActionGetRepositoryManifest, resRepository, "The manifest of a version", (*api).getTagManifest},
	{"DELETE", "/api/v1/repositories/:ns/:repo/manifests/:digest", policies.ActionDeleteRepositoryManifest, resRepository, "Delete a manifest by digest (and every tag on it)", (*api).deleteManifest},
	// Scans and the blocking security policy (SPEC §6, §7).
	{"POST", "/api/v1/repositories/:ns/:repo/tags/:tag/scan", policies.ActionCreateRepositoryScan, resRepository, "Scan a version again now (202; the previous result stays in force until the new one is in)", (*api).createScan},
	{"GET", "/api/v1/repositories/:ns/:repo/tags/:tag/scan", policies.ActionGetRepositoryScan, resRepository, "A version's scan: status, scanner, DB version, summary and vulnerabilities", (*api).getScan},
	{"GET", "/api/v1/namespaces/:ns/security-policy", policies.ActionGetNamespaceSecurityPolicy, resNamespace, "The namespace's security policy (the default blocks nothing)", (*api).getNamespacePolicy},
	{"PUT", "/api/v1/namespaces/:ns/security-policy", policies.ActionUpdateNamespaceSecurityPolicy, resNamespace, "Replace the namespace's security policy {block_severity, only_fixable, allowlist, block_unscanned, require_signature, trusted_keys (PEM public keys, at most 10)}; its images are judged again at once", (*api).putNamespacePolicy},
	// Retention rules and runs of a namespace (SPEC §14).
	{"GET", "/api/v1/namespaces/:ns/retention-rules", policies.ActionListRetentionRule, resNamespace, "List the namespace's retention rules (at most 15)", (*api).listRetentionRules},
	{"POST", "/api/v1/namespaces/:ns/retention-rules", policies.ActionCreateRetentionRule, resNamespace, "Add a retention rule: {repository_pattern, tag_pattern, keep_last, keep_days, enabled}", (*api).createRetentionRule},
	{"GET", "/api/v1/namespaces/:ns/retention-rules/:id", policies.ActionListRetentionRule, resNamespace, "Get one retention rule", (*api).getRetentionRule},
	{"PATCH", "/api/v1/namespaces/:ns/retention-rules/:id", policies.ActionUpdateRetentionRule, resNamespace, "Change a retention rule (only the fields given)", (*api).updateRetentionRule},
	{"DELETE", "/api/v1/namespaces/:ns/retention-rules/:id", policies.ActionDeleteRetentionRule, resNamespace, "Delete a retention rule", (*api).deleteRetentionRule},
	{"POST", "/api/v1/namespaces/:ns/retention-runs", policies.ActionStartRetentionRun, resNamespace, "Run the namespace's retention rules now (202); {\"dry_run\": true} lists what would go and deletes nothing", (*api).startRetentionRun},
	{"GET", "/api/v1/namespaces/:ns/retention-runs", policies.ActionListRetentionRule, resNamespace, "List the namespace's retention runs, newest first", (*api).listRetentionRuns},
	{"GET", "/api/v1/namespaces/:ns/retention-runs/:id", policies.ActionListRetentionRule, resNamespace, "Get one retention run: what it deleted (or, dry, would delete) and how many tags it kept", (*api).getRetentionRun},
	{"GET", "/api/v1/repositories/:ns/:repo/security-policy", policies.ActionGetRepositorySecurityPolicy, resRepository, "The security policy in force for the repository (override: its own, else its namespace's)", (*api).getRepositoryPolicy},
	{"PUT", "/api/v1/repositories/:ns/:repo/security-policy", policies.ActionUpdateRepositorySecurityPolicy, resRepository, "Set the repository's own security policy, replacing its namespace's whole", (*api).putRepositoryPolicy},
	{"DELETE", "/api/v1/repositories/:ns/:repo/security-policy", policies.ActionUpdateRepositorySecurityPolicy, resRepository, "Drop the repository's own security policy (its namespace's applies again)", (*api).deleteRepositoryPolicy},
	// Code source, build rules and builds (SPEC §4, §5); the inbound webhook, POST /hooks/:hook_id, is mounted in New.
	{"PUT", "/api/v1/repositories/:ns/:repo/source", policies.ActionUpdateRepositorySource, resRepository, "Connect a Git repository (url and credentials, or account_id and repository), or change its settings; Berth registers the webhook at the host unless register_webhook is false; the answer that connects it alone carries webhook_secret", (*api).putSource},
	{"POST", "/api/v1/repositories/:ns/:repo/source/rotate-secret", policies.ActionUpdateRepositorySource, resRepository, "Replace the webhook secret; the answer alone carries the new webhook_secret (the webhook Berth registered at the host gets it; configure any other by hand)", (*api).rotateSourceSecret},
	{"GET", "/api/v1/repositories/:ns/:repo/source", policies.ActionGetRepositorySource, resRepository, "The connected Git repository, its webhook_url and webhook_registered/webhook_error (never its credentials)", (*api).getSource},
	{"DELETE", "/api/v1/repositories/:ns/:repo/source", policies.ActionDeleteRepositorySource, resRepository, "Disconnect the Git repository (its webhook URL stops working, the webhook Berth registered at the host is deleted; rules stay)", (*api).deleteSource},
	{"GET", "/api/v1/repositories/:ns/:repo/source/refs", policies.ActionGetRepositorySource, resRepository, "The source's branches and tags, from the Git server itself: {branches, tags, truncated} (at most 1000 of each)", (*api).getSourceRefs},
	// Code accounts on Git hosts (SPEC §16).
	{"POST", "/api/v1/code-accounts", policies.ActionCreateCodeAccount, resAny, "Bind a Git host account: {provider, base_url, username, token}; the token is checked against the host and never shown again", (*api).createCodeAccount},
	{"GET", "/api/v1/code-accounts", policies.ActionListCodeAccount, resAny, "List code accounts (never their tokens)", (*api).listCodeAccounts},
	{"GET", "/api/v1/code-accounts/:id", policies.ActionGetCodeAccount, resAny, "Get a code account", (*api).getCodeAccount},
	{"DELETE", "/api/v1/code-accounts/:id", policies.ActionDeleteCodeAccount, resAny, "Delete a code account (409 while code sources use it)", (*api).deleteCodeAccount},
	{"GET", "/api/v1/code-accounts/:id/repositories", policies.ActionGetCodeAccount, resAny, "The repositories the account's token sees (?q=, ?page= as the host pages them): {items: [{full_name, clone_url, default_branch, private}], page, next_page}", (*api).listCodeAccountRepositories},
	{"POST", "/api/v1/repositories/:ns/:repo/build-rules", policies.ActionCreateBuildRule, resRepository, "Create a build rule", (*api).createRule},
	{"GET", "/api/v1/repositories/:ns/:repo/build-rules", policies.ActionListBuildRule, resRepository, "List build rules", (*api).listRules},
	{"GET", "/api/v1/repositories/:ns/:repo/build-rules/:id", policies.ActionGetBuildRule, resRepository, "Get a build rule", (*api).getRule},
	{"PATCH", "/api/v1/repositories/:ns/:repo/build-rules/:id", policies.ActionUpdateBuildRule, resRepository, "Change a build rule", (*api).updateRule},
	{"DELETE", "/api/v1/repositories/:ns/:repo/build-rules/:id", policies.ActionDeleteBuildRule, resRepository, "Delete a build rule (its builds stay)", (*api).deleteRule},
	{"POST", "/api/v1/repositories/:ns/:repo/build-rules/:id/builds", policies.ActionCreateBuild, resRepository, "Build now: run the rule on the head of its branch or tag ({\"ref\": …} for a pattern)", (*api).buildNow},
	{"GET", "/api/v1/repositories/:ns/:repo/builds", policies.ActionListBuild, resRepository, "List builds, newest first", (*api).listBuilds},
	{"GET", "/api/v1/repositories/:ns/:repo/builds/:id", policies.ActionGetBuild, resRepository, "Get a build with its stages", (*api).getBuild},
	{"GET", "/api/v1/repositories/:ns/:repo/builds/:id/logs", policies.ActionGetBuildLog, resRepository, "A build's log as text (?follow=true streams it until the build ends)", (*api).getBuildLog},
	{"POST", "/api/v1/repositories/:ns/:repo/builds/:id/cancel", policies.ActionUpdateBuild, resRepository, "Cancel a queued or running build", (*api).cancelBuild},
	// System: administrator only (a ram: action).
	{"GET", "/api/v1/system/workers", policies.ActionListWorkers, resAny, "Live build workers: region, host, version, queues, last seen (administrator)", (*api).listWorkers},
	// Users, access keys and policies (RAM): only the administrator and AdministratorAccess hold ram: actions.
	{"POST", "/api/v1/users", policies.ActionCreateUser, resAny, "Create a RAM user", (*api).createUser},
	{"GET", "/api/v1/users", policies.ActionListUsers, resAny, "List users", (*api).listUsers},
	{"GET", "/api/v1/users/:name", policies.ActionGetUser, resAny, "Get a user", (*api).getUser},
	{"PATCH", "/api/v1/users/:name", policies.ActionUpdateUser, resAny, "Change a user's display name, password or enabled flag", (*api).updateUser},
	{"DELETE", "/api/v1/users/:name", policies.ActionDeleteUser, resAny, "Delete a user and its access keys", (*api).deleteUser},
	{"POST", "/api/v1/users/:name/access-keys", policies.ActionCreateAccessKey, resAny, "Create an access key; its secret is shown in this answer only", (*api).createAccessKey},
	{"GET", "/api/v1/users/:name/access-keys", policies.ActionListAccessKeys, resAny, "List a user's access keys (never their secrets)", (*api).listAccessKeys},
	{"PATCH", "/api/v1/users/:name/access-keys/:id", policies.ActionUpdateAccessKey, resAny, "Enable or disable an access key", (*api).updateAccessKey},
	{"DELETE", "/api/v1/users/:name/access-keys/:id", policies.ActionDeleteAccessKey, resAny, "Delete an access key", (*api).deleteAccessKey},
	{"PUT", "/api/v1/users/:name/policies/:policy", policies.ActionAttachPolicy, resAny, "Attach a policy to a user", (*api).attachPolicy},
	{"DELETE", "/api/v1/users/:name/policies/:policy", policies.ActionDetachPolicy, resAny, "Detach a policy from a user", (*api).detachPolicy},
	{"POST", "/api/v1/policies", policies.ActionCreatePolicy, resAny, "Create a custom policy", (*api).createPolicy},
	{"GET", "/api/v1/policies", policies.ActionListPolicies, resAny, "List policies, system policies first", (*api).listPolicies},
	{"GET", "/api/v1/policies/:name", policies.ActionGetPolicy, resAny, "Get a policy", (*api).getPolicy},
	{"PUT", "/api/v1/policies/:name", policies.ActionUpdatePolicy, resAny, "Replace a custom policy's document (system policies are read-only)", (*api).updatePolicy},
	{"DELETE", "/api/v1/policies/:name", policies.ActionDeletePolicy, resAny, "Delete a custom policy, detaching it from every user", (*api).deletePolicy},
	{"GET", "/api/v1/system/signing-key", "", resPublic, "The instance's image signing key, public half, in PEM (no authentication): `cosign verify --key` takes it", (*api).getSigningKey},
	{"GET", "/api/v1/system/scanner", policies.ActionGetSystemScanner, resAny, "The scanner's state, its vulnerability DB and the DB's last download (administrator)", (*api).getSystemScanner},
	{"POST", "/api/v1/auth/token", policies.ActionGetAuthorizationToken, resAny, "Issue a temporary registry password (also a Bearer token for this API)", (*api).createAuthToken},
	{"POST", "/api/v1/repositories/:ns/:repo/triggers", policies.ActionCreateTrigger, resRepository, "Create a trigger (outgoing webhook); a generated secret is shown in this answer only", (*api).createTrigger},
	{"GET", "/api/v1/repositories/:ns/:repo/triggers", policies.ActionListTrigger, resRepository, "List a repository's triggers", (*api).listTriggers},
	{"GET", "/api/v1/repositories/:ns/:repo/triggers/:id", policies.ActionGetTrigger, resRepository, "Get a trigger (never its secret)", (*api).getTrigger},
	{"PATCH", "/api/v1/repositories/:ns/:repo/triggers/:id", policies.ActionUpdateTrigger, resRepository, "Change a trigger", (*api).updateTrigger},
	{"DELETE", "/api/v1/repositories/:ns/:repo/triggers/:id", policies.ActionDeleteTrigger, resRepository, "Delete a trigger and its records", (*api).deleteTrigger},
	{"GET", "/api/v1/repositories/:ns/:repo/triggers/:id/records", policies.ActionListTriggerRecord, resRepository, "A trigger's access records, newest first", (*api).listTriggerRecords},
	// The installation itself: only the administrator (AdministratorAccess) holds system: actions.
	{"POST", "/api/v1/system/gc", policies.ActionStartGarbageCollection, resAny, "Start a registry garbage collection (202); an optional body {\"dry_run\", \"untagged_grace\", \"blob_grace\"} overrides the graces for this run", (*api).startGC},
	{"GET", "/api/v1/system/gc", policies.ActionListGarbageCollections, resAny, "List garbage collection runs, newest first", (*api).listGC},
	{"POST", "/api/v1/repositories/:ns/:repo/triggers/:id/test", policies.ActionUpdateTrigger, resRepository, "Send a sample delivery now and return its record", (*api).testTrigger},
	// The audit log (SPEC §14): read-only, there is no route that changes or deletes an entry.
	{"GET", "/api/v1/audit-logs", policies.ActionListAuditLogs, resAny, "The audit log, newest first (?user=&action=&resource=&since=&until=, times in RFC 3339; total stops at 10000, total_capped says so)", (*api).listAuditLogs},
}

// resource names the RAM resource a request acts on.
func (a *api) resource(kind resourceKind, c *gin.Context) string {
	return resourceName(a.Region, a.AccountID, kind, c.Param("ns"), c.Param("repo"))
}

func resourceName(region, accountID string, kind resourceKind, ns, repo string) string {
	switch kind {
	case resNamespace:
		return policies.NamespaceResource(region, accountID, ns)
	case resRepository:
		return policies.RepositoryResource(region, accountID, ns, repo)
	default:
		return policies.AnyResource
	}
}

// principalKey carries a principal authenticated by other means than the request's own credentials (a
// console session) into the API's authorization. Only code in this process can set a context value, so a
// request from the network cannot.
type principalKey struct{}

// WithPrincipal returns ctx carrying p: a request with that context, served by the handler New returns, is
// authorized as p (the route's action is still checked on its resource, as for any caller).
func WithPrincipal(ctx context.Context, p *Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// Authorization answers, for one instance (region and account), whether a principal may make an API call,
// by the same route table and RAM check the API applies to the call itself.
type Authorization struct {
	Region    string
	AccountID string
}

// ErrNoRoute is Check's answer for a method and path that are no API route.
var ErrNoRoute = errors.New("no such API route")

// Check finds the route of method and path (an /api/v1 path) and returns its RAM action and resource, and
// whether p may take that action on that resource.
func (z Authorization) Check(p *Principal, method, path string) (action, resource string, allowed bool, err error) {
	rt, params := lookupRoute(method, path)
	if rt == nil {
		return "", "", false, fmt.Errorf("%w: %s %s", ErrNoRoute, method, path)
	}
	res := resourceName(z.Region, z.AccountID, rt.Resource, params["ns"], params["repo"])
	return rt.Action, res, rt.Resource == resPublic || p.Can(rt.Action, res), nil
}

// Can reports whether p may make the API call method path; a path that is no route is not allowed.
func (z Authorization) Can(p *Principal, method, path string) bool {
	_, _, ok, err := z.Check(p, method, path)
	return err == nil && ok
}

// lookupRoute finds the route of method and path, and the values of its path parameters.
func lookupRoute(method, path string) (*route, map[string]string) {
	segs := strings.Split(strings.Trim(path, "/"), "/")
	for i := range routes {
		rt := &routes[i]
		if rt.Method != method {
			continue
		}
		pat := routeSegments[i]
		if len(pat) != len(segs) {
			continue
		}
		params := map[string]string{}
		for j, ps := range pat {
			if strings.HasPrefix(ps, ":") {
				if segs[j] == "" {
					params = nil
					break
				}
				params[ps[1:]] = segs[j]
			} else if ps != segs[j] {
				params = nil
				break
			}
		}
		if params != nil {
			return rt, params
		}
	}
	return nil, nil
}

var routeSegments = func() [][]string {
	out := make([][]string, len(routes))
	for i, rt := range routes {
		out[i] = strings.Split(strings.Trim(rt.Path, "/"), "/")
	}
	return out
}()

// authorize authenticates the caller and checks the route's action on its resource.
func (a *api) authorize(rt route) gin.HandlerFunc {
	return func(c *gin.Context) {
		if rt.Resource == resPublic {
			c.Next()
			return
		}
		p, _ := c.Request.Context().Value(principalKey{}).(*Principal)
		var err error
		if p == nil {
			p, err = a.Auth.Authenticate(c.Request.Context(), c.Request)
		}
		switch {
		case errors.Is(err, ErrNoCredentials):
			c.Header("WWW-Authenticate", `Basic realm="Berth"`)
			fail(c, errf(http.StatusUnauthorized, CodeUnauthorized,
				"authentication required: use HTTP Basic with a user name and password or an access key, or a Bearer temporary token"))
			return
		case errors.Is(err, ErrRateLimited):
			loginFailed(c)
			c.Header("Retry-After", "60")
			fail(c, errf(http.StatusTooManyRequests, CodeTooManyRequests, "too many failed logins from this client; wait a minute and try again"))
			return
		case errors.Is(err, ErrBadCredentials):
			loginFailed(c)
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
		if rt.Resource == resPublic {
			op["description"], op["security"] = "No authentication.", []any{}
			delete(op, "x-ram-action")
		}
		paths[p][strings.ToLower(rt.Method)] = op
	}
	c.JSON(http.StatusOK, gin.H{
		"openapi": "3.0.3",
		"info":    gin.H{"title": "Berth API", "version": "1"},
		"servers": []gin.H{{"url": forwarded.PublicURL(c.Request)}},
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
	resPublic:     "none (no authentication)",
}
