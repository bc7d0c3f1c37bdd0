package server_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/berth-dev/berth/server/app/apptest"
)

// skopeo drives the registry of an instance with the real skopeo client.
type skopeo struct {
	t      *testing.T
	bin    string
	host   string
	home   string
	source string // OCI layout holding one small image named "img"
}

func newSkopeo(t *testing.T, in *apptest.Instance) *skopeo {
	t.Helper()
	bin, err := exec.LookPath("skopeo")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("skopeo is required in CI (apt-get install -y skopeo)")
		}
		t.Skip("skopeo not installed (apt-get install -y skopeo)")
	}
	img, err := random.Image(512, 1)
	if err != nil {
		t.Fatal(err)
	}
	// skopeo 1.9 finds images in an OCI layout by name only when they are OCI manifests.
	img = mutate.ConfigMediaType(mutate.MediaType(img, types.OCIManifestSchema1), types.OCIConfigJSON)
	src := filepath.Join(t.TempDir(), "src")
	lp, err := layout.Write(src, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := lp.AppendImage(img, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": "img"})); err != nil {
		t.Fatal(err)
	}
	return &skopeo{t: t, bin: bin, host: in.Host, home: t.TempDir(), source: src}
}

func (s *skopeo) run(args ...string) (string, error) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, s.bin, append([]string{"--insecure-policy"}, args...)...)
	cmd.Env = append(os.Environ(), "REGISTRY_AUTH_FILE="+filepath.Join(s.home, "auth.json"), "HOME="+s.home, "XDG_RUNTIME_DIR="+s.home)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func creds(user, pass string) string { return user + ":" + pass }

// push copies the fixture image to ns/repo:tag.
func (s *skopeo) push(cred, ref string) (string, error) {
	return s.run("copy", "--retry-times", "0", "--dest-tls-verify=false", "--dest-creds", cred, "oci:"+s.source+":img", "docker://"+s.host+"/"+ref)
}

// pull copies ns/repo:tag out of the registry ("" cred = anonymous).
func (s *skopeo) pull(cred, ref string) (string, error) {
	auth := []string{"--src-no-creds"}
	if cred != "" {
		auth = []string{"--src-creds", cred}
	}
	dst := filepath.Join(s.t.TempDir(), "out")
	args := append([]string{"copy", "--retry-times", "0", "--src-tls-verify=false"}, auth...)
	return s.run(append(args, "docker://"+s.host+"/"+ref, "oci:"+dst+":x")...)
}

// delete deletes the manifest ns/repo:tag points at.
func (s *skopeo) delete(cred, ref string) (string, error) {
	return s.run("delete", "--tls-verify=false", "--creds", cred, "docker://"+s.host+"/"+ref)
}

func (s *skopeo) mustPush(cred, ref string) {
	s.t.Helper()
	if out, err := s.push(cred, ref); err != nil {
		s.t.Fatalf("push %s as %s: %v\n%s", ref, strings.SplitN(cred, ":", 2)[0], err, out)
	}
}

func (s *skopeo) mustPull(cred, ref string) {
	s.t.Helper()
	if out, err := s.pull(cred, ref); err != nil {
		s.t.Fatalf("pull %s as %s: %v\n%s", ref, strings.SplitN(cred, ":", 2)[0], err, out)
	}
}

// denied asserts a registry operation failed for lack of rights (not for some other reason).
func denied(t *testing.T, what string, out string, err error) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: allowed, want denied\n%s", what, out)
	}
	low := strings.ToLower(out)
	if !strings.Contains(low, "denied") && !strings.Contains(low, "unauthorized") && !strings.Contains(low, "forbidden") &&
		!strings.Contains(low, "authentication required") {
		t.Fatalf("%s failed, but not as denied:\n%s", what, out)
	}
}

// expect asserts an API answer's status (and error code when want ≥ 400).
func expect(t *testing.T, what string, r *apptest.Response, status int, code ...string) {
	t.Helper()
	if r.Status != status || (len(code) > 0 && r.Code() != code[0]) {
		t.Fatalf("%s: got %d %s, want %d %v", what, r.Status, r.Body, status, code)
	}
}

