package server

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/berth-dev/berth/policies"
	"github.com/berth-dev/berth/policies/access"
	"github.com/berth-dev/berth/store"
	"github.com/berth-dev/berth/store/embedded"
	"github.com/berth-dev/berth/store/storetest"
)

// The authorization tests are generated from the route table: whatever route is added, it is checked here,
// and a route that is not in the table cannot be served (the router is built from the table, and
// TestRouterServesExactlyTheTable proves it).

const (
	authzRegion  = "cn-hangzhou"
	authzAccount = "1234567890123456"
)

// fakeAuth authenticates "Basic <name>:x" as the principal registered under name.
type fakeAuth struct {
	mu         sync.Mutex
	principals map[string]*Principal
}

func (f *fakeAuth) add(name string, admin bool, docs ...*policies.Document) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.principals[name] = access.NewPrincipal(name, authzAccount, admin, policies.Compile(docs...))
}

func (f *fakeAuth) Authenticate(_ context.Context, r *http.Request) (*Principal, error) {
	name, _, ok := r.BasicAuth()
	if !ok {
		return nil, ErrNoCredentials
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if p, ok := f.principals[name]; ok {
		return p, nil
	}
	return nil, ErrBadCredentials
}

func (f *fakeAuth) IssueTemporary(context.Context, string, time.Duration) (string, time.Time, error) {
	return "berth-tmp.fake", time.Now().Add(time.Hour), nil
}

func (f *fakeAuth) IssueTemporaryFor(ctx context.Context, p *Principal, ttl time.Duration) (string, time.Time, error) {
	return f.IssueTemporary(ctx, p.Name, ttl)
}

func (f *fakeAuth) NewAccessKey(context.Context, string) (string, string, error) {
	return "LTAIfake", "secret", nil
}

func (f *fakeAuth) Invalidate(string) {}

// testStore opens a store on the MongoDB at BERTH_TEST_MONGO_URI, or on an embedded FerretDB.
func testStore(t *testing.T) store.Store {
	t.Helper()
	ctx := context.Background()
	uri := os.Getenv("BERTH_TEST_MONGO_URI")
	if uri == "" {
		m, err := embedded.StartMongo(ctx, t.TempDir(), slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(m.Stop)
		uri = m.URI
	}
	s, err := store.Open(ctx, uri, store.Options{Database: fmt.Sprintf("authz%d_%d", os.Getpid(), time.Now().UnixNano()),
		Locker: storetest.OwnLocker(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = s.DropDatabase(ctx)
		_ = s.Close(ctx)
	})
	return s
}

// samplePath fills a route's parameters with fixed values: the namespace juzhong, the repository nginx, and
// names that exist nowhere (so a handler answers 404 or 400, never acts on the administrator).
func samplePath(path string) string {
	values := map[string]string{"ns": "juzhong", "repo": "nginx", "tag": "latest", "name": "alice", "policy": "my-policy",
		"id": "x1", "digest": "sha256:" + strings.Repeat("a", 64)}
	segs := strings.Split(path, "/")
	for i, s := range segs {
		if p, ok := strings.CutPrefix(s, ":"); ok {
			v, known := values[p]
			if !known {
				v = "x1"
			}
			segs[i] = v
		}
	}
	return strings.Join(segs, "/")
}

// sampleResource is the resource a route checks for samplePath.
func sampleResource(kind resourceKind) string {
	switch kind {
	case resNamespace:
		return policies.NamespaceResource(authzRegion, authzAccount, "juzhong")
	case resRepository:
		return policies.RepositoryResource(authzRegion, authzAccount, "juzhong", "nginx")
	}
	return policies.AnyResource
}

// nearMisses are resources that must not satisfy a check on kind: the same names in another region or
// account, a sibling, the parent or a child.
func nearMisses(kind resourceKind) []string {
	switch kind {
	case resNamespace:
		return []string{
			policies.NamespaceResource("cn-shanghai", authzAccount, "juzhong"),
			policies.NamespaceResource(authzRegion, "999", "juzhong"),
			policies.NamespaceResource(authzRegion, authzAccount, "juzhong2"),
			policies.NamespaceResource(authzRegion, authzAccount, "juzhong") + "/*",
		}
	case resRepository:
		return []string{
			policies.RepositoryResource("cn-shanghai", authzAccount, "juzhong", "nginx"),
			policies.RepositoryResource(authzRegion, "999", "juzhong", "nginx"),
			policies.RepositoryResource(authzRegion, authzAccount, "juzhong", "redis"),
			policies.RepositoryResource(authzRegion, authzAccount, "other", "nginx"),
			policies.NamespaceResource(authzRegion, authzAccount, "juzhong"),
		}
	}
	return []string{"acs:cr:*:*:repository/*", "acs:cr:*:*:repository/*/*"}
}

func doc(effect policies.Effect, actions, resources []string) *policies.Document {
	return &policies.Document{Version: policies.Version, Statement: []policies.Statement{
		{Effect: effect, Action: actions, Resource: resources}}}
}

func newAuthzAPI(t *testing.T) (*fakeAuth, http.Handler) {
	t.Helper()
	auth := &fakeAuth{principals: map[string]*Principal{}}
	h := New(Deps{Store: testStore(t), Auth: auth, Region: authzRegion, AccountID: authzAccount,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	return auth, h
}

func call(h http.Handler, user, method, path string) *httptest.ResponseRecorder {
	var body io.Reader
	if method == "POST" || method == "PUT" || method == "PATCH" {
		body = bytes.NewReader([]byte("{}"))
	}
	req := httptest.NewRequest(method, path, body)
	req.RemoteAddr = "127.0.0.1:1234"
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if user != "" {
		req.SetBasicAuth(user, "x")
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

// TestRouteAuthorization checks every route of the table with five callers:
//   - allowed: a policy allowing exactly the route's action on exactly its resource is not refused (401/403);
//   - others: every other action Berth knows, on "*", plus the route's action on near-miss resources (other
//     region, other account, sibling, parent, child) gets 403 FORBIDDEN;
//   - denied: "*" on "*" plus an explicit Deny of the route's action on its resource gets 403 FORBIDDEN;
//   - admin: the main account's administrator with no policies is not refused;
//   - anonymous: 401 UNAUTHORIZED.
func TestRouteAuthorization(t *testing.T) {
	auth, h := newAuthzAPI(t)
	for i, rt := range routes {
		t.Run(rt.Method+" "+rt.Path, func(t *testing.T) {
			path := samplePath(rt.Path)
			if rt.Resource == resPublic {
				// No authentication: anyone, with or without credentials, is served.
				for _, who := range []string{"", "admin"} {
					if w := call(h, who, rt.Method, path); w.Code == http.StatusForbidden || w.Code == http.StatusUnauthorized {
						t.Errorf("public route as %q: %d %s", who, w.Code, w.Body)
					}
				}
				return
			}
			res := sampleResource(rt.Resource)
			allowed, others, denied := fmt.Sprintf("allowed-%d", i), fmt.Sprintf("others-%d", i), fmt.Sprintf("denied-%d", i)
			auth.add(allowed, false, doc(policies.EffectAllow, []string{rt.Action}, []string{res}))
			var rest []string
			for _, a := range policies.AllActions {
				if !strings.EqualFold(a, rt.Action) {
					rest = append(rest, a)
				}
			}
			auth.add(others, false,
				doc(policies.EffectAllow, rest, []string{policies.AnyResource}),
				doc(policies.EffectAllow, []string{rt.Action}, nearMisses(rt.Resource)))
			auth.add(denied, false,
				doc(policies.EffectAllow, []string{"*"}, []string{policies.AnyResource}),
				doc(policies.EffectDeny, []string{rt.Action}, []string{res}))
			auth.add("admin", true)

			if w := call(h, allowed, rt.Method, path); w.Code == http.StatusForbidden || w.Code == http.StatusUnauthorized {
				t.Errorf("allowed %s on %s: %d %s", rt.Action, res, w.Code, w.Body)
			}
			if w := call(h, "admin", rt.Method, path); w.Code == http.StatusForbidden || w.Code == http.StatusUnauthorized {
				t.Errorf("admin: %d %s", w.Code, w.Body)
			}
			for _, who := range []string{others, denied} {
				w := call(h, who, rt.Method, path)
				if w.Code != http.StatusForbidden || !strings.Contains(w.Body.String(), `"code":"FORBIDDEN"`) ||
					!strings.Contains(w.Body.String(), rt.Action) {
					t.Errorf("%s: got %d %s, want 403 FORBIDDEN naming %s", who, w.Code, w.Body, rt.Action)
				}
			}
			if w := call(h, "", rt.Method, path); w.Code != http.StatusUnauthorized {
				t.Errorf("anonymous: %d %s", w.Code, w.Body)
			}
		})
	}
}

// TestRouterServesExactlyTheTable: the Gin router holds the table's routes and the four unauthenticated
// service routes, nothing else; the table has no duplicates.
func TestRouterServesExactlyTheTable(t *testing.T) {
	_, h := newAuthzAPI(t)
	var served []string
	for _, r := range h.(*gin.Engine).Routes() {
		served = append(served, r.Method+" "+r.Path)
	}
	want := []string{"GET /healthz", "GET /readyz", "GET /metrics", "GET /api/v1/openapi.json", "POST /hooks/:hook_id"}
	for _, rt := range routes {
		k := rt.Method + " " + rt.Path
		if slices.Contains(want, k) {
			t.Errorf("route %s is in the table twice", k)
		}
		want = append(want, k)
	}
	slices.Sort(served)
	slices.Sort(want)
	if !slices.Equal(served, want) {
		t.Fatalf("router and table differ:\nrouter: %v\ntable:  %v", served, want)
	}
}

// TestRouteActionsAreKnown: every route checks an action policies knows (so documents can name it and
// validation accepts it), and SPEC §9's table is followed where it names the API.
func TestRouteActionsAreKnown(t *testing.T) {
	spec := map[string]struct {
		action string
		kind   resourceKind
	}{
		"POST /api/v1/namespaces":                                 {policies.ActionCreateNamespace, resAny},
		"GET /api/v1/namespaces":                                  {policies.ActionListNamespace, resAny},
		"GET /api/v1/namespaces/:ns":                              {policies.ActionGetNamespace, resNamespace},
		"PATCH /api/v1/namespaces/:ns":                            {policies.ActionUpdateNamespace, resNamespace},
		"DELETE /api/v1/namespaces/:ns":                           {policies.ActionDeleteNamespace, resNamespace},
		"POST /api/v1/namespaces/:ns/repositories":                {policies.ActionCreateRepository, resNamespace},
		"GET /api/v1/namespaces/:ns/repositories":                 {policies.ActionListRepository, resAny},
		"GET /api/v1/repositories":                                {policies.ActionListRepository, resAny},
		"GET /api/v1/repositories/:ns/:repo":                      {policies.ActionGetRepository, resRepository},
		"PATCH /api/v1/repositories/:ns/:repo":                    {policies.ActionUpdateRepository, resRepository},
		"DELETE /api/v1/repositories/:ns/:repo":                   {policies.ActionDeleteRepository, resRepository},
		"GET /api/v1/repositories/:ns/:repo/tags":                 {policies.ActionListRepositoryTag, resRepository},
		"DELETE /api/v1/repositories/:ns/:repo/tags/:tag":         {policies.ActionDeleteRepositoryTag, resRepository},
		"GET /api/v1/repositories/:ns/:repo/tags/:tag/manifest":   {policies.ActionGetRepositoryManifest, resRepository},
		"GET /api/v1/repositories/:ns/:repo/tags/:tag/layers":     {policies.ActionGetRepositoryLayers, resRepository},
		"POST /api/v1/auth/token":                                 {policies.ActionGetAuthorizationToken, resAny},
		"POST /api/v1/users":                                      {policies.ActionCreateUser, resAny},
		"PUT /api/v1/users/:name/policies/:policy":                {policies.ActionAttachPolicy, resAny},
		"DELETE /api/v1/policies/:name":                           {policies.ActionDeletePolicy, resAny},
		"POST /api/v1/users/:name/access-keys":                    {policies.ActionCreateAccessKey, resAny},
		"DELETE /api/v1/repositories/:ns/:repo/manifests/:digest": {policies.ActionDeleteRepositoryManifest, resRepository},
		"GET /api/v1/repositories/:ns/:repo/tags/:tag":            {policies.ActionListRepositoryTag, resRepository},
		"PATCH /api/v1/users/:name/access-keys/:id":               {policies.ActionUpdateAccessKey, resAny},
		"DELETE /api/v1/users/:name/policies/:policy":             {policies.ActionDetachPolicy, resAny},
		"PUT /api/v1/policies/:name":                              {policies.ActionUpdatePolicy, resAny},
		"GET /api/v1/users/:name/access-keys":                     {policies.ActionListAccessKeys, resAny},
		"DELETE /api/v1/users/:name":                              {policies.ActionDeleteUser, resAny},
		"PATCH /api/v1/users/:name":                               {policies.ActionUpdateUser, resAny},
		"DELETE /api/v1/users/:name/access-keys/:id":              {policies.ActionDeleteAccessKey, resAny},
		"POST /api/v1/policies":                                   {policies.ActionCreatePolicy, resAny},
		"GET /api/v1/policies/:name":                              {policies.ActionGetPolicy, resAny},
		"GET /api/v1/policies":                                    {policies.ActionListPolicies, resAny},
		"GET /api/v1/users/:name":                                 {policies.ActionGetUser, resAny},
		"GET /api/v1/users":                                       {policies.ActionListUsers, resAny},
	}
	seen := map[string]bool{}
	for _, rt := range routes {
		k := rt.Method + " " + rt.Path
		seen[k] = true
		if rt.Resource == resPublic {
			if rt.Action != "" || !strings.HasPrefix(rt.Path, "/api/v1/system/") {
				t.Errorf("%s: a public route checks no action (has %q) and is a /api/v1/system/ path", k, rt.Action)
			}
			continue
		}
		if !slices.Contains(policies.AllActions, rt.Action) {
			t.Errorf("%s checks %q, which is not an action in policies.AllActions", k, rt.Action)
		}
		if strings.HasPrefix(rt.Action, "ram:") && rt.Resource != resAny {
			t.Errorf("%s: ram: actions are checked on \"*\"", k)
		}
		if strings.Contains(rt.Path, "/:repo") && !strings.HasPrefix(rt.Action, "ram:") && rt.Resource != resRepository &&
			rt.Action != policies.ActionListRepository {
			t.Errorf("%s acts on one repository but checks %s on %s", k, rt.Action, resourceDoc[rt.Resource])
		}
		if want, ok := spec[k]; ok && (rt.Action != want.action || rt.Resource != want.kind) {
			t.Errorf("%s checks %s on %s; SPEC §9 says %s on %s", k, rt.Action, resourceDoc[rt.Resource], want.action, resourceDoc[want.kind])
		}
	}
	for k := range spec {
		if !seen[k] {
			t.Errorf("SPEC route %s is missing from the table", k)
		}
	}
}

const (
	docPath   = "../docs/access-control.md"
	docBegin  = "<!-- BEGIN ROUTE TABLE: generated from server/routes.go by TestAccessControlDoc; do not edit by hand -->"
	docEnd    = "<!-- END ROUTE TABLE -->"
	docUpdate = "BERTH_UPDATE_DOCS"
)

// routeTableMarkdown renders the route table as docs/access-control.md shows it.
func routeTableMarkdown() string {
	var b strings.Builder
	b.WriteString("| method | path | action | resource | what it does |\n|---|---|---|---|---|\n")
	for _, rt := range routes {
		action, res := "`"+rt.Action+"`", "`"+resourceDoc[rt.Resource]+"`"
		if rt.Resource == resPublic {
			action, res = "none", "none: no authentication"
		}
		fmt.Fprintf(&b, "| %s | `%s` | %s | %s | %s |\n", rt.Method, rt.Path, action, res, strings.ReplaceAll(rt.Summary, "|", `\|`))
	}
	return b.String()
}

// TestAccessControlDoc keeps the route → action/resource table in docs/access-control.md equal to the route
// table. After changing routes, run `BERTH_UPDATE_DOCS=1 go test ./server -run TestAccessControlDoc`.
func TestAccessControlDoc(t *testing.T) {
	raw, err := os.ReadFile(docPath)
	if err != nil {
		t.Fatal(err)
	}
	text := string(raw)
	i, j := strings.Index(text, docBegin), strings.Index(text, docEnd)
	if i < 0 || j < i {
		t.Fatalf("%s lacks the markers %q and %q", docPath, docBegin, docEnd)
	}
	want := text[:i+len(docBegin)] + "\n" + routeTableMarkdown() + text[j:]
	if want == text {
		return
	}
	if os.Getenv(docUpdate) != "" {
		if err := os.WriteFile(docPath, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("updated %s", docPath)
		return
	}
	t.Fatalf("%s is out of date with the route table; run `%s=1 go test ./server -run TestAccessControlDoc`", docPath, docUpdate)
}
