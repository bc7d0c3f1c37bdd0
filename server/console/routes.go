package console

import (
	"io/fs"
	"net/http"
	"strings"
)

// routes mounts the pages. Their paths mirror the API's (/namespaces/{ns}, /repositories/{ns}/{repo}/…) and
// the templates under templates/pages are named after them.
func (c *Console) routes() {
	m := c.mux
	static, _ := fs.Sub(files, "static")
	fsrv := http.StripPrefix("/static/", http.FileServer(http.FS(static)))
	m.HandleFunc("GET /static/", func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/") { // no directory listings
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Cache-Control", "public, max-age=86400")
		fsrv.ServeHTTP(w, r)
	})
	m.HandleFunc("GET /favicon.ico", http.NotFound)
	m.HandleFunc("GET /login", c.loginPage)
	m.HandleFunc("POST /login", c.login)
	m.HandleFunc("POST /logout", c.page(c.logout))
	m.HandleFunc("GET /{$}", c.page(func(x *reqCtx) { x.done("/namespaces") }))

	m.HandleFunc("GET /namespaces", c.page(c.namespaces))
	m.HandleFunc("POST /namespaces", c.page(c.createNamespace))
	m.HandleFunc("GET /namespaces/{ns}", c.page(c.repositories))
	m.HandleFunc("POST /namespaces/{ns}/repositories", c.page(c.createRepository))
	m.HandleFunc("GET /namespaces/{ns}/settings", c.page(c.namespaceSettings))
	m.HandleFunc("POST /namespaces/{ns}/settings", c.page(c.updateNamespace))
	m.HandleFunc("POST /namespaces/{ns}/security-policy", c.page(c.putNamespacePolicy))
	m.HandleFunc("POST /namespaces/{ns}/delete", c.page(c.deleteNamespace))
	m.HandleFunc("POST /namespaces/{ns}/retention-rules", c.page(c.createRetentionRule))
	m.HandleFunc("POST /namespaces/{ns}/retention-rules/{id}", c.page(c.updateRetentionRule))
	m.HandleFunc("POST /namespaces/{ns}/retention-rules/{id}/delete", c.page(c.deleteRetentionRule))
	m.HandleFunc("POST /namespaces/{ns}/retention-runs", c.page(c.startRetentionRun))
	m.HandleFunc("GET /namespaces/{ns}/retention-runs/{id}", c.page(c.retentionRunPage))

	m.HandleFunc("GET /repositories", c.page(c.allRepositories))
	m.HandleFunc("GET /repositories/new", c.page(c.newRepository))
	m.HandleFunc("POST /repositories/new", c.page(c.postNewRepository))
	m.HandleFunc("GET /code-accounts", c.page(c.codeAccounts))
	m.HandleFunc("POST /code-accounts", c.page(c.createCodeAccount))
	m.HandleFunc("POST /code-accounts/{id}/delete", c.page(c.deleteCodeAccount))
	const repo = "/repositories/{ns}/{repo}"
	m.HandleFunc("GET "+repo, c.page(c.repository))
	m.HandleFunc("POST "+repo, c.page(c.updateRepository))
	m.HandleFunc("POST "+repo+"/delete", c.page(c.deleteRepository))
	m.HandleFunc("GET "+repo+"/tags", c.page(c.tags))
	m.HandleFunc("GET "+repo+"/tags/{tag}", c.page(c.tagPage))
	m.HandleFunc("GET "+repo+"/tags/{tag}/sbom", c.page(c.tagSBOM))
	m.HandleFunc("POST "+repo+"/tags/{tag}/scan", c.page(c.rescan))
	m.HandleFunc("POST "+repo+"/tags/{tag}/delete", c.page(c.deleteTag))
	m.HandleFunc("GET "+repo+"/security", c.page(c.repoSecurity))
	m.HandleFunc("POST "+repo+"/security", c.page(c.putRepoPolicy))
	m.HandleFunc("POST "+repo+"/security/reset", c.page(c.resetRepoPolicy))

	m.HandleFunc("GET "+repo+"/build", c.page(c.buildSettings))
	m.HandleFunc("GET "+repo+"/connect", c.page(c.connect))
	m.HandleFunc("POST "+repo+"/connect", c.page(c.postConnect))
	m.HandleFunc("POST "+repo+"/source", c.page(c.putSource))
	m.HandleFunc("GET "+repo+"/source/refs", c.page(c.sourceRefs))
	m.HandleFunc("POST "+repo+"/source/delete", c.page(c.deleteSource))
	m.HandleFunc("POST "+repo+"/source/rotate-secret", c.page(c.rotateSourceSecret))
	m.HandleFunc("POST "+repo+"/build-rules", c.page(c.createRule))
	m.HandleFunc("POST "+repo+"/build-rules/{id}", c.page(c.updateRule))
	m.HandleFunc("POST "+repo+"/build-rules/{id}/build", c.page(c.buildNow))
	m.HandleFunc("POST "+repo+"/build-rules/{id}/delete", c.page(c.deleteRule))
	m.HandleFunc("GET "+repo+"/builds", c.page(c.builds))
	m.HandleFunc("GET "+repo+"/builds/{id}", c.page(c.buildPage))
	m.HandleFunc("GET "+repo+"/builds/{id}/log", c.page(c.buildLog))
	m.HandleFunc("GET "+repo+"/builds/{id}/status", c.page(c.buildStatus))
	m.HandleFunc("POST "+repo+"/builds/{id}/cancel", c.page(c.cancelBuild))

	m.HandleFunc("GET "+repo+"/triggers", c.page(c.triggers))
	m.HandleFunc("POST "+repo+"/triggers", c.page(c.createTrigger))
	m.HandleFunc("GET "+repo+"/triggers/{id}", c.page(c.triggerPage))
	m.HandleFunc("POST "+repo+"/triggers/{id}", c.page(c.updateTrigger))
	m.HandleFunc("POST "+repo+"/triggers/{id}/test", c.page(c.testTrigger))
	m.HandleFunc("POST "+repo+"/triggers/{id}/delete", c.page(c.deleteTrigger))

	m.HandleFunc("GET /audit-logs", c.page(c.auditLogs))
	m.HandleFunc("GET /users", c.page(c.users))
	m.HandleFunc("POST /users", c.page(c.createUser))
	m.HandleFunc("GET /users/{name}", c.page(c.userPage))
	m.HandleFunc("POST /users/{name}", c.page(c.updateUser))
	m.HandleFunc("POST /users/{name}/delete", c.page(c.deleteUser))
	m.HandleFunc("POST /users/{name}/access-keys", c.page(c.createAccessKey))
	m.HandleFunc("POST /users/{name}/access-keys/{id}/delete", c.page(c.deleteAccessKey))
	m.HandleFunc("POST /users/{name}/policies", c.page(c.attachPolicy))
	m.HandleFunc("POST /users/{name}/policies/{policy}/detach", c.page(c.detachPolicy))
	m.HandleFunc("GET /policies", c.page(c.policies))
	m.HandleFunc("POST /policies", c.page(c.createPolicy))
	m.HandleFunc("GET /policies/{name}", c.page(c.policyPage))
	m.HandleFunc("POST /policies/{name}", c.page(c.updatePolicy))
	m.HandleFunc("POST /policies/{name}/delete", c.page(c.deletePolicy))
	m.HandleFunc("GET /credentials", c.page(c.credentials))
	m.HandleFunc("POST /credentials", c.page(c.createCredentials))

	m.HandleFunc("/", c.page(func(x *reqCtx) {
		x.fail(&apiError{Status: http.StatusNotFound, Code: "NOT_FOUND", Message: "there is no console page at " + x.r.URL.Path})
	}))
}