// newUser creates a RAM user with a password and attaches the given custom documents (each saved as a
// policy named after the user) and system policies.
func newUser(t *testing.T, in *apptest.Instance, name string, docs []string, system ...string) string {
	t.Helper()
	pass := name + "-password"
	expect(t, "create "+name, in.Admin(t, "POST", "/api/v1/users", map[string]any{"name": name, "password": pass}), 201)
	for i, d := range docs {
		pn := name + "-" + string(rune('a'+i))
		expect(t, "create policy "+pn, in.Admin(t, "POST", "/api/v1/policies", map[string]any{"name": pn, "document": rawJSON(d)}), 201)
		system = append(system, pn)
	}
	for _, pn := range system {
		expect(t, "attach "+pn, in.Admin(t, "PUT", "/api/v1/users/"+name+"/policies/"+pn, nil), 200)
	}
	return pass
}

type rawJSON string

func (r rawJSON) MarshalJSON() ([]byte, error) { return []byte(r), nil }

// seed creates namespaces with repositories, and pushes an image to each as the administrator.
func seed(t *testing.T, in *apptest.Instance, sk *skopeo, repos ...string) {
	t.Helper()
	admin := creds("admin", apptest.AdminPassword)
	made := map[string]bool{}
	for _, r := range repos {
		ns, _, _ := strings.Cut(r, "/")
		if !made[ns] {
			expect(t, "namespace "+ns, in.Admin(t, "POST", "/api/v1/namespaces", map[string]any{"name": ns}), 201)
			made[ns] = true
		}
		sk.mustPush(admin, r+":v1")
	}
}

// TestWorkedCase1PullOneNamespace: SPEC §9 case 1 through the REST API and skopeo.
func TestWorkedCase1PullOneNamespace(t *testing.T) {
	in := apptest.Start(t, apptest.Options{Region: "cn-hangzhou", NamespaceLimit: -1})
	sk := newSkopeo(t, in)
	seed(t, in, sk, "juzhong/nginx", "juzhong/redis", "other/app")
	pass := newUser(t, in, "reader", []string{`{"Version":"1","Statement":[{"Effect":"Allow",
		"Action":["cr:Get*","cr:List*","cr:PullRepository"],"Resource":["acs:cr:*:*:repository/juzhong/*"]}]}`})
	u := creds("reader", pass)
	call := func(method, path string, body any) *apptest.Response {
		return in.Call(t, "reader", pass, method, path, body)
	}

	// Pulls every repository of juzhong and reads them by API.
	sk.mustPull(u, "juzhong/nginx:v1")
	sk.mustPull(u, "juzhong/redis:v1")
	for _, p := range []string{"/api/v1/repositories/juzhong/nginx", "/api/v1/repositories/juzhong/redis/tags",
		"/api/v1/repositories/juzhong/nginx/tags/v1", "/api/v1/repositories/juzhong/nginx/tags/v1/manifest",
		"/api/v1/repositories/juzhong/nginx/tags/v1/layers"} {
		expect(t, "GET "+p, call("GET", p, nil), 200)
	}
	// Denied pushes, deletes and changes, even inside juzhong.
	out, err := sk.push(u, "juzhong/nginx:v2")
	denied(t, "push juzhong/nginx", out, err)
	out, err = sk.delete(u, "juzhong/nginx:v1")
	denied(t, "delete juzhong/nginx:v1", out, err)
	expect(t, "REST delete tag", call("DELETE", "/api/v1/repositories/juzhong/nginx/tags/v1", nil), 403, "FORBIDDEN")
	expect(t, "REST patch repo", call("PATCH", "/api/v1/repositories/juzhong/nginx", map[string]any{"summary": "x"}), 403, "FORBIDDEN")
	// Other namespaces are denied.
	out, err = sk.pull(u, "other/app:v1")
	denied(t, "pull other/app", out, err)
	expect(t, "GET other repo", call("GET", "/api/v1/repositories/other/app", nil), 403, "FORBIDDEN")
	expect(t, "GET other tags", call("GET", "/api/v1/repositories/other/app/tags", nil), 403, "FORBIDDEN")
	// Listing needs cr:ListNamespace / cr:ListRepository on "*".
	expect(t, "list namespaces", call("GET", "/api/v1/namespaces", nil), 403, "FORBIDDEN")
	expect(t, "list repositories", call("GET", "/api/v1/repositories", nil), 403, "FORBIDDEN")
	expect(t, "list juzhong repositories", call("GET", "/api/v1/namespaces/juzhong/repositories", nil), 403, "FORBIDDEN")
	expect(t, "list policy", in.Admin(t, "POST", "/api/v1/policies", map[string]any{"name": "list-all", "document": map[string]any{
		"Version": "1", "Statement": []any{map[string]any{"Effect": "Allow", "Action": []string{"cr:ListNamespace", "cr:ListRepository"}, "Resource": "*"}}}}), 201)
	expect(t, "attach list-all", in.Admin(t, "PUT", "/api/v1/users/reader/policies/list-all", nil), 200)
	expect(t, "list namespaces", call("GET", "/api/v1/namespaces", nil), 200)
	expect(t, "list repositories", call("GET", "/api/v1/repositories", nil), 200)
	expect(t, "list juzhong repositories", call("GET", "/api/v1/namespaces/juzhong/repositories", nil), 200)
	// Listing does not open other namespaces' contents.
	expect(t, "GET other repo", call("GET", "/api/v1/repositories/other/app", nil), 403, "FORBIDDEN")
}

