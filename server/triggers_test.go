package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	_ "time/tzdata" // the payload time zone test must not depend on the host's zoneinfo

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/berth-dev/berth/pipeline"
	"github.com/berth-dev/berth/server/app"
	"github.com/berth-dev/berth/server/app/apptest"
	"github.com/berth-dev/berth/webhooks/outbound"
)

// syncBuffer collects an instance's log lines so tests can look for leaked secrets.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// captureLogs sends every log line of the instance, debug included, to the test log and to the returned buffer.
func captureLogs(t *testing.T, cfg *app.Config) *syncBuffer {
	buf := &syncBuffer{}
	cfg.Logger = slog.New(slog.NewTextHandler(io.MultiWriter(buf, testLogWriter{t}), &slog.HandlerOptions{Level: slog.LevelDebug}))
	return buf
}

type testLogWriter struct{ t *testing.T }

func (w testLogWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// hit is one request a receiver got.
type hit struct {
	Path   string
	Header http.Header
	Body   []byte
	At     time.Time
}

// receiver is a trigger endpoint on loopback. /down always answers 503, /flaky answers 500 to its first two
// requests, /redirect redirects to a private address; every other path answers 200.
type receiver struct {
	*httptest.Server
	mu    sync.Mutex
	hits  []hit
	flaky int
	onHit func(hit)
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		h := hit{Path: req.URL.Path, Header: req.Header.Clone(), Body: body, At: time.Now()}
		r.mu.Lock()
		r.hits = append(r.hits, h)
		on := r.onHit
		flaky := req.URL.Path == "/flaky" && r.flaky < 2
		if flaky {
			r.flaky++
		}
		r.mu.Unlock()
		if on != nil {
			on(h)
		}
		switch {
		case req.URL.Path == "/down":
			http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
		case flaky:
			http.Error(w, "try again", http.StatusInternalServerError)
		case req.URL.Path == "/redirect":
			http.Redirect(w, req, "http://10.0.0.1/internal", http.StatusFound)
		default:
			fmt.Fprint(w, `{"ok":true}`)
		}
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *receiver) hitsOn(path string) []hit {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []hit
	for _, h := range r.hits {
		if h.Path == path {
			out = append(out, h)
		}
	}
	return out
}

func (r *receiver) total() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.hits)
}

