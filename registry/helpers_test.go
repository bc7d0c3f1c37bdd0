package registry_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/registry"
	"github.com/berth-dev/berth/registry/registrytest"
)

type testServer struct {
	t    *testing.T
	reg  *registry.Registry
	ts   *httptest.Server
	url  string // http://127.0.0.1:port
	host string // 127.0.0.1:port
	root string
	cfg  registry.Config
}

// startServer runs a registry on 127.0.0.1 with a fresh root.
func startServer(t *testing.T, authz registry.Authorizer, hooks registry.Hooks, opts ...func(*registry.Config)) *testServer {
	t.Helper()
	return startServerAt(t, t.TempDir(), authz, hooks, opts...)
}

func startServerAt(t *testing.T, root string, authz registry.Authorizer, hooks registry.Hooks, opts ...func(*registry.Config)) *testServer {
	t.Helper()
	ts := httptest.NewUnstartedServer(nil)
	u := "http://" + ts.Listener.Addr().String()
	cfg := registry.Config{RootDir: root, PublicURL: u}
	for _, o := range opts {
		o(&cfg)
	}
	reg, err := registry.New(cfg, authz, hooks)
	if err != nil {
		t.Fatal(err)
	}
	ts.Config.Handler = reg
	ts.Start()
	s := &testServer{t: t, reg: reg, ts: ts, url: u, host: ts.Listener.Addr().String(), root: root, cfg: cfg}
	t.Cleanup(s.stop)
	return s
}

func (s *testServer) stop() {
	if s.ts != nil {
		s.ts.Close()
		s.reg.Close()
		s.ts = nil
	}
}

// defaultAuthz: alice has everything on ns/*, bob may only pull ns/*,
// anonymous may pull public/*.
func defaultAuthz() *registrytest.Authorizer {
	return &registrytest.Authorizer{
		Users: map[string]registrytest.User{
			"alice": {Password: "alice-pw", Rules: []registrytest.Rule{{Pattern: "ns/*", Actions: []string{"*"}}, {Pattern: "public/*", Actions: []string{"*"}}, {Pattern: "other/*", Actions: []string{"*"}}}, Catalog: true},
			"bob":   {Password: "bob-pw", Rules: []registrytest.Rule{{Pattern: "ns/*", Actions: []string{"pull"}}, {Pattern: "bobs/*", Actions: []string{"*"}}}},
		},
		Anonymous: []registrytest.Rule{{Pattern: "public/*", Actions: []string{"pull"}}},
	}
}

// token fetches a token from /token.
func (s *testServer) token(user, pass string, scopes ...string) string {
	s.t.Helper()
	q := url.Values{"service": {s.host}}
	for _, sc := range scopes {
		q.Add("scope", sc)
	}
	req, _ := http.NewRequest(http.MethodGet, s.url+"/token?"+q.Encode(), nil)
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		s.t.Fatalf("token: %d %s", resp.StatusCode, b)
	}
	var tr struct {
		Token string `json:"token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tr); err != nil {
		s.t.Fatal(err)
	}
	return tr.Token
}

type reqOpt func(*http.Request)

func withHeader(k, v string) reqOpt { return func(r *http.Request) { r.Header.Set(k, v) } }
func withBearer(tok string) reqOpt  { return withHeader("Authorization", "Bearer "+tok) }
func withBasic(u, p string) reqOpt  { return func(r *http.Request) { r.SetBasicAuth(u, p) } }

// do sends a request; path may carry a query. The body is read into the
// returned bytes.
func (s *testServer) do(method, path string, body []byte, opts ...reqOpt) (*http.Response, []byte) {
	s.t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, s.url+path, rd)
	if err != nil {
		s.t.Fatal(err)
	}
	for _, o := range opts {
		o(req)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

// errCode extracts the first OCI error code of a response body.
func errCode(b []byte) string {
	var e struct {
		Errors []struct {
			Code string `json:"code"`
		} `json:"errors"`
	}
	if json.Unmarshal(b, &e) != nil || len(e.Errors) == 0 {
		return ""
	}
	return e.Errors[0].Code
}

func expect(t *testing.T, resp *http.Response, body []byte, status int, code string) {
	t.Helper()
	if resp.StatusCode != status {
		t.Fatalf("%s %s: status %d, want %d; body %s", resp.Request.Method, resp.Request.URL.Path, resp.StatusCode, status, body)
	}
	if code != "" && errCode(body) != code {
		t.Fatalf("%s %s: code %q, want %q; body %s", resp.Request.Method, resp.Request.URL.Path, errCode(body), code, body)
	}
}

func sha256Digest(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

// snapshot records every file under the storage root (path -> content hash),
// leaving out the driver's temp dir and the signing key. skipUploads leaves out
// upload sessions.
func snapshot(t *testing.T, root string, skipUploads bool) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if d.IsDir() {
			if rel == ".tmp" || (skipUploads && rel == "uploads") {
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasSuffix(rel, ".pem") {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		out[rel] = hex.EncodeToString(sum[:8])
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func sameSnapshot(t *testing.T, what string, before, after map[string]string) {
	t.Helper()
	for k, v := range after {
		if before[k] != v {
			t.Errorf("%s: storage changed: %s added or modified", what, k)
		}
	}
	for k := range before {
		if _, ok := after[k]; !ok {
			t.Errorf("%s: storage changed: %s removed", what, k)
		}
	}
}

// pushBlob uploads b monolithically into name.
func (s *testServer) pushBlob(tok, name string, b []byte) string {
	s.t.Helper()
	dg := sha256Digest(b)
	resp, body := s.do("POST", "/v2/"+name+"/blobs/uploads/?digest="+dg, b, withBearer(tok))
	expect(s.t, resp, body, 201, "")
	return dg
}

// imageManifest builds an OCI image manifest over a config and layers.
func imageManifest(config []byte, layers ...[]byte) []byte {
	type desc struct {
		MediaType string `json:"mediaType"`
		Digest    string `json:"digest"`
		Size      int    `json:"size"`
	}
	m := struct {
		SchemaVersion int    `json:"schemaVersion"`
		MediaType     string `json:"mediaType"`
		Config        desc   `json:"config"`
		Layers        []desc `json:"layers"`
	}{2, "application/vnd.oci.image.manifest.v1+json", desc{"application/vnd.oci.image.config.v1+json", sha256Digest(config), len(config)}, []desc{}}
	for _, l := range layers {
		m.Layers = append(m.Layers, desc{"application/vnd.oci.image.layer.v1.tar+gzip", sha256Digest(l), len(l)})
	}
	b, _ := json.Marshal(m)
	return b
}

// pushImage pushes a small image and tags it.
func (s *testServer) pushImage(tok, name, tag string, seed string) (manifestDigest string, manifest []byte) {
	s.t.Helper()
	config := []byte(`{"architecture":"amd64","os":"linux","seed":"` + seed + `"}`)
	layer := []byte("layer-" + seed + "-" + time.Now().String())
	s.pushBlob(tok, name, config)
	s.pushBlob(tok, name, layer)
	m := imageManifest(config, layer)
	resp, body := s.do("PUT", "/v2/"+name+"/manifests/"+tag, m, withBearer(tok), withHeader("Content-Type", "application/vnd.oci.image.manifest.v1+json"))
	expect(s.t, resp, body, 201, "")
	return resp.Header.Get("Docker-Content-Digest"), m
}
