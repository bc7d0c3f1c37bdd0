package scantest

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Registry is go-containerregistry's test registry behind Docker token auth (as Berth's registry does it:
// 401 with a Bearer challenge, a token endpoint taking Basic credentials), on 127.0.0.1. It counts blob
// downloads so tests can tell whether a layer was fetched again.
type Registry struct {
	Host     string // 127.0.0.1:PORT
	Username string
	Password string

	srv   *httptest.Server
	token string

	mu        sync.Mutex
	blobGets  map[string]int
	blobBytes int64
	blobDelay time.Duration
}

// NewRegistry starts a registry accepting username/password. Close it when done.
func NewRegistry(username, password string) *Registry {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	r := &Registry{Username: username, Password: password, token: hex.EncodeToString(b), blobGets: map[string]int{}}
	inner := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path == "/token" {
			r.serveToken(w, req)
			return
		}
		if req.Header.Get("Authorization") != "Bearer "+r.token {
			w.Header().Set("WWW-Authenticate",
				fmt.Sprintf(`Bearer realm="http://%s/token",service="scantest"`, req.Host))
			http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`, http.StatusUnauthorized)
			return
		}
		if req.Method == http.MethodGet && strings.Contains(req.URL.Path, "/blobs/sha256:") {
			r.mu.Lock()
			r.blobGets[req.URL.Path[strings.LastIndex(req.URL.Path, "/")+1:]]++
			delay := r.blobDelay
			r.mu.Unlock()
			time.Sleep(delay)
			cw := &countingWriter{ResponseWriter: w}
			inner.ServeHTTP(cw, req)
			r.mu.Lock()
			r.blobBytes += cw.n
			r.mu.Unlock()
			return
		}
		inner.ServeHTTP(w, req)
	}))
	r.Host = strings.TrimPrefix(r.srv.URL, "http://")
	return r
}

func (r *Registry) serveToken(w http.ResponseWriter, req *http.Request) {
	u, p, ok := req.BasicAuth()
	if !ok || u != r.Username || p != r.Password {
		w.Header().Set("WWW-Authenticate", `Basic realm="scantest"`)
		http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"bad credentials"}]}`, http.StatusUnauthorized)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"token": r.token, "access_token": r.token, "expires_in": 300})
}

// Close stops the registry.
func (r *Registry) Close() { r.srv.Close() }

// BlobGets is how many times the blob with this digest ("sha256:…") was downloaded.
func (r *Registry) BlobGets(digest string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.blobGets[digest]
}

// BlobBytes is how many bytes of blobs were downloaded in all.
func (r *Registry) BlobBytes() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.blobBytes
}

type countingWriter struct {
	http.ResponseWriter
	n int64
}

func (w *countingWriter) Write(b []byte) (int, error) {
	n, err := w.ResponseWriter.Write(b)
	w.n += int64(n)
	return n, err
}

// SetBlobDelay slows every blob download down by d, to keep a scan running for a while.
func (r *Registry) SetBlobDelay(d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.blobDelay = d
}

// Push uploads img as repo:latest and returns its by-digest reference, host/repo@sha256:….
func (r *Registry) Push(repo string, img v1.Image) (string, error) {
	return Push(r.Host, r.Username, r.Password, repo, img)
}

// Push uploads img to any registry (plain HTTP allowed) as repo:latest and returns host/repo@sha256:….
func Push(host, username, password, repo string, img v1.Image) (string, error) {
	tag, err := name.NewTag(host+"/"+repo+":latest", name.Insecure)
	if err != nil {
		return "", err
	}
	auth := remote.WithAuth(&authn.Basic{Username: username, Password: password})
	if err := remote.Write(tag, img, auth); err != nil {
		return "", fmt.Errorf("push %s: %w", tag, err)
	}
	d, err := img.Digest()
	if err != nil {
		return "", err
	}
	return host + "/" + repo + "@" + d.String(), nil
}
