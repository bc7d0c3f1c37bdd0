package gitclone

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"slices"
	"strings"
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

// TestRefAdvertisementCap: a Git server that streams refs without end is cut off at MaxRefAdvertisement with an
// error that says so, instead of filling the API process's memory.
func TestRefAdvertisementCap(t *testing.T) {
	line := func(s string) string { return fmt.Sprintf("%04x%s", len(s)+4, s) }
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasSuffix(r.URL.Path, "/info/refs") {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/x-git-upload-pack-advertisement")
		io.WriteString(w, line("# service=git-upload-pack\n")+"0000")
		io.WriteString(w, line(strings.Repeat("a", 40)+" HEAD\x00multi_ack side-band-64k ofs-delta\n"))
		for i := 0; r.Context().Err() == nil && i < 2*MaxRefAdvertisement/60; i++ {
			if _, err := io.WriteString(w, line(fmt.Sprintf("%040x refs/heads/b%07d\n", i, i))); err != nil {
				return
			}
		}
		io.WriteString(w, "0000")
	}))
	defer srv.Close()
	_, err := ListRefs(testContext(t), srv.URL+"/repo.git", nil, nil)
	if err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("ListRefs of an endless ref list: %v", err)
	}
}
