package gitlab

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

func headers(event string) http.Header {
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set("User-Agent", "GitLab/17.9.2")
	h.Set("X-Gitlab-Instance", "https://gitlab.example.com")
	h.Set("X-Gitlab-Webhook-UUID", "1b8c6f4e-3a0d-4b7e-9d2c-7e5f3a1c9b20")
	h.Set(HeaderEventUUID, "7e1d9c3a-5b2f-4e6d-8a0c-1f3e5d7b9a42")
	if event != "" {
		h.Set(HeaderEvent, event)
	}
	return h
}

func TestParse(t *testing.T) {
	const clone = "https://gitlab.example.com/platform/payments-api.git"
	const delivery = "7e1d9c3a-5b2f-4e6d-8a0c-1f3e5d7b9a42"
	tests := []struct {
		name    string
		file    string
		event   string
		want    *hook.PushEvent
		wantErr error
	}{
		{
			name: "branch push", file: "push.json", event: EventPush,
			want: &hook.PushEvent{
				Ref: "refs/heads/main", RefType: "branch", Name: "main",
				Commit: "e83c5163316f89bfbde7d9ab23ca2e25604af290", Before: "95790bf891e76fee5e1747ab589903a6a1f80f22",
				Pusher: "ghopper", DeliveryID: delivery, Provider: "gitlab", CloneURL: clone,
			},
		},
		{
			name: "annotated tag push builds checkout_sha", file: "tag_push.json", event: EventTagPush,
			want: &hook.PushEvent{
				Ref: "refs/tags/release-v2.4.1", RefType: "tag", Name: "release-v2.4.1",
				Commit: "e83c5163316f89bfbde7d9ab23ca2e25604af290",
				Pusher: "ghopper", DeliveryID: delivery, Provider: "gitlab", CloneURL: clone,
			},
		},
		{
			name: "deleted branch", file: "push_deleted.json", event: EventPush,
			want: &hook.PushEvent{
				Ref: "refs/heads/spike/queue", RefType: "branch", Name: "spike/queue",
				Before: "da1560886d4f094c3e6c9ef40349f7d38b5d27d7", Deleted: true,
				Pusher: "ghopper", DeliveryID: delivery, Provider: "gitlab", CloneURL: clone,
			},
		},
		{
			name: "deleted tag", file: "tag_deleted.json", event: EventTagPush,
			want: &hook.PushEvent{
				Ref: "refs/tags/release-v2.4.0-rc1", RefType: "tag", Name: "release-v2.4.0-rc1",
				Before: "7a1f9c4d2e3b5a6c8d9e0f1a2b3c4d5e6f7a8b9c", Deleted: true,
				Pusher: "ghopper", DeliveryID: delivery, Provider: "gitlab", CloneURL: clone,
			},
		},
		{
			name: "system hook push", file: "push.json", event: EventSystem,
			want: &hook.PushEvent{
				Ref: "refs/heads/main", RefType: "branch", Name: "main",
				Commit: "e83c5163316f89bfbde7d9ab23ca2e25604af290", Before: "95790bf891e76fee5e1747ab589903a6a1f80f22",
				Pusher: "ghopper", DeliveryID: delivery, Provider: "gitlab", CloneURL: clone,
			},
		},
		{name: "merge request ignored", file: "merge_request.json", event: "Merge Request Hook", wantErr: hook.ErrIgnoredEvent},
		{name: "system hook merge request ignored", file: "merge_request.json", event: EventSystem, wantErr: hook.ErrIgnoredEvent},
		{name: "tag payload under push header", file: "tag_push.json", event: EventPush, wantErr: hook.ErrInvalidPayload},
		{name: "push payload under tag header", file: "push.json", event: EventTagPush, wantErr: hook.ErrInvalidPayload},
		{name: "missing event header", file: "push.json", event: "", wantErr: hook.ErrInvalidPayload},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(headers(tt.event), fixture(t, tt.file))
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if *got != *tt.want {
				t.Errorf("got  %+v\nwant %+v", *got, *tt.want)
			}
		})
	}
}

func TestParseBranchRefUnderTagKindRefused(t *testing.T) {
	body := []byte(`{"object_kind":"tag_push","ref":"refs/heads/main","after":"e83c5163316f89bfbde7d9ab23ca2e25604af290"}`)
	if _, err := Parse(headers(EventTagPush), body); !errors.Is(err, hook.ErrInvalidPayload) {
		t.Errorf("err = %v", err)
	}
}

func TestDeliveryIDPrefersIdempotencyKey(t *testing.T) {
	h := headers(EventPush)
	h.Set(HeaderIdempotencyKey, "908a6d9e-45fd-46c8-97e6-c4f350f219dd")
	got, err := Parse(h, fixture(t, "push.json"))
	if err != nil {
		t.Fatal(err)
	}
	if got.DeliveryID != "908a6d9e-45fd-46c8-97e6-c4f350f219dd" {
		t.Errorf("delivery id %q", got.DeliveryID)
	}
}

func TestVerify(t *testing.T) {
	body := fixture(t, "push.json")
	for _, tt := range []struct {
		name, token, secret string
		ok                  bool
	}{
		{"match", "glwht-3c1f", "glwht-3c1f", true},
		{"mismatch", "glwht-3c1e", "glwht-3c1f", false},
		{"prefix of secret", "glwht-3c1", "glwht-3c1f", false},
		{"missing", "", "glwht-3c1f", false},
		{"no secret configured", "", "", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := headers(EventPush)
			if tt.token != "" {
				h.Set(HeaderToken, tt.token)
			}
			err := Verify(h, body, tt.secret)
			if tt.ok != (err == nil) || (!tt.ok && !errors.Is(err, hook.ErrBadSignature)) {
				t.Errorf("Verify = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}
