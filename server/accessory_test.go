package server_test

import (
	"strings"
	"testing"
	"time"
)

// TestCosignAccessoriesAreNoVersions: what cosign attaches to an image by tag (sha256-<digest>.sig, .att) is no
// image version: no version row and no push event (so no scan and no trigger record), while the images are.
func TestCosignAccessoriesAreNoVersions(t *testing.T) {
	in, _ := deliveryInstance(t)
	rcv := newReceiver(t)
	createRepo(t, in, "team", "app", "PRIVATE")
	id, _ := createTrigger(t, in, "team/app", map[string]any{"name": "all", "url": rcv.URL + "/all"})
	digest := pushImage(t, in, "team/app:v1")
	hex := strings.TrimPrefix(digest, "sha256:")
	pushImage(t, in, "team/app:sha256-"+hex+".sig")
	pushImage(t, in, "team/app:sha256-"+hex+".att")
	pushImage(t, in, "team/app:v2")

	recs := byTag(t, waitRecords(t, in, "team/app", id, settled(2)))
	time.Sleep(time.Second) // a record for an accessory would have come with v2's
	recs = byTag(t, waitRecords(t, in, "team/app", id, settled(2)))
	if len(recs) != 2 || recs["v1"] == nil || recs["v2"] == nil {
		t.Fatalf("trigger records %v, want v1 and v2 only", keys(toAny(recs)))
	}
	if hits := rcv.hitsOn("/all"); len(hits) != 2 {
		t.Fatalf("%d deliveries, want 2", len(hits))
	}
	r := in.Admin(t, "GET", "/api/v1/repositories/team/app/tags?page_size=100", nil)
	var tags []string
	for _, it := range r.Items() {
		tags = append(tags, it["tag"].(string))
	}
	if r.Status != 200 || len(tags) != 2 || strings.Contains(strings.Join(tags, ","), ".sig") {
		t.Fatalf("versions %v (%d), want v2 and v1", tags, r.Status)
	}
	if r := in.Admin(t, "GET", "/api/v1/repositories/team/app/tags/sha256-"+hex+".sig", nil); r.Status != 404 {
		t.Fatalf("the signature as a version: %d %s", r.Status, r.Body)
	}
}

func toAny(m map[string]map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range m {
		out[k] = v
	}
	return out
}