// pushImage pushes a random image as ref ("ns/repo:tag") and returns its digest.
func pushImage(t testing.TB, in *apptest.Instance, ref string) string {
	t.Helper()
	img, err := random.Image(128, 1)
	if err != nil {
		t.Fatal(err)
	}
	r, err := name.ParseReference(in.Host+"/"+ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img, remote.WithAuth(&authn.Basic{Username: "admin", Password: apptest.AdminPassword})); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

func createTrigger(t testing.TB, in *apptest.Instance, repo string, body map[string]any) (id, secret string) {
	t.Helper()
	r := in.Admin(t, "POST", "/api/v1/repositories/"+repo+"/triggers", body)
	if r.Status != 201 {
		t.Fatalf("create trigger %v: %d %s", body, r.Status, r.Body)
	}
	id, _ = r.JSON["id"].(string)
	secret, _ = r.JSON["secret"].(string)
	return id, secret
}

// waitRecords polls a trigger's records until done accepts them (20 s at most).
func waitRecords(t testing.TB, in *apptest.Instance, repo, id string, done func([]map[string]any) bool) []map[string]any {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		r := in.Admin(t, "GET", "/api/v1/repositories/"+repo+"/triggers/"+id+"/records?page_size=100", nil)
		if r.Status != 200 {
			t.Fatalf("records: %d %s", r.Status, r.Body)
		}
		items := r.Items()
		if done(items) {
			return items
		}
		if time.Now().After(deadline) {
			t.Fatalf("records of trigger %s never settled: %s", id, r.Body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// byTag indexes records by tag, failing on two records of one tag (one record per delivery).
func byTag(t testing.TB, recs []map[string]any) map[string]map[string]any {
	t.Helper()
	out := map[string]map[string]any{}
	for _, r := range recs {
		tag, _ := r["tag"].(string)
		if out[tag] != nil {
			t.Fatalf("two records for tag %q: %v", tag, recs)
		}
		out[tag] = r
	}
	return out
}

func settled(n int) func([]map[string]any) bool {
	return func(recs []map[string]any) bool {
		if len(recs) < n {
			return false
		}
		for _, r := range recs {
			if reason, _ := r["reason"].(string); strings.Contains(reason, "will retry") {
				return false
			}
		}
		return true
	}
}

func keys(m map[string]any) []string {
	var k []string
	for key := range m {
		k = append(k, key)
	}
	slices.Sort(k)
	return k
}

var payloadTime = regexp.MustCompile(`^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$`)

// checkPayload asserts the exact SPEC §8 field set, formats and values of a delivery, and its signature.
func checkPayload(t *testing.T, in *apptest.Instance, h hit, secret, repo, tag, digest string, loc *time.Location) {
	t.Helper()
	if ct := h.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	if !outbound.VerifySignature([]byte(secret), h.Body, h.Header.Get("X-Berth-Signature")) {
		t.Errorf("X-Berth-Signature %q does not verify with the trigger's secret", h.Header.Get("X-Berth-Signature"))
	}
	var p map[string]map[string]any
	if err := json.Unmarshal(h.Body, &p); err != nil {
		t.Fatalf("payload is not a JSON object of objects: %v: %s", err, h.Body)
	}
	if len(p) != 2 || p["push_data"] == nil || p["repository"] == nil {
		t.Fatalf("top-level fields: %s", h.Body)
	}
	if got := keys(p["push_data"]); !slices.Equal(got, []string{"digest", "pushed_at", "tag"}) {
		t.Errorf("push_data fields %v", got)
	}
	want := []string{"date_created", "name", "namespace", "region", "repo_authentication_type", "repo_full_name", "repo_origin_type", "repo_type"}
	if got := keys(p["repository"]); !slices.Equal(got, want) {
		t.Errorf("repository fields %v", got)
	}
	ns, rn, _ := strings.Cut(repo, "/")
	r := in.Admin(t, "GET", "/api/v1/repositories/"+repo, nil)
	created, _ := time.Parse(time.RFC3339Nano, r.JSON["created_at"].(string))
	vis := r.JSON["visibility"]
	tr := in.Admin(t, "GET", "/api/v1/repositories/"+repo+"/tags/"+tag, nil)
	pushed, _ := time.Parse(time.RFC3339Nano, tr.JSON["pushed_at"].(string))
	wantPush := map[string]any{"digest": digest, "pushed_at": pushed.In(loc).Format("2006-01-02 15:04:05"), "tag": tag}
	for k, v := range wantPush {
		if p["push_data"][k] != v {
			t.Errorf("push_data.%s = %v, want %v", k, p["push_data"][k], v)
		}
	}
	wantRepo := map[string]any{"date_created": created.In(loc).Format("2006-01-02 15:04:05"), "name": rn, "namespace": ns,
		"region": "cn-test", "repo_authentication_type": "NO_CERTIFIED", "repo_full_name": repo,
		"repo_origin_type": "NO_CERTIFIED", "repo_type": vis}
	for k, v := range wantRepo {
		if p["repository"][k] != v {
			t.Errorf("repository.%s = %v, want %v", k, p["repository"][k], v)
		}
	}
	for _, s := range []any{p["push_data"]["pushed_at"], p["repository"]["date_created"]} {
		if str, _ := s.(string); !payloadTime.MatchString(str) {
			t.Errorf("time %q is not YYYY-MM-DD HH:MM:SS", s)
		}
	}
}

// deliveryInstance allows loopback receivers and retries fast.
func deliveryInstance(t *testing.T) (*apptest.Instance, *syncBuffer) {
	var logs *syncBuffer
	in := apptest.Start(t, apptest.Options{Region: "cn-test", Configure: func(c *app.Config) {
		c.TriggerAllow = []string{"127.0.0.0/8"}
		c.TriggerRetryBase = 100 * time.Millisecond
		c.TimeZone = "Asia/Shanghai"
		logs = captureLogs(t, c)
	}})
	if r := in.Admin(t, "POST", "/api/v1/namespaces", map[string]any{"name": "team"}); r.Status != 201 {
		t.Fatalf("namespace: %s", r.Body)
	}
	return in, logs
}

func createRepo(t testing.TB, in *apptest.Instance, ns, repo, visibility string) {
	t.Helper()
	if r := in.Admin(t, "POST", "/api/v1/namespaces/"+ns+"/repositories", map[string]any{"name": repo, "visibility": visibility}); r.Status != 201 {
		t.Fatalf("repository: %s", r.Body)
	}
}

// TestTriggerFilters pushes four tags through the registry to a repository with an EXPRESSION, a TAGS, an
// ALL and a disabled trigger, and checks who was called with what, and the records of the rest.
func TestTriggerFilters(t *testing.T) {
	in, logs := deliveryInstance(t)
	rcv := newReceiver(t)
	createRepo(t, in, "team", "app", "PUBLIC")
	exprID, exprSecret := createTrigger(t, in, "team/app", map[string]any{"name": "releases", "url": rcv.URL + "/expr",
		"filter_type": "EXPRESSION", "expression": "release-v.*"})
	tagsID, tagsSecret := createTrigger(t, in, "team/app", map[string]any{"name": "listed", "url": rcv.URL + "/tags",
		"filter_type": "TAGS", "tags": []string{"v1", "v2"}})
	allID, allSecret := createTrigger(t, in, "team/app", map[string]any{"name": "everything", "url": rcv.URL + "/all"})
	offID, _ := createTrigger(t, in, "team/app", map[string]any{"name": "off", "url": rcv.URL + "/off", "enabled": false})

	loc, _ := time.LoadLocation("Asia/Shanghai")
	pushed := []string{"release-v1", "latest", "v1", "v3"}
	digests := map[string]string{}
	for _, tag := range pushed {
		digests[tag] = pushImage(t, in, "team/app:"+tag)
	}

	cases := []struct {
		id, path, secret string
		fires            []string
	}{
		{exprID, "/expr", exprSecret, []string{"release-v1"}},
		{tagsID, "/tags", tagsSecret, []string{"v1"}},
		{allID, "/all", allSecret, pushed},
	}
	for _, c := range cases {
		recs := byTag(t, waitRecords(t, in, "team/app", c.id, settled(len(pushed))))
		for _, tag := range pushed {
			rec := recs[tag]
			if slices.Contains(c.fires, tag) {
				if rec["status"] != "TRIGGERED" || rec["attempts"] != float64(1) || rec["status_code"] != float64(200) ||
					rec["digest"] != digests[tag] || rec["response_excerpt"] != `{"ok":true}` {
					t.Errorf("%s: record of %s: %v", c.path, tag, rec)
				}
				var body map[string]any
				if err := json.Unmarshal([]byte(rec["request_body"].(string)), &body); err != nil || body["push_data"] == nil {
					t.Errorf("%s: request_body of %s is not the payload: %v", c.path, tag, rec["request_body"])
				}
			} else if rec["status"] != "NOT_TRIGGERED" || !strings.HasPrefix(rec["reason"].(string), "FILTER_NO_MATCH") ||
				!strings.Contains(rec["reason"].(string), fmt.Sprintf("%q", tag)) || rec["attempts"] != float64(0) {
				t.Errorf("%s: record of %s should be NOT_TRIGGERED with the reason: %v", c.path, tag, rec)
			}
		}
		hits := rcv.hitsOn(c.path)
		var got []string
		for _, h := range hits {
			var p outbound.Payload
			_ = json.Unmarshal(h.Body, &p)
			got = append(got, p.PushData.Tag)
			checkPayload(t, in, h, c.secret, "team/app", p.PushData.Tag, digests[p.PushData.Tag], loc)
		}
		slices.Sort(got)
		want := slices.Sorted(slices.Values(c.fires))
		if !slices.Equal(got, want) {
			t.Errorf("%s received %v, want %v", c.path, got, want)
		}
	}
	// A disabled trigger neither fires nor records.
	if recs := waitRecords(t, in, "team/app", offID, func([]map[string]any) bool { return true }); len(recs) != 0 || len(rcv.hitsOn("/off")) != 0 {
		t.Errorf("disabled trigger: records %v, hits %d", recs, len(rcv.hitsOn("/off")))
	}
	// Records are newest first and paginated.
	r := in.Admin(t, "GET", "/api/v1/repositories/team/app/triggers/"+allID+"/records?page_size=3", nil)
	if r.JSON["total"] != float64(4) || len(r.Items()) != 3 || r.Items()[0]["tag"] != "v3" || r.Items()[2]["tag"] != "latest" {
		t.Errorf("records page 1: %s", r.Body)
	}
	r = in.Admin(t, "GET", "/api/v1/repositories/team/app/triggers/"+allID+"/records?page=2&page_size=3", nil)
	if len(r.Items()) != 1 || r.Items()[0]["tag"] != "release-v1" {
		t.Errorf("records page 2: %s", r.Body)
	}
	wantFields := []string{"attempts", "digest", "id", "latency_ms", "reason", "request_body", "response_excerpt", "status", "status_code", "tag", "time"}
	if got := keys(r.Items()[0]); !slices.Equal(got, wantFields) {
		t.Errorf("record fields %v", got)
	}

	// A blocked version fires nothing; every enabled trigger records why.
	err := pipeline.FireTriggers(context.Background(), in.Store, in.Queue, pipeline.PushedVersion{Repository: "team/app",
		Tag: "release-v2", Digest: digests["v1"], PushedAt: time.Now(), Blocked: true, Reason: "2 HIGH vulnerabilities"})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{exprID, tagsID, allID} {
		recs := byTag(t, waitRecords(t, in, "team/app", id, settled(len(pushed)+1)))
		if rec := recs["release-v2"]; rec["status"] != "NOT_TRIGGERED" || rec["reason"] != "BLOCKED: 2 HIGH vulnerabilities" {
			t.Errorf("blocked record: %v", rec)
		}
	}
	time.Sleep(200 * time.Millisecond)
	if n := rcv.total(); n != 1+1+4 {
		t.Errorf("receiver got %d requests, want 6", n)
	}
	for _, s := range []string{exprSecret, tagsSecret, allSecret} {
		if strings.Contains(logs.String(), s) {
			t.Fatalf("a trigger secret is in the logs")
		}
	}
}

// TestTriggerRetries: a receiver failing twice gets one TRIGGERED record with attempts 3; one that never
// answers 2xx ends FAILED after the bounded 5 attempts; a redirect to a private address is not followed.
func TestTriggerRetries(t *testing.T) {
	in, _ := deliveryInstance(t)
	rcv := newReceiver(t)
	createRepo(t, in, "team", "retry", "PRIVATE")
	flakyID, flakySecret := createTrigger(t, in, "team/retry", map[string]any{"name": "flaky", "url": rcv.URL + "/flaky"})
	downID, _ := createTrigger(t, in, "team/retry", map[string]any{"name": "down", "url": rcv.URL + "/down"})
	redirID, _ := createTrigger(t, in, "team/retry", map[string]any{"name": "redirect", "url": rcv.URL + "/redirect"})
	digest := pushImage(t, in, "team/retry:v1")

	recs := waitRecords(t, in, "team/retry", flakyID, settled(1))
	if len(recs) != 1 || recs[0]["status"] != "TRIGGERED" || recs[0]["attempts"] != float64(3) || recs[0]["status_code"] != float64(200) ||
		recs[0]["digest"] != digest || recs[0]["reason"] != "" {
		t.Errorf("flaky: %v", recs)
	}
	hits := rcv.hitsOn("/flaky")
	if len(hits) != 3 {
		t.Errorf("flaky receiver got %d requests, want 3", len(hits))
	}
	loc, _ := time.LoadLocation("Asia/Shanghai")
	for _, h := range hits {
		checkPayload(t, in, h, flakySecret, "team/retry", "v1", digest, loc)
	}
	recs = waitRecords(t, in, "team/retry", downID, settled(1))
	if len(recs) != 1 || recs[0]["status"] != "FAILED" || recs[0]["attempts"] != float64(5) || recs[0]["status_code"] != float64(503) ||
		!strings.HasPrefix(recs[0]["reason"].(string), "gave up after 5 attempts") ||
		!strings.Contains(recs[0]["response_excerpt"].(string), "down for maintenance") {
		t.Errorf("down: %v", recs)
	}
	time.Sleep(300 * time.Millisecond)
	if n := len(rcv.hitsOn("/down")); n != 5 {
		t.Errorf("down receiver got %d requests, want 5", n)
	}

	recs = waitRecords(t, in, "team/retry", redirID, settled(1))
	if len(recs) != 1 || recs[0]["status"] != "FAILED" || recs[0]["status_code"] != float64(302) ||
		!strings.Contains(recs[0]["reason"].(string), "redirects are not followed") ||
		!strings.Contains(recs[0]["reason"].(string), "10.0.0.1") {
		t.Errorf("redirect: %v", recs)
	}
}

// TestTriggerSSRF: without an allowlist, deliveries to loopback, private and link-local addresses, by IP or by
// a name resolving to loopback, are refused before any connection, at once, with a record saying why.
func TestTriggerSSRF(t *testing.T) {
	in := apptest.Start(t, apptest.Options{Configure: func(c *app.Config) { c.TriggerRetryBase = 100 * time.Millisecond }})
	rcv := newReceiver(t)
	port := rcv.Listener.Addr().(interface{ String() string }).String()
	_, port, _ = strings.Cut(port, ":")
	in.Admin(t, "POST", "/api/v1/namespaces", map[string]any{"name": "team"})
	createRepo(t, in, "team", "app", "PRIVATE")
	cases := []struct{ url, why string }{
		{"http://127.0.0.1:" + port + "/hook", "127.0.0.1 is a loopback address"},
		{"http://10.1.2.3/hook", "10.1.2.3 is a private address"},
		{"http://169.254.169.254/latest/meta-data/", "169.254.169.254 is a link-local address"},
		{"http://[::1]:" + port + "/hook", "::1 is a loopback address"},
		{"http://localhost:" + port + "/hook", "localhost resolves to"},
	}
	ids := make([]string, len(cases))
	for i, c := range cases {
		ids[i], _ = createTrigger(t, in, "team/app", map[string]any{"name": fmt.Sprint("ssrf-", i), "url": c.url})
	}
	pushImage(t, in, "team/app:v1")
	for i, c := range cases {
		recs := waitRecords(t, in, "team/app", ids[i], settled(1))
		reason, _ := recs[0]["reason"].(string)
		if len(recs) != 1 || recs[0]["status"] != "FAILED" || recs[0]["attempts"] != float64(1) || recs[0]["status_code"] != float64(0) ||
			!strings.HasPrefix(reason, "not sent: refused") || !strings.Contains(reason, c.why) || !strings.Contains(reason, "--trigger-allow-cidr") {
			t.Errorf("%s: %v", c.url, recs)
		}
		if strings.HasPrefix(c.url, "http://localhost") && !strings.Contains(reason, "loopback") {
			t.Errorf("localhost: %s", reason)
		}
	}
	// The test delivery goes through the same guard.
	r := in.Admin(t, "POST", "/api/v1/repositories/team/app/triggers/"+ids[0]+"/test", nil)
	if r.Status != 200 || r.JSON["status"] != "FAILED" || !strings.Contains(r.JSON["reason"].(string), "loopback") {
		t.Errorf("test delivery: %s", r.Body)
	}
	time.Sleep(300 * time.Millisecond) // a retry, had there been one, would have come by now
	if n := rcv.total(); n != 0 {
		t.Fatalf("the loopback receiver was reached %d times", n)
	}
	for i := range cases {
		if recs := waitRecords(t, in, "team/app", ids[i], settled(1)); recs[len(recs)-1]["attempts"] != float64(1) {
			t.Errorf("%s was retried: %v", cases[i].url, recs)
		}
	}
}

// TestTriggerAPI covers the CRUD routes, validation errors, the URL rules and the write-only secret.
func TestTriggerAPI(t *testing.T) {
	var logs *syncBuffer
	in := apptest.Start(t, apptest.Options{Configure: func(c *app.Config) {
		c.TriggerAllow = []string{"127.0.0.0/8"}
		logs = captureLogs(t, c)
	}})
	rcv := newReceiver(t)
	in.Admin(t, "POST", "/api/v1/namespaces", map[string]any{"name": "team"})
	createRepo(t, in, "team", "app", "PRIVATE")
	base := "/api/v1/repositories/team/app/triggers"

	// Create: defaults, and a generated secret shown once.
	r := in.Admin(t, "POST", base, map[string]any{"name": "ci", "url": rcv.URL + "/ci"})
	if r.Status != 201 {
		t.Fatalf("create: %s", r.Body)
	}
	wantFields := []string{"enabled", "expression", "filter_type", "id", "name", "secret", "tags", "url"}
	if got := keys(r.JSON); !slices.Equal(got, wantFields) {
		t.Errorf("create answer fields %v", got)
	}
	id, secret := r.JSON["id"].(string), r.JSON["secret"].(string)
	if r.JSON["filter_type"] != "ALL" || r.JSON["enabled"] != true || len(secret) < 32 || r.JSON["expression"] != "" {
		t.Errorf("create answer: %s", r.Body)
	}
	// A given secret is not echoed.
	r = in.Admin(t, "POST", base, map[string]any{"name": "own", "url": "https://hooks.example.com/x", "secret": "my-own-secret-value",
		"filter_type": "TAGS", "tags": []string{"v1"}, "enabled": false})
	if r.Status != 201 || r.JSON["secret"] != nil || r.JSON["enabled"] != false {
		t.Errorf("create with a secret: %s", r.Body)
	}
	ownID := r.JSON["id"].(string)

	// Read: never a secret.
	r = in.Admin(t, "GET", base+"/"+id, nil)
	if r.Status != 200 || r.JSON["secret"] != nil || r.JSON["id"] != id || r.JSON["url"] != rcv.URL+"/ci" {
		t.Errorf("get: %s", r.Body)
	}
	r = in.Admin(t, "GET", base+"?page_size=1", nil)
	if r.Status != 200 || r.JSON["total"] != float64(2) || len(r.Items()) != 1 || r.Items()[0]["id"] != id {
		t.Errorf("list: %s", r.Body)
	}
	if r = in.Admin(t, "GET", base+"?page=2&page_size=1", nil); len(r.Items()) != 1 || r.Items()[0]["id"] != ownID {
		t.Errorf("list page 2: %s", r.Body)
	}

	// PATCH: switching the filter type drops the old type's fields; a new secret is accepted, not shown.
	r = in.Admin(t, "PATCH", base+"/"+ownID, map[string]any{"filter_type": "EXPRESSION", "expression": "v[0-9]+", "secret": "rotated-secret-value"})
	if r.Status != 200 || r.JSON["filter_type"] != "EXPRESSION" || r.JSON["expression"] != "v[0-9]+" || len(r.JSON["tags"].([]any)) != 0 || r.JSON["secret"] != nil {
		t.Errorf("patch filter: %s", r.Body)
	}
	r = in.Admin(t, "PATCH", base+"/"+ownID, map[string]any{"filter_type": "ALL", "enabled": true, "name": "renamed"})
	if r.Status != 200 || r.JSON["filter_type"] != "ALL" || r.JSON["expression"] != "" || r.JSON["enabled"] != true || r.JSON["name"] != "renamed" {
		t.Errorf("patch to ALL: %s", r.Body)
	}
	// Validation errors, in the API's error shape.
	eleven := []string{"t1", "t2", "t3", "t4", "t5", "t6", "t7", "t8", "t9", "t10", "t11"}
	bad := []struct {
		name   string
		method string
		path   string
		body   any
		status int
		code   string
		msg    string
	}{
		{"no name", "POST", base, map[string]any{"url": "http://example.com/"}, 400, "INVALID_ARGUMENT", "name is required"},
		{"no url", "POST", base, map[string]any{"name": "x"}, 400, "INVALID_ARGUMENT", "url is required"},
		{"long name", "POST", base, map[string]any{"name": strings.Repeat("n", 65), "url": "http://example.com/"}, 400, "INVALID_ARGUMENT", "name must be 1 to 64"},
		{"unknown filter", "POST", base, map[string]any{"name": "x", "url": "http://example.com/", "filter_type": "SOME"}, 400, "INVALID_ARGUMENT", `filter type "SOME" is unknown`},
		{"11 tags", "POST", base, map[string]any{"name": "x", "url": "http://example.com/", "filter_type": "TAGS", "tags": eleven}, 400, "INVALID_ARGUMENT", "at most 10 tags; 11 were given"},
		{"10 tags ok", "POST", base, map[string]any{"name": "x", "url": "http://example.com/", "filter_type": "TAGS", "tags": eleven[:10]}, 201, "", ""},
		{"no tags", "POST", base, map[string]any{"name": "x", "url": "http://example.com/", "filter_type": "TAGS"}, 400, "INVALID_ARGUMENT", "at least one tag"},
		{"bad tag", "POST", base, map[string]any{"name": "x", "url": "http://example.com/", "filter_type": "TAGS", "tags": []string{"-x"}}, 400, "INVALID_ARGUMENT", `tag "-x" is not a valid image tag`},
		{"bad regexp", "POST", base, map[string]any{"name": "x", "url": "http://example.com/", "filter_type": "EXPRESSION", "expression": "release-(v.*"}, 400, "INVALID_ARGUMENT", "missing closing )"},
		{"long regexp", "POST", base, map[string]any{"name": "x", "url": "http://example.com/", "filter_type": "EXPRESSION", "expression": strings.Repeat("a", 257)}, 400, "INVALID_ARGUMENT", "at most 256"},
		{"no expression", "POST", base, map[string]any{"name": "x", "url": "http://example.com/", "filter_type": "EXPRESSION"}, 400, "INVALID_ARGUMENT", "needs an expression"},
		{"expression on ALL", "POST", base, map[string]any{"name": "x", "url": "http://example.com/", "expression": "v.*"}, 400, "INVALID_ARGUMENT", "expression is only used by EXPRESSION filters"},
		{"tags on EXPRESSION", "POST", base, map[string]any{"name": "x", "url": "http://example.com/", "filter_type": "EXPRESSION", "expression": "v.*", "tags": []string{"v1"}}, 400, "INVALID_ARGUMENT", "tags are only used by TAGS filters"},
		{"empty secret", "POST", base, map[string]any{"name": "x", "url": "http://example.com/", "secret": ""}, 400, "INVALID_ARGUMENT", "secret must be 1 to 256"},
		{"unknown field", "POST", base, map[string]any{"name": "x", "url": "http://example.com/", "filter": "ALL"}, 400, "INVALID_JSON", "filter"},
		{"missing repository", "POST", "/api/v1/repositories/team/nope/triggers", map[string]any{"name": "x", "url": "http://example.com/"}, 404, "NOT_FOUND", "team/nope"},
		{"patch 11 tags", "PATCH", base + "/" + ownID, map[string]any{"filter_type": "TAGS", "tags": eleven}, 400, "INVALID_ARGUMENT", "at most 10 tags"},
		{"patch bad url", "PATCH", base + "/" + ownID, map[string]any{"url": "ftp://example.com/"}, 400, "INVALID_ARGUMENT", `scheme "ftp" is not allowed`},
		{"patch missing", "PATCH", base + "/nope", map[string]any{"enabled": false}, 404, "NOT_FOUND", "nope"},
		{"get missing", "GET", base + "/nope", nil, 404, "NOT_FOUND", "nope"},
		{"records of missing", "GET", base + "/nope/records", nil, 404, "NOT_FOUND", "nope"},
		{"bad page", "GET", base + "/" + id + "/records?page_size=101", nil, 400, "INVALID_ARGUMENT", "page_size"},
		{"other repository", "GET", "/api/v1/repositories/team/other/triggers/" + id, nil, 404, "NOT_FOUND", ""},
	}
	createRepo(t, in, "team", "other", "PRIVATE")
	for _, c := range bad {
		t.Run(c.name, func(t *testing.T) {
			r := in.Admin(t, c.method, c.path, c.body)
			msg, _ := r.JSON["message"].(string)
			if r.Status != c.status || r.Code() != c.code || !strings.Contains(msg, c.msg) {
				t.Fatalf("got %d %s %q, want %d %s containing %q", r.Status, r.Code(), msg, c.status, c.code, c.msg)
			}
			if r.Status >= 400 && r.JSON["request_id"] == "" {
				t.Fatalf("no request_id: %s", r.Body)
			}
		})
	}
	// The refused PATCHes changed nothing.
	if r := in.Admin(t, "GET", base+"/"+ownID, nil); r.JSON["filter_type"] != "ALL" || r.JSON["url"] != "https://hooks.example.com/x" {
		t.Errorf("a refused PATCH changed the trigger: %s", r.Body)
	}

	// Test delivery: sent now, signed with the secret, answered as a record that is also in the history.
	r = in.Admin(t, "POST", base+"/"+id+"/test", nil)
	if r.Status != 200 || r.JSON["status"] != "TRIGGERED" || r.JSON["attempts"] != float64(1) || r.JSON["status_code"] != float64(200) ||
		r.JSON["tag"] != "latest" {
		t.Fatalf("test delivery: %s", r.Body)
	}
	hits := rcv.hitsOn("/ci")
	if len(hits) != 1 || !outbound.VerifySignature([]byte(secret), hits[0].Body, hits[0].Header.Get("X-Berth-Signature")) ||
		string(hits[0].Body) != r.JSON["request_body"] {
		t.Fatalf("test delivery hits: %v", hits)
	}
	testRecord := r.JSON["id"]
	if r := in.Admin(t, "GET", base+"/"+id+"/records", nil); r.JSON["total"] != float64(1) || r.Items()[0]["id"] != testRecord {
		t.Errorf("test delivery record not in the history: %s", r.Body)
	}
	if r := in.Admin(t, "POST", base+"/nope/test", nil); r.Status != 404 {
		t.Errorf("test of a missing trigger: %s", r.Body)
	}

	// Delete removes the trigger and its records.
	if r := in.Admin(t, "DELETE", base+"/"+id, nil); r.Status != 204 {
		t.Fatalf("delete: %s", r.Body)
	}
	if r := in.Admin(t, "GET", base+"/"+id, nil); r.Status != 404 {
		t.Errorf("deleted trigger still there: %s", r.Body)
	}
	if r := in.Admin(t, "DELETE", base+"/"+id, nil); r.Status != 404 {
		t.Errorf("second delete: %s", r.Body)
	}

	// The routes are in the OpenAPI document with their RAM actions.
	r = in.Admin(t, "GET", "/api/v1/openapi.json", nil)
	paths, _ := r.JSON["paths"].(map[string]any)
	op, _ := paths["/api/v1/repositories/{ns}/{repo}/triggers/{id}/records"].(map[string]any)
	if get, _ := op["get"].(map[string]any); get["x-ram-action"] != "cr:ListTriggerRecord" {
		t.Errorf("openapi records route: %v", op)
	}

	for _, s := range []string{secret, "my-own-secret-value", "rotated-secret-value"} {
		if strings.Contains(logs.String(), s) {
			t.Fatalf("secret %q is in the logs", s)
		}
	}
}

// TestTriggerURLRules runs the save-time URL rules through the API: every port edge, both schemes.
func TestTriggerURLRules(t *testing.T) {
	in := apptest.Start(t, apptest.Options{})
	in.Admin(t, "POST", "/api/v1/namespaces", map[string]any{"name": "team"})
	createRepo(t, in, "team", "app", "PRIVATE")
	cases := []struct {
		url string
		ok  bool
		msg string
	}{
		{"http://hooks.example.com/x", true, ""},
		{"https://hooks.example.com/x", true, ""},
		{"http://hooks.example.com:80/x", true, ""},
		{"http://hooks.example.com:79/x", false, "port 79 is not allowed for http"},
		{"http://hooks.example.com:81/x", false, "port 81 is not allowed for http"},
		{"http://hooks.example.com:21/x", true, ""},
		{"http://hooks.example.com:22/x", false, "port 22 is not allowed for http"},
		{"http://hooks.example.com:70/x", true, ""},
		{"http://hooks.example.com:210/x", true, ""},
		{"http://hooks.example.com:280/x", true, ""},
		{"http://hooks.example.com:443/x", true, ""},
		{"http://hooks.example.com:488/x", true, ""},
		{"http://hooks.example.com:591/x", true, ""},
		{"http://hooks.example.com:777/x", true, ""},
		{"http://hooks.example.com:778/x", false, "port 778"},
		{"http://hooks.example.com:1024/x", false, "port 1024 is not allowed for http"},
		{"http://hooks.example.com:1025/x", true, ""},
		{"http://hooks.example.com:8080/x", true, ""},
		{"http://hooks.example.com:65535/x", true, ""},
		{"http://hooks.example.com:65536/x", false, "port 65536 is not allowed for http"},
		{"http://hooks.example.com:0/x", false, "port 0"},
		{"https://hooks.example.com:443/x", true, ""},
		{"https://hooks.example.com:8443/x", false, "https triggers must use port 443"},
		{"https://hooks.example.com:80/x", false, "https triggers must use port 443"},
		{"ftp://hooks.example.com/x", false, `scheme "ftp" is not allowed`},
		{"hooks.example.com/x", false, "no scheme"},
		{"http://user:pw@hooks.example.com/x", false, "user name or password"},
		{"http:///x", false, "no host"},
		{"", false, "URL is empty"},
		{"http://hooks.example.com/" + strings.Repeat("a", 2048), false, "at most 2048 characters"},
	}
	for _, c := range cases {
		r := in.Admin(t, "POST", "/api/v1/repositories/team/app/triggers", map[string]any{"name": "u", "url": c.url})
		msg, _ := r.JSON["message"].(string)
		if c.ok && r.Status != 201 {
			t.Errorf("%.60s: refused: %d %s", c.url, r.Status, r.Body)
		}
		if !c.ok && (r.Status != 400 || r.Code() != "INVALID_ARGUMENT" || !strings.HasPrefix(msg, "url: ") || !strings.Contains(msg, c.msg)) {
			t.Errorf("%.60s: got %d %s %q, want 400 INVALID_ARGUMENT mentioning %q", c.url, r.Status, r.Code(), msg, c.msg)
		}
	}
}

// TestTriggerRecordRetention: records older than --trigger-record-retention are deleted by the cleanup job.
func TestTriggerRecordRetention(t *testing.T) {
	in := apptest.Start(t, apptest.Options{Configure: func(c *app.Config) {
		c.TriggerAllow = []string{"127.0.0.0/8"}
		c.TriggerRecordRetention = time.Second
	}})
	rcv := newReceiver(t)
	in.Admin(t, "POST", "/api/v1/namespaces", map[string]any{"name": "team"})
	createRepo(t, in, "team", "app", "PRIVATE")
	id, _ := createTrigger(t, in, "team/app", map[string]any{"name": "t", "url": rcv.URL + "/t"})
	if r := in.Admin(t, "POST", "/api/v1/repositories/team/app/triggers/"+id+"/test", nil); r.JSON["status"] != "TRIGGERED" {
		t.Fatalf("test delivery: %s", r.Body)
	}
	start := time.Now()
	waitRecords(t, in, "team/app", id, func(recs []map[string]any) bool { return len(recs) == 0 })
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("records expired only after %s", d)
	}
}
