package gitclone

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"testing"

	"github.com/berth-dev/berth/webhooks/outbound"
)

// TestListRefs asks a real git http-backend (with basic auth) for its branches and tags.
func TestListRefs(t *testing.T) {
	root := t.TempDir()
	newFixture(t, root, "repo", false)
	base := newGitServer(t, root, "bob", "s3cret")
	url := base + "/repo.git"

	refs, err := ListRefs(testContext(t), url, &Credentials{Username: "bob", Password: "s3cret"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(refs.Branches, []string{"feature", "main"}) || !slices.Equal(refs.Tags, []string{"light", "v1"}) || refs.Truncated {
		t.Fatalf("ListRefs = %+v", refs)
	}
	if _, err := ListRefs(testContext(t), url, &Credentials{Username: "bob", Password: "wrong"}, nil); !errors.Is(err, ErrAuth) {
		t.Fatalf("wrong password: %v, want ErrAuth", err)
	}
	// The guard confines it as it does a clone.
	if _, err := ListRefs(testContext(t), url, &Credentials{Username: "bob", Password: "s3cret"}, &outbound.Guard{Flag: SourceAllowFlag}); !errors.Is(err, outbound.ErrRefused) {
		t.Fatalf("through a guard that refuses loopback: %v", err)
	}
	// An empty repository has no refs, which is no error.
	if out, err := exec.Command("git", "init", "-q", "--bare", root+"/empty.git").CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	empty, err := ListRefs(testContext(t), base+"/empty.git", &Credentials{Username: "bob", Password: "s3cret"}, nil)
	if err != nil || len(empty.Branches)+len(empty.Tags) != 0 {
		t.Fatalf("empty repository: %+v, %v", empty, err)
	}
}

// TestListRefsCap: more than MaxRefs tags are cut to MaxRefs, and the answer says so.
func TestListRefsCap(t *testing.T) {
	root := t.TempDir()
	f := newFixture(t, root, "repo", false)
	var packed []byte
	for i := range MaxRefs + 5 {
		packed = fmt.Appendf(packed, "%s refs/tags/t%04d\n", f.c1, i)
	}
	pf, err := os.OpenFile(f.bare+"/packed-refs", os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pf.Write(packed); err != nil {
		t.Fatal(err)
	}
	pf.Close()
	refs, err := ListRefs(testContext(t), "file://"+f.bare, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(refs.Tags) != MaxRefs || !refs.Truncated || len(refs.Branches) != 2 {
		t.Fatalf("tags %d, truncated %v, branches %v", len(refs.Tags), refs.Truncated, refs.Branches)
	}
}
