package scanner

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/workers/scanner/internal/scantest"
)

func do(t *testing.T, srv *httptest.Server, method, path, body string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s %s: Content-Type %q", method, path, ct)
	}
	return resp.StatusCode, b
}

func decodeError(t *testing.T, b []byte) APIError {
	t.Helper()
	var e APIError
	if err := json.Unmarshal(b, &e); err != nil || e.Code == "" || e.Message == "" {
		t.Fatalf("not an API error: %s (%v)", b, err)
	}
	return e
}

func TestHandler(t *testing.T) {
	f := testFixture(t)
	s, dbDir := newScanner(t, false)
	srv := httptest.NewServer(NewHandler(s, HandlerOptions{}))
	defer srv.Close()

	if code, b := do(t, srv, "GET", "/healthz", ""); code != 200 || !strings.Contains(string(b), `"ok"`) {
		t.Errorf("GET /healthz = %d %s", code, b)
	}

	// No DB yet.
	code, b := do(t, srv, "GET", "/db", "")
	if e := decodeError(t, b); code != 503 || e.Code != "NO_VULN_DB" || !strings.Contains(e.Message, "no vulnerability DB in "+dbDir+"/db: ") {
		t.Errorf("GET /db without a DB = %d %s", code, b)
	}
	body := `{"image": "` + f.alpine + `", "username": "` + testUser + `", "password": "` + testPassword + `", "insecure": true}`
	code, b = do(t, srv, "POST", "/scan", body)
	if e := decodeError(t, b); code != 503 || e.Code != "NO_VULN_DB" {
		t.Errorf("POST /scan without a DB = %d %s", code, b)
	}

	if err := scantest.WriteDB(dbDir, scantest.Fixture()); err != nil {
		t.Fatal(err)
	}
	code, b = do(t, srv, "GET", "/db", "")
	var info map[string]any
	if err := json.Unmarshal(b, &info); err != nil || code != 200 || info["version"] != "2026-01-02T03:04:05Z" ||
		info["updated_at"] != "2026-01-02T03:04:05Z" || info["schema"] != 2.0 {
		t.Errorf("GET /db = %d %s", code, b)
	}

	code, b = do(t, srv, "POST", "/scan", body)
	if code != 200 {
		t.Fatalf("POST /scan = %d %s", code, b)
	}
	// The wire format, field by field.
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"scanner", "scanner_version", "db_version", "os", "started_at", "finished_at", "vulnerabilities"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("report lacks %q: %s", k, b)
		}
	}
	var vulns []map[string]string
	if err := json.Unmarshal(raw["vulnerabilities"], &vulns); err != nil || len(vulns) != 1 {
		t.Fatalf("vulnerabilities = %s (%v)", raw["vulnerabilities"], err)
	}
	want := map[string]string{"id": "CVE-2025-26519", "package": "musl", "installed_version": "1.2.5-r8",
		"fixed_version": "1.2.5-r9", "severity": "HIGH", "title": muslVuln.Title, "link": muslVuln.Link}
	for k, v := range want {
		if vulns[0][k] != v {
			t.Errorf("vulnerability %s = %q, want %q", k, vulns[0][k], v)
		}
	}
	if len(vulns[0]) != len(want) {
		t.Errorf("vulnerability has extra fields: %v", vulns[0])
	}

	code, b = do(t, srv, "POST", "/scan", `{"image": "`+f.clean+`", "username": "`+testUser+`", "password": "`+testPassword+`"}`)
	if code != 200 || !strings.Contains(string(b), `"vulnerabilities":[]`) {
		t.Errorf("POST /scan clean = %d %s", code, b)
	}

	errs := []struct {
		name, method, path, body string
		status                   int
		code                     string
	}{
		{"not JSON", "POST", "/scan", `image=x`, 400, "INVALID_REQUEST"},
		{"unknown field", "POST", "/scan", `{"image": "` + f.alpine + `", "tag": "x"}`, 400, "INVALID_REQUEST"},
		{"no image", "POST", "/scan", `{}`, 400, "INVALID_REQUEST"},
		{"bad credentials", "POST", "/scan", `{"image": "` + f.alpine + `", "username": "u", "password": "p"}`, 401, "REGISTRY_UNAUTHORIZED"},
		{"missing image", "POST", "/scan", `{"image": "` + f.reg.Host + `/ns/none:latest", "username": "` + testUser + `", "password": "` + testPassword + `"}`, 404, "IMAGE_NOT_FOUND"},
		{"registry down", "POST", "/scan", `{"image": "127.0.0.1:1/ns/none:latest"}`, 502, "REGISTRY_ERROR"},
		{"GET /scan", "GET", "/scan", "", 405, "METHOD_NOT_ALLOWED"},
	}
	for _, tt := range errs {
		t.Run(tt.name, func(t *testing.T) {
			code, b := do(t, srv, tt.method, tt.path, tt.body)
			if e := decodeError(t, b); code != tt.status || e.Code != tt.code {
				t.Errorf("%s %s = %d %s, want %d %s", tt.method, tt.path, code, b, tt.status, tt.code)
			}
		})
	}
}

// TestScanSlotsAndTimeout: with one slot, a scan waits for the running one; a scan whose time runs out
// (waiting included) answers 504 SCAN_TIMEOUT.
func TestScanSlotsAndTimeout(t *testing.T) {
	f := testFixture(t)
	s, _ := newScanner(t, true) // fresh cache: layers are downloaded, slowly
	f.reg.SetBlobDelay(700 * time.Millisecond)
	defer f.reg.SetBlobDelay(0)
	srv := httptest.NewServer(NewHandler(s, HandlerOptions{ScanTimeout: 300 * time.Millisecond}))
	defer srv.Close()

	first := make(chan error, 1)
	go func() {
		_, err := s.Scan(context.Background(), request(f.alpine))
		first <- err
	}()
	time.Sleep(100 * time.Millisecond) // let it take the slot
	start := time.Now()
	code, b := do(t, srv, "POST", "/scan", `{"image": "`+f.clean+`", "username": "`+testUser+`", "password": "`+testPassword+`"}`)
	if e := decodeError(t, b); code != 504 || e.Code != "SCAN_TIMEOUT" {
		t.Errorf("POST /scan while the slot is taken = %d %s", code, b)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("timeout answered after %v", d)
	}
	if err := <-first; err != nil {
		t.Errorf("the running scan: %v", err)
	}
}