const case2Policy = `{"Version":"1","Statement":[
	{"Effect":"Allow","Action":"cr:*","Resource":"acs:cr:cn-hangzhou:*:repository/juzhong/nginx"},
	{"Effect":"Allow","Action":["cr:Get*","cr:List*"],"Resource":"acs:cr:*:*:repository/juzhong"}]}`

// TestWorkedCase2OneRepositoryOneRegion: SPEC §9 case 2 on an instance in cn-hangzhou, and the same user and
// policy on an instance in another region.
func TestWorkedCase2OneRepositoryOneRegion(t *testing.T) {
	in := apptest.Start(t, apptest.Options{Region: "cn-hangzhou", NamespaceLimit: -1})
	sk := newSkopeo(t, in)
	seed(t, in, sk, "juzhong/nginx", "juzhong/redis")
	pass := newUser(t, in, "nginx-ops", []string{case2Policy})
	u := creds("nginx-ops", pass)
	call := func(method, path string, body any) *apptest.Response {
		return in.Call(t, "nginx-ops", pass, method, path, body)
	}

	// Full rights on juzhong/nginx: push, pull, delete tags (registry and REST), change it.
	sk.mustPush(u, "juzhong/nginx:v2")
	sk.mustPush(u, "juzhong/nginx:v3")
	sk.mustPull(u, "juzhong/nginx:v2")
	// v2 and v3 are one image: delete the tag v3 first, then the manifest (and so v2) by digest.
	expect(t, "REST delete tag", call("DELETE", "/api/v1/repositories/juzhong/nginx/tags/v3", nil), 204)
	if out, err := sk.delete(u, "juzhong/nginx:v2"); err != nil {
		t.Fatalf("skopeo delete juzhong/nginx:v2: %v\n%s", err, out)
	}
	expect(t, "REST patch repo", call("PATCH", "/api/v1/repositories/juzhong/nginx", map[string]any{"summary": "ops"}), 200)
	expect(t, "REST tags", call("GET", "/api/v1/repositories/juzhong/nginx/tags", nil), 200)
	expect(t, "get namespace juzhong", call("GET", "/api/v1/namespaces/juzhong", nil), 200)
	// Nothing on its siblings.
	out, err := sk.push(u, "juzhong/redis:v2")
	denied(t, "push juzhong/redis", out, err)
	out, err = sk.pull(u, "juzhong/redis:v1")
	denied(t, "pull juzhong/redis", out, err)
	out, err = sk.delete(u, "juzhong/redis:v1")
	denied(t, "delete juzhong/redis:v1", out, err)
	expect(t, "REST delete sibling tag", call("DELETE", "/api/v1/repositories/juzhong/redis/tags/v1", nil), 403, "FORBIDDEN")
	expect(t, "REST get sibling", call("GET", "/api/v1/repositories/juzhong/redis", nil), 403, "FORBIDDEN")
	expect(t, "REST delete namespace", call("DELETE", "/api/v1/namespaces/juzhong", nil), 403, "FORBIDDEN")
	expect(t, "REST create repository", call("POST", "/api/v1/namespaces/juzhong/repositories", map[string]any{"name": "new"}), 403, "FORBIDDEN")

	// The same user and policy on an instance in another region: pushes and deletes are denied.
	sh := apptest.Start(t, apptest.Options{Region: "cn-shanghai", NamespaceLimit: -1})
	shk := newSkopeo(t, sh)
	seed(t, sh, shk, "juzhong/nginx")
	pass = newUser(t, sh, "nginx-ops", []string{case2Policy})
	u = creds("nginx-ops", pass)
	out, err = shk.push(u, "juzhong/nginx:v2")
	denied(t, "push juzhong/nginx in cn-shanghai", out, err)
	out, err = shk.delete(u, "juzhong/nginx:v1")
	denied(t, "delete juzhong/nginx:v1 in cn-shanghai", out, err)
	expect(t, "REST delete tag in cn-shanghai", sh.Call(t, "nginx-ops", pass, "DELETE", "/api/v1/repositories/juzhong/nginx/tags/v1", nil), 403, "FORBIDDEN")
	// Reading the namespace is allowed in every region ("acs:cr:*:…").
	expect(t, "get namespace in cn-shanghai", sh.Call(t, "nginx-ops", pass, "GET", "/api/v1/namespaces/juzhong", nil), 200)
}

