package github

import (
	"errors"
	"net/http"
	"net/url"
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

func headers(event, delivery string) http.Header {
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set("User-Agent", "GitHub-Hookshot/8f6c3a1")
	h.Set(HeaderEvent, event)
	if delivery != "" {
		h.Set(HeaderDelivery, delivery)
	}
	h.Set("X-GitHub-Hook-ID", "512345678")
	return h
}

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		file    string
		event   string
		want    *hook.PushEvent
		wantErr error
	}{
		{
			name: "branch push", file: "push.json", event: "push",
			want: &hook.PushEvent{
				Ref: "refs/heads/main", RefType: "branch", Name: "main",
				Commit:     "9f2c1a7be04d8e51c3a6f0b2d7e94c18a5b3f6e0",
				Before:     "3b8e2f6d1c0a9e7b5d4c3a2f1e0d9c8b7a6f5e4d",
				Pusher:     "ada-lovelace",
				DeliveryID: "d1f0c6a0-1a2b-11f1-8e3c-5d6f7a8b9c0d",
				Provider:   "github",
				CloneURL:   "https://github.com/berth-dev/hello-app.git",
			},
		},
		{
			name: "annotated tag push builds the commit, not the tag object", file: "push_tag.json", event: "push",
			want: &hook.PushEvent{
				Ref: "refs/tags/v1.2.0", RefType: "tag", Name: "v1.2.0",
				Commit:     "9f2c1a7be04d8e51c3a6f0b2d7e94c18a5b3f6e0",
				Pusher:     "ada-lovelace",
				DeliveryID: "d1f0c6a0-1a2b-11f1-8e3c-5d6f7a8b9c0d",
				Provider:   "github",
				CloneURL:   "https://github.com/berth-dev/hello-app.git",
			},
		},
		{
			name: "deleted branch", file: "push_deleted.json", event: "push",
			want: &hook.PushEvent{
				Ref: "refs/heads/feature/old-ui", RefType: "branch", Name: "feature/old-ui",
				Before:     "7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9c8b",
				Pusher:     "ada-lovelace",
				Deleted:    true,
				DeliveryID: "d1f0c6a0-1a2b-11f1-8e3c-5d6f7a8b9c0d",
				Provider:   "github",
				CloneURL:   "https://github.com/berth-dev/hello-app.git",
			},
		},
		{name: "ping is ignored", file: "ping.json", event: "ping", wantErr: hook.ErrIgnoredEvent},
		{name: "other events are ignored", file: "push.json", event: "create", wantErr: hook.ErrIgnoredEvent},
		{name: "missing event header", file: "push.json", event: "", wantErr: hook.ErrInvalidPayload},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(headers(tt.event, "d1f0c6a0-1a2b-11f1-8e3c-5d6f7a8b9c0d"), fixture(t, tt.file))
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

func TestParseFormEncoded(t *testing.T) {
	body := []byte("payload=" + url.QueryEscape(string(fixture(t, "push.json"))))
	h := headers("push", "abc")
	h.Set("Content-Type", "application/x-www-form-urlencoded")
	got, err := Parse(h, body)
	if err != nil {
		t.Fatal(err)
	}
	if got.Commit != "9f2c1a7be04d8e51c3a6f0b2d7e94c18a5b3f6e0" || got.Name != "main" {
		t.Errorf("got %+v", got)
	}
}

func TestParseNoDeliveryHeaderHashesBody(t *testing.T) {
	body := fixture(t, "push.json")
	a, err := Parse(headers("push", ""), body)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Parse(headers("push", ""), body)
	if a.DeliveryID == "" || a.DeliveryID != b.DeliveryID {
		t.Errorf("delivery ids %q, %q: want equal and non-empty", a.DeliveryID, b.DeliveryID)
	}
}

func TestParseRejects(t *testing.T) {
	for name, body := range map[string]string{
		"not json":        `{"ref":`,
		"bad commit":      `{"ref":"refs/heads/main","before":"0000000000000000000000000000000000000000","after":"zzzz"}`,
		"no commit":       `{"ref":"refs/heads/main","before":"0000000000000000000000000000000000000000","after":""}`,
		"bad branch name": `{"ref":"refs/heads/a..b","after":"9f2c1a7be04d8e51c3a6f0b2d7e94c18a5b3f6e0"}`,
		"option-like":     `{"ref":"refs/heads/--upload-pack=x","after":"9f2c1a7be04d8e51c3a6f0b2d7e94c18a5b3f6e0"}`,
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := Parse(headers("push", "x"), []byte(body)); !errors.Is(err, hook.ErrInvalidPayload) {
				t.Errorf("err = %v, want ErrInvalidPayload", err)
			}
		})
	}
	body := `{"ref":"refs/notes/commits","after":"9f2c1a7be04d8e51c3a6f0b2d7e94c18a5b3f6e0"}`
	if _, err := Parse(headers("push", "x"), []byte(body)); !errors.Is(err, hook.ErrIgnoredEvent) {
		t.Errorf("notes ref: err = %v, want ErrIgnoredEvent", err)
	}
}

func TestVerify(t *testing.T) {
	body := fixture(t, "push.json")
	const secret = "It's a Secret to Everybody"
	good := "sha256=" + hook.Sign(secret, body)
	tests := []struct {
		name   string
		header string
		secret string
		body   []byte
		ok     bool
	}{
		{"valid", good, secret, body, true},
		{"upper-case hex", "sha256=" + upper(hook.Sign(secret, body)), secret, body, true},
		{"missing", "", secret, body, false},
		{"wrong secret", good, "other", body, false},
		{"tampered body", good, secret, append([]byte(" "), body...), false},
		{"sha1 prefix", "sha1=" + hook.Sign(secret, body), secret, body, false},
		{"no prefix", hook.Sign(secret, body), secret, body, false},
		{"truncated", good[:len(good)-2], secret, body, false},
		{"not hex", "sha256=zz", secret, body, false},
		{"empty secret refuses everything", "sha256=" + hook.Sign("", body), "", body, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := headers("push", "x")
			if tt.header != "" {
				h.Set(HeaderSignature, tt.header)
			}
			err := Verify(h, tt.body, tt.secret)
			if tt.ok && err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if !tt.ok && !errors.Is(err, hook.ErrBadSignature) {
				t.Fatalf("err = %v, want ErrBadSignature", err)
			}
		})
	}
}

// The example from GitHub's "Validating webhook deliveries" documentation.
func TestVerifyGitHubDocumentedExample(t *testing.T) {
	h := http.Header{}
	h.Set(HeaderSignature, "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17")
	if err := Verify(h, []byte("Hello, World!"), "It's a Secret to Everybody"); err != nil {
		t.Fatal(err)
	}
}

func upper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'a' <= c && c <= 'f' {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}
