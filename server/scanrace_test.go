package server_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/berth-dev/berth/server/app"
	"github.com/berth-dev/berth/server/app/apptest"
)

// TestSameDigestManyTags pushes one image to twenty tags at the same moment, twenty times over, on an instance
// without a vulnerability DB (every scan ends FAILED within milliseconds, the default path): each tag must get
// exactly one trigger record every time. A push whose waiter is added after the scan worker took its copy of
// the waiters used to be left waiting for ever (issue 14).
func TestSameDigestManyTags(t *testing.T) {
	const rounds, tags = 20, 20
	in, _ := deliveryInstance(t)
	rcv := newReceiver(t)
	auth := remote.WithAuth(&authn.Basic{Username: "admin", Password: apptest.AdminPassword})
	start := time.Now()
	for round := range rounds {
		roundStart := time.Now()
		repo := fmt.Sprintf("team/same%02d", round)
		createRepo(t, in, "team", fmt.Sprintf("same%02d", round), "PRIVATE")
		trigger, _ := createTrigger(t, in, repo, map[string]any{"name": "all", "url": rcv.URL + "/all"})
		img, err := random.Image(64, 1)
		if err != nil {
			t.Fatal(err)
		}
		// The blobs go first, so the twenty manifest PUTs (the pushes' last step) meet.
		writeBlobs(t, in.Host+"/"+repo, img, auth)
		repoRef, err := name.NewRepository(in.Host+"/"+repo, name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		digest, _ := img.Digest()
		var wg sync.WaitGroup
		errs := make(chan error, tags)
		for i := range tags {
			wg.Go(func() {
				if err := remote.Put(repoRef.Tag(fmt.Sprintf("t%02d", i)), img, auth); err != nil {
					errs <- err
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatalf("round %d: push: %v", round, err)
		}
		recs := byTag(t, waitRecords(t, in, repo, trigger, settled(tags)))
		if len(recs) != tags {
			t.Fatalf("round %d: %d records, want %d: %v", round, len(recs), tags, recs)
		}
		for i := range tags {
			rec := recs[fmt.Sprintf("t%02d", i)]
			if rec == nil || rec["status"] != "TRIGGERED" || rec["digest"] != digest.String() {
				t.Fatalf("round %d: record of t%02d: %v", round, i, rec)
			}
		}
		t.Logf("round %d: %d tags, one record each, in %s", round, tags, time.Since(roundStart).Round(time.Millisecond))
	}
	// Nothing fires twice: one delivery per tag and round.
	time.Sleep(200 * time.Millisecond)
	if n := len(rcv.hitsOn("/all")); n != rounds*tags {
		t.Errorf("receiver got %d deliveries, want %d", n, rounds*tags)
	}
	t.Logf("%d rounds of %d concurrent pushes of one digest: %s", rounds, tags, time.Since(start).Round(time.Millisecond))
}

// TestTwentyBuildsOfOneCommit: one push builds one commit by twenty rules into twenty tags at once, in one
// process, round after round: each tag gets exactly one trigger record every time (TestScaleOut does the same
// across replicas and workers).
func TestTwentyBuildsOfOneCommit(t *testing.T) {
	bk := buildkitAddr(t)
	in := apptest.Start(t, apptest.Options{Configure: func(c *app.Config) {
		c.BuildkitAddr = bk
		c.TriggerAllow = []string{"127.0.0.0/8"}
		c.TriggerRetryBase = 100 * time.Millisecond
	}})
	allowBuilds(t, in.Host)
	if r := in.Admin(t, "POST", "/api/v1/namespaces", map[string]any{"name": "team"}); r.Status != 201 {
		t.Fatalf("namespace: %s", r.Body)
	}
	one := func(int) *apptest.Instance { return in }
	twentyBuilds(t, newReceiver(t), 3, one, func(_ int, url string) string { return url })
}