// TestWorkedCase3WholeNamespace: SPEC §9 case 3.
func TestWorkedCase3WholeNamespace(t *testing.T) {
	in := apptest.Start(t, apptest.Options{Region: "cn-hangzhou", NamespaceLimit: -1})
	sk := newSkopeo(t, in)
	seed(t, in, sk, "juzhong/nginx", "other/app")
	pass := newUser(t, in, "ns-owner", []string{`{"Version":"1","Statement":[{"Effect":"Allow","Action":"cr:*",
		"Resource":["acs:cr:*:*:repository/juzhong","acs:cr:*:*:repository/juzhong/*"]}]}`})
	u := creds("ns-owner", pass)
	call := func(method, path string, body any) *apptest.Response {
		return in.Call(t, "ns-owner", pass, method, path, body)
	}

	// Everything inside juzhong.
	expect(t, "get namespace", call("GET", "/api/v1/namespaces/juzhong", nil), 200)
	expect(t, "patch namespace", call("PATCH", "/api/v1/namespaces/juzhong", map[string]any{"default_visibility": "PRIVATE"}), 200)
	expect(t, "create repository", call("POST", "/api/v1/namespaces/juzhong/repositories", map[string]any{"name": "api"}), 201)
	sk.mustPush(u, "juzhong/api:v1")
	sk.mustPush(u, "juzhong/nginx:v2")
	sk.mustPush(u, "juzhong/pushed:v1") // auto-created by the push
	sk.mustPull(u, "juzhong/nginx:v1")
	if out, err := sk.delete(u, "juzhong/nginx:v2"); err != nil {
		t.Fatalf("delete juzhong/nginx:v2: %v\n%s", err, out)
	}
	expect(t, "patch repository", call("PATCH", "/api/v1/repositories/juzhong/api", map[string]any{"visibility": "PUBLIC"}), 200)
	expect(t, "delete tag", call("DELETE", "/api/v1/repositories/juzhong/api/tags/v1", nil), 204)
	expect(t, "delete repository", call("DELETE", "/api/v1/repositories/juzhong/pushed", nil), 204)
	// Nothing outside.
	out, err := sk.pull(u, "other/app:v1")
	denied(t, "pull other/app", out, err)
	out, err = sk.push(u, "other/app:v2")
	denied(t, "push other/app", out, err)
	expect(t, "get other namespace", call("GET", "/api/v1/namespaces/other", nil), 403, "FORBIDDEN")
	expect(t, "delete other namespace", call("DELETE", "/api/v1/namespaces/other?force=true", nil), 403, "FORBIDDEN")
	expect(t, "get other repository", call("GET", "/api/v1/repositories/other/app", nil), 403, "FORBIDDEN")
	expect(t, "create namespace", call("POST", "/api/v1/namespaces", map[string]any{"name": "mine"}), 403, "FORBIDDEN")
	expect(t, "list namespaces", call("GET", "/api/v1/namespaces", nil), 403, "FORBIDDEN")
	expect(t, "manage users", call("GET", "/api/v1/users", nil), 403, "FORBIDDEN")
	// Deleting the namespace itself is inside it.
	expect(t, "delete namespace", call("DELETE", "/api/v1/namespaces/juzhong?force=true", nil), 204)
}

