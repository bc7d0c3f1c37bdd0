package workers

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestScannerClientErrors(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(`{"code": "NO_VULN_DB", "message": "DIR/db/trivy.db not found"}`))
	}))
	defer srv.Close()
	c := &ScannerClient{Addr: strings.TrimPrefix(srv.URL, "http://")}
	_, err := c.Scan(context.Background(), ScanRequest{Image: "x"})
	var se *ScannerError
	if !errors.As(err, &se) || se.Code != ScannerNoVulnDB || se.Unreachable() || !strings.HasPrefix(err.Error(), "no vulnerability DB: ") {
		t.Fatalf("503 NO_VULN_DB: %v", err)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, err = (&ScannerClient{Addr: addr}).DB(context.Background())
	if !errors.As(err, &se) || !se.Unreachable() {
		t.Fatalf("nothing listening: %v", err)
	}
}
