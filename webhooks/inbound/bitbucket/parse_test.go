package bitbucket

import (
	"errors"
	"net/http"
	"os"
	"path/filepath"
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

const requestUUID = "0f5a3c2e-8b1d-4e7f-a9c6-2d4b6e8f0a13"

func headers(event string) http.Header {
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set("User-Agent", "Bitbucket-Webhooks/2.0")
	h.Set(HeaderEventKey, event)
	h.Set(HeaderHookUUID, "{e2d4f6a8-0b1c-4d3e-8f5a-7b9c1d3e5f70}")
	h.Set(HeaderRequestUUID, requestUUID)
	h.Set("X-Attempt-Number", "1")
	return h
}

func TestParse(t *testing.T) {
	const clone = "https://bitbucket.org/acme-team/checkout-web.git"
	const head = "c0ffee5b3e2a1d9f8e7c6b5a4d3c2b1a0f9e8d7c"
	const prev = "5e2c9a1f7b3d4e6a8c0b2d4f6a8c0e2b4d6f8a0c"
	tests := []struct {
		name    string
		file    string
		event   string
		want    []hook.PushEvent
		wantErr error
	}{
		{
			name: "branch push", file: "push.json", event: EventRepoPush,
			want: []hook.PushEvent{{
				Ref: "refs/heads/main", RefType: "branch", Name: "main", Commit: head, Before: prev,
				Pusher: "mhamilton", DeliveryID: requestUUID, Provider: "bitbucket", CloneURL: clone,
			}},
		},
		{
			name: "annotated tag created", file: "push_tag.json", event: EventRepoPush,
			want: []hook.PushEvent{{
				Ref: "refs/tags/v5.0.2", RefType: "tag", Name: "v5.0.2", Commit: head,
				Pusher: "mhamilton", DeliveryID: requestUUID, Provider: "bitbucket", CloneURL: clone,
			}},
		},
		{
			name: "deleted branch (new is null)", file: "push_deleted.json", event: EventRepoPush,
			want: []hook.PushEvent{{
				Ref: "refs/heads/hotfix/tax", RefType: "branch", Name: "hotfix/tax", Before: prev, Deleted: true,
				Pusher: "mhamilton", DeliveryID: requestUUID, Provider: "bitbucket", CloneURL: clone,
			}},
		},
		{
			name: "branch and tag in one delivery", file: "push_multi.json", event: EventRepoPush,
			want: []hook.PushEvent{
				{
					Ref: "refs/heads/main", RefType: "branch", Name: "main", Commit: head, Before: prev,
					Pusher: "mhamilton", DeliveryID: requestUUID, Provider: "bitbucket", CloneURL: clone,
				},
				{
					Ref: "refs/tags/v5.0.2", RefType: "tag", Name: "v5.0.2", Commit: head,
					Pusher: "mhamilton", DeliveryID: requestUUID + "#2", Provider: "bitbucket", CloneURL: clone,
				},
			},
		},
		{name: "other events ignored", file: "push.json", event: "repo:commit_status_updated", wantErr: hook.ErrIgnoredEvent},
		{name: "missing event key", file: "push.json", event: "", wantErr: hook.ErrInvalidPayload},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := headers(tt.event)
			body := fixture(t, tt.file)
			got, err := ParseAll(h, body)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("%d events, want %d", len(got), len(tt.want))
			}
			for i := range got {
				if *got[i] != tt.want[i] {
					t.Errorf("event %d:\ngot  %+v\nwant %+v", i, *got[i], tt.want[i])
				}
			}
			first, err := Parse(h, body)
			if err != nil || *first != tt.want[0] {
				t.Errorf("Parse = %+v, %v; want the first change", first, err)
			}
		})
	}
}

func TestParseEdgeCases(t *testing.T) {
	for name, tc := range map[string]struct {
		body string
		err  error
	}{
		"no changes":         {`{"push":{"changes":[]}}`, hook.ErrIgnoredEvent},
		"bookmark only":      {`{"push":{"changes":[{"old":null,"new":{"type":"bookmark","name":"x","target":{"hash":"c0ffee5b3e2a1d9f8e7c6b5a4d3c2b1a0f9e8d7c"}}}]}}`, hook.ErrIgnoredEvent},
		"neither old or new": {`{"push":{"changes":[{"old":null,"new":null}]}}`, hook.ErrInvalidPayload},
		"new without hash":   {`{"push":{"changes":[{"old":null,"new":{"type":"branch","name":"x","target":{}}}]}}`, hook.ErrInvalidPayload},
		"not an object":      {`[]`, hook.ErrInvalidPayload},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := ParseAll(headers(EventRepoPush), []byte(tc.body)); !errors.Is(err, tc.err) {
				t.Errorf("err = %v, want %v", err, tc.err)
			}
		})
	}
}

func TestDeliveryIDIgnoresHookUUID(t *testing.T) {
	h := headers(EventRepoPush)
	h.Del(HeaderRequestUUID)
	a, err := Parse(h, fixture(t, "push.json"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Parse(h, fixture(t, "push_tag.json"))
	if a.DeliveryID == b.DeliveryID || a.DeliveryID == h.Get(HeaderHookUUID) {
		t.Errorf("distinct deliveries share id %q (hook uuid must not be a delivery id)", a.DeliveryID)
	}
}

func TestVerify(t *testing.T) {
	body := fixture(t, "push.json")
	const secret = "bb-webhook-secret"
	// Recorded, not computed by the code under test: `openssl dgst -sha256 -hmac bb-webhook-secret
	// fixtures/push.json`, run once.
	const sig = "sha256=74281a732d23d14319c8e7c4d4df9e7d7017fec41ac5559da833efaea3ce175b"
	for _, tt := range []struct {
		name, header, value string
		ok                  bool
	}{
		{"x-hub-signature", HeaderSignature, sig, true},
		{"x-hub-signature-256", HeaderSignature256, sig, true},
		{"wrong", HeaderSignature, "sha256=" + hook.Sign("nope", body), false},
		{"sha1 form", HeaderSignature, "sha1=" + sig[len("sha256="):], false},
		{"missing", "", "", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := headers(EventRepoPush)
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