// TestDenyOverridesFullAccess: an explicit Deny statement beats AliyunContainerRegistryFullAccess, on the REST
// API and on the registry; what it does not name stays allowed.
func TestDenyOverridesFullAccess(t *testing.T) {
	in := apptest.Start(t, apptest.Options{Region: "cn-hangzhou", NamespaceLimit: -1})
	sk := newSkopeo(t, in)
	seed(t, in, sk, "juzhong/nginx", "other/app")
	pass := newUser(t, in, "almost-all", []string{`{"Version":"1","Statement":[{"Effect":"Deny",
		"Action":["cr:PushRepository","cr:Delete*"],"Resource":"acs:cr:*:*:repository/juzhong/*"}]}`},
		"AliyunContainerRegistryFullAccess")
	u := creds("almost-all", pass)
	call := func(method, path string, body any) *apptest.Response {
		return in.Call(t, "almost-all", pass, method, path, body)
	}

	sk.mustPull(u, "juzhong/nginx:v1")
	out, err := sk.push(u, "juzhong/nginx:v2")
	denied(t, "push juzhong/nginx", out, err)
	out, err = sk.delete(u, "juzhong/nginx:v1")
	denied(t, "delete juzhong/nginx:v1", out, err)
	expect(t, "REST delete tag", call("DELETE", "/api/v1/repositories/juzhong/nginx/tags/v1", nil), 403, "FORBIDDEN")
	expect(t, "REST delete repository", call("DELETE", "/api/v1/repositories/juzhong/nginx", nil), 403, "FORBIDDEN")
	expect(t, "REST update repository", call("PATCH", "/api/v1/repositories/juzhong/nginx", map[string]any{"summary": "s"}), 200)
	sk.mustPush(u, "other/app:v2")
	expect(t, "REST delete other tag", call("DELETE", "/api/v1/repositories/other/app/tags/v2", nil), 204)
	// FullAccess is cr:* only: user management stays out of reach.
	expect(t, "list users", call("GET", "/api/v1/users", nil), 403, "FORBIDDEN")
}

