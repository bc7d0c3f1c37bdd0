package generic

import (
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berth-dev/berth/webhooks/inbound/hook"
)

func fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("fixtures", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParse(t *testing.T) {
	h := http.Header{}
	h.Set(HeaderDelivery, "hook-42")
	tests := []struct {
		file string
		want hook.PushEvent
	}{
		{"push.json", hook.PushEvent{
			Ref: "refs/heads/main", RefType: "branch", Name: "main",
			Commit: "2b4d6f8a0c2e4a6c8e0b2d4f6a8c0e2a4c6e8b0d", Before: "8a1f3c5e7b9d0f2a4c6e8b0d2f4a6c8e0b2d4f6a",
			Pusher: "deploy-bot", DeliveryID: "hook-42", Provider: "generic",
		}},
		{"push_tag.json", hook.PushEvent{
			Ref: "refs/tags/release-v7", RefType: "tag", Name: "release-v7",
			Commit: "2b4d6f8a0c2e4a6c8e0b2d4f6a8c0e2a4c6e8b0d", Pusher: "alice", DeliveryID: "hook-42", Provider: "generic",
		}},
		{"push_deleted.json", hook.PushEvent{
			Ref: "refs/heads/old", RefType: "branch", Name: "old", Before: "8a1f3c5e7b9d0f2a4c6e8b0d2f4a6c8e0b2d4f6a",
			Deleted: true, Pusher: "alice", DeliveryID: "hook-42", Provider: "generic",
		}},
		{"push_sha256.json", hook.PushEvent{
			Ref: "refs/heads/main", RefType: "branch", Name: "main",
			Commit:     strings.ToLower("3E7A9C1B5D2F4A6C8E0B2D4F6A8C0E2B4D6F8A0C2E4A6C8E0B2D4F6A8C0E2B4D"),
			DeliveryID: "hook-42", Provider: "generic",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			got, err := Parse(h, fixture(t, tt.file))
			if err != nil {
				t.Fatal(err)
			}
			if *got != tt.want {
				t.Errorf("got  %+v\nwant %+v", *got, tt.want)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	h := http.Header{}
	for name, tc := range map[string]struct {
		body string
		err  error
	}{
		"empty body":        {``, hook.ErrInvalidPayload},
		"missing ref":       {`{"after":"2b4d6f8a0c2e4a6c8e0b2d4f6a8c0e2a4c6e8b0d"}`, hook.ErrInvalidPayload},
		"short ref":         {`{"ref":"main","after":"2b4d6f8a0c2e4a6c8e0b2d4f6a8c0e2a4c6e8b0d"}`, hook.ErrIgnoredEvent},
		"missing after":     {`{"ref":"refs/heads/main"}`, hook.ErrInvalidPayload},
		"abbreviated after": {`{"ref":"refs/heads/main","after":"2b4d6f8"}`, hook.ErrInvalidPayload},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := Parse(h, []byte(tc.body)); !errors.Is(err, tc.err) {
				t.Errorf("err = %v, want %v", err, tc.err)
			}
		})
	}
	h.Set(HeaderEvent, "ping")
	if _, err := Parse(h, fixture(t, "push.json")); !errors.Is(err, hook.ErrIgnoredEvent) {
		t.Errorf("ping: %v", err)
	}
}

func TestDeliveryFallsBackToBodyHash(t *testing.T) {
	body := fixture(t, "push.json")
	ev, err := Parse(http.Header{}, body)
	if err != nil {
		t.Fatal(err)
	}
	if ev.DeliveryID != hook.DeliveryID(nil, body) || !strings.HasPrefix(ev.DeliveryID, "sha256:") {
		t.Errorf("delivery id %q", ev.DeliveryID)
	}
}

func TestVerify(t *testing.T) {
	body := fixture(t, "push.json")
	const secret = "generic-secret"
	// Recorded, not computed by the code under test: `openssl dgst -sha256 -hmac generic-secret
	// fixtures/push.json`, run once.
	const sig = "sha256=1f1b667831ff0e2466ae731acdb925d8cab4769db98517920095dabd104e1711"
	for _, tt := range []struct {
		name, header, value string
		ok                  bool
	}{
		{"x-berth-signature", HeaderSignature, sig, true},
		{"x-hub-signature-256", HeaderHubSignature256, sig, true},
		{"wrong", HeaderSignature, "sha256=" + hook.Sign("x", body), false},
		{"bare hex", HeaderSignature, sig[len("sha256="):], false},
		{"missing", "", "", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			if tt.header != "" {
				h.Set(tt.header, tt.value)
			}
			err := Verify(h, body, secret)
			if tt.ok != (err == nil) || (!tt.ok && !errors.Is(err, hook.ErrBadSignature)) {
				t.Errorf("Verify = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}
