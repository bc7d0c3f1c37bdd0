package server_test

import (
	"crypto/sha256"
	"encoding/hex"
	"testing"
	"time"
)

// TestReplicaTagStaleness: replicas sharing one storage (here one filesystem, as the ReadWriteMany volume of
// deployments/kubernetes/berth.yaml) trust their cached tag lookups and manifests for at most 5 s: a tag pushed
// over, and a repository deleted, through one replica show on the other within 5 s.
func TestReplicaTagStaleness(t *testing.T) {
	a, b := twoReplicas(t)
	if r := a.Admin(t, "POST", "/api/v1/namespaces", map[string]any{"name": "demo"}); r.Status != 201 {
		t.Fatalf("namespace: %d %s", r.Status, r.Body)
	}
	servedByB := func(ref string) (int, string) {
		st, _, body := registryGet(t, b, "demo/app", "manifests/"+ref)
		sum := sha256.Sum256(body)
		return st, "sha256:" + hex.EncodeToString(sum[:])
	}
	first := pushImg(t, a, "demo/app:v1", imageWith(t))
	if st, dg := servedByB("v1"); st != 200 || dg != first { // b caches the tag and the manifest
		t.Fatalf("v1 through b: %d %s, want %s", st, dg, first)
	}
	second := pushImg(t, a, "demo/app:v1", imageWith(t))
	took := within(t, 5*time.Second+time.Second, "replica b serving the tag pushed over", func() bool {
		st, dg := servedByB("v1")
		return st == 200 && dg == second
	})
	t.Logf("replica b served the new v1 %v after the push", took.Round(10*time.Millisecond))

	if r := a.Admin(t, "DELETE", "/api/v1/repositories/demo/app", nil); r.Status != 204 {
		t.Fatalf("delete repository: %d %s", r.Status, r.Body)
	}
	took = within(t, 5*time.Second+time.Second, "replica b forgetting the deleted repository", func() bool {
		st, _ := servedByB(second)
		return st == 404
	})
	t.Logf("replica b stopped serving the deleted repository %v after the delete", took.Round(10*time.Millisecond))
}