// TestPolicyManagement: system policies are listed and read-only, documents are validated with precise
// messages, and a changed or deleted policy takes effect on the next request.
func TestPolicyManagement(t *testing.T) {
	in := apptest.Start(t, apptest.Options{Region: "cn-hangzhou"})
	r := in.Admin(t, "GET", "/api/v1/policies", nil)
	expect(t, "list", r, 200)
	items := r.Items()
	if r.JSON["total"] != float64(3) || len(items) != 3 || items[0]["name"] != "AliyunContainerRegistryFullAccess" ||
		items[0]["system"] != true || items[0]["document"] == nil {
		t.Fatalf("system policies: %s", r.Body)
	}
	r = in.Admin(t, "GET", "/api/v1/policies/AliyunContainerRegistryReadOnlyAccess", nil)
	if doc, _ := r.JSON["document"].(map[string]any); r.Status != 200 || r.JSON["system"] != true || doc["Version"] != "1" {
		t.Fatalf("get system policy: %s", r.Body)
	}
	good := map[string]any{"Version": "1", "Statement": []any{map[string]any{"Effect": "Allow", "Action": "cr:PullRepository", "Resource": "*"}}}
	expect(t, "put system", in.Admin(t, "PUT", "/api/v1/policies/AdministratorAccess", map[string]any{"document": good}), 403, "SYSTEM_POLICY_READ_ONLY")
	expect(t, "delete system", in.Admin(t, "DELETE", "/api/v1/policies/AliyunContainerRegistryFullAccess", nil), 403, "SYSTEM_POLICY_READ_ONLY")
	expect(t, "create system name", in.Admin(t, "POST", "/api/v1/policies", map[string]any{"name": "AdministratorAccess", "document": good}), 409, "SYSTEM_POLICY_READ_ONLY")
	expect(t, "create look-alike name", in.Admin(t, "POST", "/api/v1/policies", map[string]any{"name": "administratoraccess", "document": good}), 400, "INVALID_NAME")

	for _, c := range []struct{ name, doc, msg string }{
		{"unknown effect", `{"Version":"1","Statement":[{"Effect":"allow","Action":"cr:PullRepository","Resource":"*"}]}`,
			`Statement[0].Effect: unknown effect "allow"`},
		{"action not cr", `{"Version":"1","Statement":[{"Effect":"Allow","Action":"ecs:StartInstance","Resource":"*"}]}`,
			`Statement[0].Action: "ecs:StartInstance": an action is "*" or "cr:<Action>"`},
		{"ram action", `{"Version":"1","Statement":[{"Effect":"Allow","Action":["cr:Get*","ram:CreateUser"],"Resource":"*"}]}`,
			`Statement[0].Action[1]: "ram:CreateUser": custom policies cannot grant ram: actions`},
		{"typo action", `{"Version":"1","Statement":[{"Effect":"Allow","Action":"cr:PullRepositry","Resource":"*"}]}`,
			`"cr:PullRepositry" is not a Berth action`},
		{"malformed resource", `{"Version":"1","Statement":[{"Effect":"Allow","Action":"cr:*","Resource":"acs:cr:*:repository/juzhong"}]}`,
			`Statement[0].Resource: "acs:cr:*:repository/juzhong": a resource is "*"`},
		{"upper-case namespace", `{"Version":"1","Statement":[{"Effect":"Allow","Action":"cr:*","Resource":"acs:cr:*:*:repository/JuZhong"}]}`,
			`namespace names are lower case`},
		{"version", `{"Version":"2","Statement":[{"Effect":"Allow","Action":"cr:*","Resource":"*"}]}`, `Version: unknown version "2"`},
		{"missing document", ``, `document is missing`},
	} {
		body := map[string]any{"name": "bad"}
		if c.doc != "" {
			body["document"] = rawJSON(c.doc)
		}
		r := in.Admin(t, "POST", "/api/v1/policies", body)
		msg, _ := r.JSON["message"].(string)
		if r.Status != 400 || r.Code() != "INVALID_POLICY" || !strings.Contains(msg, c.msg) {
			t.Errorf("%s: got %d %s, want 400 INVALID_POLICY containing %q", c.name, r.Status, r.Body, c.msg)
		}
	}

	// A document given as a JSON string (Alibaba Cloud's form) is accepted too.
	expect(t, "create", in.Admin(t, "POST", "/api/v1/policies", map[string]any{"name": "pull-juzhong", "description": "pull juzhong",
		"document": `{"Version":"1","Statement":[{"Effect":"Allow","Action":["cr:GetRepository"],"Resource":"acs:cr:*:*:repository/juzhong/*"}]}`}), 201)
	expect(t, "duplicate", in.Admin(t, "POST", "/api/v1/policies", map[string]any{"name": "pull-juzhong", "document": good}), 409, "ALREADY_EXISTS")
	r = in.Admin(t, "GET", "/api/v1/policies?page=2&page_size=2", nil)
	if items := r.Items(); r.JSON["total"] != float64(4) || len(items) != 2 || items[0]["name"] != "AdministratorAccess" ||
		items[1]["name"] != "pull-juzhong" || items[1]["system"] != false || items[1]["description"] != "pull juzhong" {
		t.Fatalf("page 2: %s", r.Body)
	}

	expect(t, "namespace", in.Admin(t, "POST", "/api/v1/namespaces", map[string]any{"name": "juzhong"}), 201)
	expect(t, "repository", in.Admin(t, "POST", "/api/v1/namespaces/juzhong/repositories", map[string]any{"name": "nginx"}), 201)
	pass := newUser(t, in, "dev", nil, "pull-juzhong")
	get := func() int { return in.Call(t, "dev", pass, "GET", "/api/v1/repositories/juzhong/nginx", nil).Status }
	if s := get(); s != 200 {
		t.Fatalf("attached policy: %d", s)
	}
	// A change of the document takes effect on the next request.
	expect(t, "update", in.Admin(t, "PUT", "/api/v1/policies/pull-juzhong", map[string]any{"document": map[string]any{"Version": "1",
		"Statement": []any{map[string]any{"Effect": "Allow", "Action": "cr:GetRepository", "Resource": "acs:cr:*:*:repository/other/*"}}}}), 200)
	if s := get(); s != 403 {
		t.Fatalf("after narrowing the policy: %d", s)
	}
	r = in.Admin(t, "GET", "/api/v1/policies/pull-juzhong", nil)
	if r.JSON["description"] != "pull juzhong" || !strings.Contains(string(r.Body), "repository/other/*") {
		t.Fatalf("updated policy keeps its description and shows its document: %s", r.Body)
	}
	expect(t, "update invalid", in.Admin(t, "PUT", "/api/v1/policies/pull-juzhong", map[string]any{"document": rawJSON(`{"Version":"1"}`)}), 400, "INVALID_POLICY")
	expect(t, "update missing", in.Admin(t, "PUT", "/api/v1/policies/nope", map[string]any{"document": good}), 404, "NOT_FOUND")
	expect(t, "widen", in.Admin(t, "PUT", "/api/v1/policies/pull-juzhong", map[string]any{"document": good}), 200)
	expect(t, "dev lacks GetRepository", in.Call(t, "dev", pass, "GET", "/api/v1/repositories/juzhong/nginx", nil), 403)
	expect(t, "attach read-only", in.Admin(t, "PUT", "/api/v1/users/dev/policies/AliyunContainerRegistryReadOnlyAccess", nil), 200)
	if s := get(); s != 200 {
		t.Fatalf("after attaching read-only: %d", s)
	}
	expect(t, "detach read-only", in.Admin(t, "DELETE", "/api/v1/users/dev/policies/AliyunContainerRegistryReadOnlyAccess", nil), 204)
	if s := get(); s != 403 {
		t.Fatalf("after detaching: %d", s)
	}
	// Deleting a policy detaches it from every user.
	expect(t, "delete", in.Admin(t, "DELETE", "/api/v1/policies/pull-juzhong", nil), 204)
	expect(t, "delete again", in.Admin(t, "DELETE", "/api/v1/policies/pull-juzhong", nil), 404, "NOT_FOUND")
	r = in.Admin(t, "GET", "/api/v1/users/dev", nil)
	if ps, _ := r.JSON["policies"].([]any); len(ps) != 0 {
		t.Fatalf("deleted policy still attached: %s", r.Body)
	}
}
