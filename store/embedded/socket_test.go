//go:build !noembed

package embedded

import (
	"context"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// TestMongoListensOnASocket: the embedded store, which has no authentication, listens only on a Unix socket of
// mode 0600 (in the data dir, or in a 0700 temp dir when the data dir's path is too long for a socket), and the
// official driver works through it.
func TestMongoListensOnASocket(t *testing.T) {
	for _, dir := range []string{t.TempDir(), filepath.Join(t.TempDir(), strings.Repeat("long-directory/", 8))} {
		ctx := context.Background()
		m, err := StartMongo(ctx, dir, nil)
		if err != nil {
			t.Fatal(err)
		}
		sock, err := url.PathUnescape(strings.TrimSuffix(strings.TrimPrefix(m.URI, "mongodb://"), "/"))
		if err != nil || !strings.HasPrefix(m.URI, "mongodb://%2F") || !strings.HasSuffix(sock, "/mongo.sock") {
			t.Fatalf("URI %s: want mongodb://%%2F…mongo.sock (%v)", m.URI, err)
		}
		fi, err := os.Stat(sock)
		if err != nil || fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
			t.Fatalf("socket %s: %v %v, want mode 0600", sock, fi, err)
		}
		if di, err := os.Stat(filepath.Dir(sock)); err != nil || di.Mode().Perm() != 0o700 {
			t.Fatalf("socket dir: %v %v, want mode 0700", di, err)
		}
		client, err := mongo.Connect(options.Client().ApplyURI(m.URI))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := client.Database("berth").Collection("c").InsertOne(ctx, bson.M{"_id": "x"}); err != nil {
			t.Fatalf("insert through the socket: %v", err)
		}
		client.Disconnect(ctx)
		m.Stop()
		if !strings.HasPrefix(sock, dir) {
			if _, err := os.Stat(filepath.Dir(sock)); !os.IsNotExist(err) {
				t.Errorf("temp socket dir %s left behind", filepath.Dir(sock))
			}
		}
	}
}
