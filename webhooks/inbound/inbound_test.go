package inbound

import (
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/berth-dev/berth/webhooks/inbound/hook"
)

const secret = "per-repository-secret"

// delivery builds a signed request the way each provider sends it.
func delivery(t *testing.T, provider, file string) (http.Header, []byte) {
	t.Helper()
	body, err := os.ReadFile(filepath.Join(provider, "fixtures", file))
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	sig := hook.Sign(secret, body)
	switch provider {
	case "github":
		h.Set("X-GitHub-Event", "push")
		h.Set("X-GitHub-Delivery", "gh-1")
		h.Set("X-Hub-Signature-256", "sha256="+sig)
	case "gitlab":
		h.Set("X-Gitlab-Event", "Push Hook")
		h.Set("X-Gitlab-Event-UUID", "gl-1")
		h.Set("X-Gitlab-Token", secret)
	case "gitea":
		h.Set("X-Gitea-Event", "push")
		h.Set("X-Gitea-Delivery", "gt-1")
		h.Set("X-Gitea-Signature", sig)
	case "bitbucket":
		h.Set("X-Event-Key", "repo:push")
		h.Set("X-Request-UUID", "bb-1")
		h.Set("X-Hub-Signature", "sha256="+sig)
	case "generic":
		h.Set("X-Berth-Delivery", "gn-1")
		h.Set("X-Berth-Signature", "sha256="+sig)
	}
	return h, body
}

func TestDispatch(t *testing.T) {
	want := map[string]string{"github": "gh-1", "gitlab": "gl-1", "gitea": "gt-1", "bitbucket": "bb-1", "generic": "gn-1"}
	if !slices.Equal(Providers, []string{"github", "gitlab", "gitea", "bitbucket", "generic"}) {
		t.Fatalf("Providers = %v", Providers)
	}
	for _, p := range Providers {
		t.Run(p, func(t *testing.T) {
			h, body := delivery(t, p, "push.json")
			if err := Verify(p, h, body, secret); err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if err := Verify(p, h, body, "another repository's secret"); !errors.Is(err, ErrBadSignature) {
				t.Fatalf("Verify with the wrong secret: %v", err)
			}
			ev, err := Parse(p, h, body)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if ev.Provider != p || ev.DeliveryID != want[p] || ev.RefType != RefTypeBranch || ev.Commit == "" || ev.Deleted {
				t.Errorf("event %+v", ev)
			}
			all, err := ParseAll(p, h, body)
			if err != nil || len(all) != 1 || *all[0] != *ev {
				t.Errorf("ParseAll = %v, %v", all, err)
			}
		})
	}
}

func TestDispatchDeleted(t *testing.T) {
	for _, p := range Providers {
		h, body := delivery(t, p, "push_deleted.json")
		ev, err := Parse(p, h, body)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if !ev.Deleted || ev.Commit != "" {
			t.Errorf("%s: deleted ref parsed as %+v", p, ev)
		}
	}
}

func TestParseAllBitbucketBatch(t *testing.T) {
	h, body := delivery(t, "bitbucket", "push_multi.json")
	evs, err := ParseAll("bitbucket", h, body)
	if err != nil || len(evs) != 2 || evs[1].RefType != RefTypeTag {
		t.Fatalf("ParseAll = %v, %v", evs, err)
	}
}

func TestIgnoredEvent(t *testing.T) {
	h, body := delivery(t, "github", "ping.json")
	h.Set("X-GitHub-Event", "ping")
	if err := Verify("github", h, body, secret); err != nil {
		t.Fatal(err)
	}
	if _, err := ParseAll("github", h, body); !errors.Is(err, ErrIgnoredEvent) {
		t.Errorf("ping: %v", err)
	}
}

func TestUnknownProvider(t *testing.T) {
	for _, name := range []string{"", "GitHub", "svn", "forgejo "} {
		if err := Verify(name, nil, nil, secret); !errors.Is(err, ErrUnknownProvider) {
			t.Errorf("Verify(%q) = %v", name, err)
		}
		if _, err := Parse(name, nil, nil); !errors.Is(err, ErrUnknownProvider) {
			t.Errorf("Parse(%q) = %v", name, err)
		}
		if _, err := ParseAll(name, nil, nil); !errors.Is(err, ErrUnknownProvider) {
			t.Errorf("ParseAll(%q) = %v", name, err)
		}
	}
}

func TestParseRefusesOversizedBody(t *testing.T) {
	h, _ := delivery(t, "generic", "push.json")
	big := make([]byte, MaxBody+1)
	if _, err := Parse("generic", h, big); !errors.Is(err, ErrInvalidPayload) {
		t.Errorf("Parse: %v", err)
	}
	if _, err := ParseAll("generic", h, big); !errors.Is(err, ErrInvalidPayload) {
		t.Errorf("ParseAll: %v", err)
	}
}
