package apptest

import (
	"encoding/base64"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// recorder keeps the errors a test would have reported, so that the harness's own failures can be checked.
type recorder struct {
	testing.TB
	mu   sync.Mutex
	errs []string
}

func (r *recorder) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

func (r *recorder) reported() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.errs, "\n")
}

// TestStopFailsOnHungShutdown: a request that never finishes keeps Serve's graceful shutdown waiting; Stop
// gives up after StopTimeout and fails the test, naming the instance and showing Serve still shutting down.
func TestStopFailsOnHungShutdown(t *testing.T) {
	rec := &recorder{TB: t}
	in := Start(rec, Options{StopTimeout: 2 * time.Second})
	conn, err := net.Dial("tcp", in.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// The handler waits for the 100 bytes of body it was promised; only 2 come.
	req := "POST /api/v1/namespaces HTTP/1.1\r\nHost: " + in.Host + "\r\nAuthorization: Basic " +
		basic("admin", AdminPassword) + "\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\""
	if _, err := conn.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // the handler is reading the body

	start := time.Now()
	err = in.Stop()
	if err == nil || !strings.Contains(err.Error(), "did not stop within 2s") {
		t.Fatalf("Stop returned %v, want a timeout", err)
	}
	if took := time.Since(start); took < 2*time.Second || took > 5*time.Second {
		t.Errorf("Stop gave up after %s, want 2s", took)
	}
	got := rec.reported()
	if !strings.Contains(got, "berth on "+in.Host+" did not stop within 2s") || !strings.Contains(got, "app.(*App).Serve") ||
		!strings.Contains(got, "net/http.(*Server).Shutdown") {
		t.Errorf("the test was failed with:\n%s", got)
	}

	conn.Close() // the request ends, and with it the shutdown
	select {
	case err := <-in.done:
		if err != nil {
			t.Errorf("Serve, once the request ended: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return once the hung request ended")
	}
	in.App.Close()
}

// TestStopFailsOnServeError: Serve returning an error (here its listener closed under it) fails the test at
// Stop, and Stop returns that error.
func TestStopFailsOnServeError(t *testing.T) {
	rec := &recorder{TB: t}
	in := Start(rec, Options{})
	in.ln.Close()
	time.Sleep(200 * time.Millisecond)
	err := in.Stop()
	if err == nil || !strings.Contains(err.Error(), "use of closed network connection") {
		t.Fatalf("Stop returned %v, want Serve's error", err)
	}
	if got := rec.reported(); !strings.Contains(got, "berth serve on "+in.Host+" returned an error: ") ||
		!strings.Contains(got, "use of closed network connection") {
		t.Errorf("the test was failed with: %q", got)
	}
}

func basic(user, pass string) string {
	return base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))
}
