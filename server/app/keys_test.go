package app_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"

	"github.com/berth-dev/berth/registry"
	"github.com/berth-dev/berth/server/app"
	"github.com/berth-dev/berth/server/app/apptest"
	"github.com/berth-dev/berth/store/embedded"
)

// TestReplicasShareKeys starts two replicas on one store, each with its own data dir and the same master key
// (one from a file, one from BERTH_MASTER_KEY): a registry token issued by one is accepted by the other (the
// signing key lives in the store, sealed; the first replica migrated it from its registry-token.pem), and a
// process given another master key refuses to start, saying what to do.
func TestReplicasShareKeys(t *testing.T) {
	m, err := embedded.StartMongo(context.Background(), t.TempDir(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Stop)
	redis := apptest.StartRedisServer(t)
	master := make([]byte, 32)
	_, _ = rand.Read(master)
	keyFile := filepath.Join(t.TempDir(), "master.key")
	if err := os.WriteFile(keyFile, []byte(hex.EncodeToString(master)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Replica a's data dir holds a token signing key from before keys were shared: it becomes the instance's.
	dirA := t.TempDir()
	oldPEM, err := registry.NewSigningKeyPEM()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dirA, "keys"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dirA, "keys", "registry-token.pem"), oldPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	const publicURL = "http://berth.test:5000" // both replicas behind one name, as behind a load balancer
	shared := func(c *app.Config) {
		c.MongoURI, c.MongoDatabase, c.RedisAddr, c.PublicURL = m.URI, "berth", redis, publicURL
	}
	a := apptest.Start(t, apptest.Options{DataDir: dirA, Configure: func(c *app.Config) { shared(c); c.MasterKeyFile = keyFile }})
	b := apptest.Start(t, apptest.Options{Configure: func(c *app.Config) { shared(c); c.MasterKey = hex.EncodeToString(master) }})
	if r := a.Admin(t, "POST", "/api/v1/namespaces", map[string]any{"name": "team"}); r.Status != 201 {
		t.Fatalf("namespace: %d %s", r.Status, r.Body)
	}

	token := func(in *apptest.Instance) string {
		req, _ := http.NewRequest("GET", in.URL+"/token?service=berth.test:5000&scope=repository:team/app:pull,push", nil)
		req.SetBasicAuth("admin", apptest.AdminPassword)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var ans struct{ Token string }
		if err := json.NewDecoder(resp.Body).Decode(&ans); err != nil || resp.StatusCode != 200 || ans.Token == "" {
			t.Fatalf("token from %s: %d %v", in.Host, resp.StatusCode, err)
		}
		return ans.Token
	}
	bearer := func(in *apptest.Instance, tok, method, path string, body []byte) (int, []byte) {
		req, _ := http.NewRequest(method, in.URL+path, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, data
	}
	fromA, fromB := token(a), token(b)
	// Signed with the key of a's old registry-token.pem.
	old, err := registry.ParseSigningKey(oldPEM)
	if err != nil {
		t.Fatal(err)
	}
	for name, tok := range map[string]string{"a": fromA, "b": fromB} {
		if _, err := jwt.Parse(tok, func(*jwt.Token) (any, error) { return old.Public(), nil }); err != nil {
			t.Errorf("the token of replica %s is not signed with the migrated key: %v", name, err)
		}
	}
	// Each replica keeps its blobs in its own data dir here: each pushes and pulls one with the other's token.
	for _, c := range []struct {
		name string
		in   *apptest.Instance
		tok  string
	}{{"b with a's token", b, fromA}, {"a with b's token", a, fromB}} {
		blob := []byte("one blob, pushed through " + c.name)
		sum := sha256.Sum256(blob)
		digest := "sha256:" + hex.EncodeToString(sum[:])
		if st, body := bearer(c.in, c.tok, "POST", "/v2/team/app/blobs/uploads/?digest="+digest, blob); st != 201 {
			t.Fatalf("push on %s: %d %s", c.name, st, body)
		}
		if st, body := bearer(c.in, c.tok, "GET", "/v2/team/app/blobs/"+digest, nil); st != 200 || !bytes.Equal(body, blob) {
			t.Fatalf("pull on %s: %d %s", c.name, st, body)
		}
	}

	// Another master key: refused, with what to do.
	other := make([]byte, 32)
	_, _ = rand.Read(other)
	cfg, err := app.ParseConfig("serve", nil)
	if err != nil {
		t.Fatal(err)
	}
	shared(cfg)
	cfg.DataDir, cfg.Addr, cfg.MasterKey = t.TempDir(), "127.0.0.1:0", hex.EncodeToString(other)
	cfg.Logger = slog.New(slog.DiscardHandler)
	if c, err := app.Open(context.Background(), cfg); err == nil {
		c.Close()
		t.Fatal("a process with another master key started")
	} else if msg := err.Error(); !strings.Contains(msg, "BERTH_MASTER_KEY is not the one this store's secrets are sealed with") ||
		!strings.Contains(msg, "give every replica and worker the same master key") {
		t.Fatalf("refusal does not say what to do: %v", err)
	}
	// Without a key of its own (a fresh data dir makes a new random one): refused too.
	cfg.MasterKey, cfg.DataDir = "", t.TempDir()
	if c, err := app.Open(context.Background(), cfg); err == nil {
		c.Close()
		t.Fatal("a process with a new master key started")
	}
}

// TestMasterKeyOptions: BERTH_MASTER_KEY must be 64 hex characters, and only one of it and --master-key-file.
func TestMasterKeyOptions(t *testing.T) {
	t.Setenv("BERTH_ADMIN_PASSWORD", apptest.AdminPassword)
	for _, c := range []struct {
		key, file, want string
	}{
		{"abc", "", "64 hex characters"},
		{strings.Repeat("zz", 32), "", "64 hex characters"},
		{strings.Repeat("ab", 32), "/some/file", "not both"},
	} {
		cfg, err := app.ParseConfig("serve", nil)
		if err != nil {
			t.Fatal(err)
		}
		cfg.DataDir, cfg.MasterKey, cfg.MasterKeyFile = t.TempDir(), c.key, c.file
		cfg.Logger = slog.New(slog.DiscardHandler)
		if a, err := app.Open(context.Background(), cfg); err == nil {
			a.Close()
			t.Errorf("key %q file %q: opened", c.key, c.file)
		} else if !strings.Contains(err.Error(), c.want) {
			t.Errorf("key %q file %q: %v, want %q", c.key, c.file, err, c.want)
		}
	}
}
