package registry_test

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/berth-dev/berth/registry"
	"github.com/berth-dev/berth/registry/registrytest"
)

// BenchmarkManifestGetByTag measures the handler alone (no network): token
// check, tag and manifest caches, response headers.
func BenchmarkManifestGetByTag(b *testing.B) {
	s := startServer(&testing.T{}, registrytest.AllowAll{}, nil)
	defer s.stop()
	tok, _ := s.reg.IssueToken(registry.Subject{Name: "bench"}, []registry.Access{{Type: "repository", Name: "bench/app", Actions: []string{"pull", "push"}}}, time.Hour)
	s.t = &testing.T{}
	s.pushImage(tok, "bench/app", "latest", "bench")
	req := httptest.NewRequest("GET", "/v2/bench/app/manifests/latest", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			w := httptest.NewRecorder()
			s.reg.ServeHTTP(w, req)
			if w.Code != http.StatusOK {
				b.Fatalf("status %d", w.Code)
			}
		}
	})
}
