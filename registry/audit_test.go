package registry_test

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/berth-dev/berth/registry"
)

// auditRecorder keeps the events the registry reports.
type auditRecorder struct {
	mu  sync.Mutex
	evs []string
	ids []string
}

func (a *auditRecorder) RegistryRequest(_ *http.Request, ev registry.AuditEvent) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.evs = append(a.evs, fmt.Sprintf("%d %s %s %s %d", ev.Kind, ev.User, ev.Repository, ev.Reference, ev.Status))
	a.ids = append(a.ids, ev.RequestID)
}

func (a *auditRecorder) take() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := a.evs
	a.evs = nil
	return out
}

// TestAuditEvents: sign-ins at /token and refused Basic credentials, pushes (also refused ones), deletes and,
// with AuditPulls, manifest GETs reach the Auditor with user, repository, reference, status and request id;
// blob traffic and the challenge to a request without credentials do not.
func TestAuditEvents(t *testing.T) {
	for _, pulls := range []bool{false, true} {
		t.Run(fmt.Sprintf("pulls=%v", pulls), func(t *testing.T) {
			rec := &auditRecorder{}
			s := startServer(t, defaultAuthz(), nil, func(c *registry.Config) {
				c.Audit, c.AuditPulls = rec, pulls
				c.RequestID = func(r *http.Request) string { return "rid-" + r.Method }
			})
			login, push, del, pull := int(registry.AuditLogin), int(registry.AuditPush), int(registry.AuditDelete), int(registry.AuditPull)
			tok := s.token("alice", "alice-pw", "repository:ns/app:pull,push,delete")
			dg, _ := s.pushImage(tok, "ns/app", "v1", "a")
			resp, body := s.do("GET", "/v2/ns/app/manifests/v1", nil, withBearer(tok))
			expect(t, resp, body, 200, "")
			if resp.Header.Get("X-Request-Id") == "" && pulls {
				t.Errorf("an audited pull answers no X-Request-Id")
			}
			resp, body = s.do("HEAD", "/v2/ns/app/manifests/v1", nil, withBearer(tok))
			expect(t, resp, body, 200, "")
			bob := s.token("bob", "bob-pw", "repository:ns/app:pull,push")
			resp, body = s.do("PUT", "/v2/ns/app/manifests/v2", []byte("{}"), withBearer(bob),
				withHeader("Content-Type", "application/vnd.oci.image.manifest.v1+json"))
			expect(t, resp, body, 403, "DENIED")
			resp, body = s.do("PUT", "/v2/ns/app/manifests/v3", []byte("{}")) // no credentials: the challenge
			expect(t, resp, body, 401, "UNAUTHORIZED")
			resp, body = s.do("GET", "/v2/ns/app/tags/list", nil, withBasic("alice", "wrong"))
			expect(t, resp, body, 401, "UNAUTHORIZED")
			resp, body = s.do("DELETE", "/v2/ns/app/manifests/"+dg, nil, withBearer(tok))
			expect(t, resp, body, 202, "")
			want := []string{
				fmt.Sprintf("%d alice   200", login),
				fmt.Sprintf("%d alice ns/app v1 201", push),
				fmt.Sprintf("%d bob   200", login),
				fmt.Sprintf("%d bob ns/app v2 403", push),
				fmt.Sprintf("%d alice   401", login),
				fmt.Sprintf("%d alice ns/app %s 202", del, dg),
			}
			if pulls {
				want = append(want[:2], append([]string{fmt.Sprintf("%d alice ns/app v1 200", pull)}, want[2:]...)...)
			}
			// The blob uploads of pushImage, the HEAD, the challenge and the tag list with a token are no events.
			if got := rec.take(); strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Fatalf("events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
			for _, id := range rec.ids {
				if !strings.HasPrefix(id, "rid-") {
					t.Fatalf("event without its request id: %v", rec.ids)
				}
			}
		})
	}
}
