//go:build !noembed

package embedded

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// TestIndexIDs: after IndexIDs, FerretDB answers a lookup by _id through an index (its query plan says so),
// with the same documents as before.
func TestIndexIDs(t *testing.T) {
	ctx := context.Background()
	m, err := StartMongo(ctx, t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Stop()
	client, err := mongo.Connect(options.Client().ApplyURI(m.URI))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Disconnect(ctx)
	db := client.Database("berth")
	docs := make([]any, 500)
	for i := range docs {
		docs[i] = bson.M{"_id": fmt.Sprintf("build-%04d", i), "n": i}
	}
	if _, err := db.Collection("builds").InsertMany(ctx, docs); err != nil {
		t.Fatal(err)
	}
	plan := func() string {
		var out bson.M
		err := db.RunCommand(ctx, bson.D{{Key: "explain", Value: bson.D{{Key: "find", Value: "builds"},
			{Key: "filter", Value: bson.M{"_id": "build-0042"}}}}}).Decode(&out)
		if err != nil {
			t.Fatal(err)
		}
		return fmt.Sprint(out["queryPlanner"])
	}
	before := plan()
	n, err := m.IndexIDs(ctx, "berth")
	if err != nil || n != 1 {
		t.Fatalf("IndexIDs: %d %v", n, err)
	}
	// FerretDB's connections see the new index from their next transaction that writes.
	if _, err := db.Collection("builds").InsertOne(ctx, bson.M{"_id": "build-0500"}); err != nil {
		t.Fatal(err)
	}
	after := plan()
	if !strings.Contains(after, "_berth_id") || strings.Contains(before, "_berth_id") {
		t.Fatalf("query plan of a lookup by _id\nbefore: %s\nafter:  %s", before, after)
	}
	var got bson.M
	if err := db.Collection("builds").FindOne(ctx, bson.M{"_id": "build-0042"}).Decode(&got); err != nil || got["n"] != int32(42) {
		t.Fatalf("lookup through the index: %v %v", got, err)
	}
	if n, err := m.IndexIDs(ctx, "berth"); err != nil || n != 0 {
		t.Fatalf("IndexIDs again: %d %v", n, err)
	}
	// Writes after the index keep working, and a dropped collection takes its index along.
	if _, err := db.Collection("builds").InsertOne(ctx, bson.M{"_id": "build-9999"}); err != nil {
		t.Fatal(err)
	}
	if err := db.Collection("builds").Drop(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Collection("builds").InsertOne(ctx, bson.M{"_id": "build-0001"}); err != nil {
		t.Fatal(err)
	}
	if n, err := m.IndexIDs(ctx, "berth"); err != nil || n != 1 {
		t.Fatalf("IndexIDs of a new collection: %d %v", n, err)
	}
}
