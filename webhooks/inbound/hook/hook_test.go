package hook

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestSplitRef(t *testing.T) {
	tests := []struct {
		ref, typ, name string
		err            error
	}{
		{"refs/heads/main", "branch", "main", nil},
		{"refs/heads/feature/x-1", "branch", "feature/x-1", nil},
		{"refs/tags/v1.2.0", "tag", "v1.2.0", nil},
		{"refs/tags/release-v1", "tag", "release-v1", nil},
		{"refs/heads/ünïcode", "branch", "ünïcode", nil},
		{"refs/notes/commits", "", "", ErrIgnoredEvent},
		{"refs/pull/1/head", "", "", ErrIgnoredEvent},
		{"main", "", "", ErrIgnoredEvent},
		{"", "", "", ErrInvalidPayload},
		{"refs/heads/", "", "", ErrInvalidPayload},
		{"refs/heads/a..b", "", "", ErrInvalidPayload},
		{"refs/heads/a b", "", "", ErrInvalidPayload},
		{"refs/heads/a\x00b", "", "", ErrInvalidPayload},
		{"refs/heads/a~1", "", "", ErrInvalidPayload},
		{"refs/heads/a^", "", "", ErrInvalidPayload},
		{"refs/heads/a:b", "", "", ErrInvalidPayload},
		{"refs/heads/a?", "", "", ErrInvalidPayload},
		{"refs/heads/a*", "", "", ErrInvalidPayload},
		{"refs/heads/a[", "", "", ErrInvalidPayload},
		{"refs/heads/a\\b", "", "", ErrInvalidPayload},
		{"refs/heads/a@{1}", "", "", ErrInvalidPayload},
		{"refs/heads/@", "", "", ErrInvalidPayload},
		{"refs/heads/a//b", "", "", ErrInvalidPayload},
		{"refs/heads/a/", "", "", ErrInvalidPayload},
		{"refs/heads/a.", "", "", ErrInvalidPayload},
		{"refs/heads/.hidden", "", "", ErrInvalidPayload},
		{"refs/heads/x/.y", "", "", ErrInvalidPayload},
		{"refs/heads/x.lock", "", "", ErrInvalidPayload},
		{"refs/heads/-rf", "", "", ErrInvalidPayload},
		{"refs/heads/\xff", "", "", ErrInvalidPayload},
		{"refs/tags/" + strings.Repeat("a", 1025), "", "", ErrInvalidPayload},
	}
	for _, tt := range tests {
		typ, name, err := SplitRef(tt.ref)
		if tt.err != nil {
			if !errors.Is(err, tt.err) {
				t.Errorf("SplitRef(%q) err = %v, want %v", tt.ref, err, tt.err)
			}
			continue
		}
		if err != nil || typ != tt.typ || name != tt.name {
			t.Errorf("SplitRef(%q) = %q, %q, %v; want %q, %q", tt.ref, typ, name, err, tt.typ, tt.name)
		}
	}
}

func TestParseSHA(t *testing.T) {
	sha1 := "9F2C1A7BE04D8E51C3A6F0B2D7E94C18A5B3F6E0"
	sha256 := strings.Repeat("ab", 32)
	for in, want := range map[string]string{
		"":                      "",
		strings.Repeat("0", 40): "",
		strings.Repeat("0", 64): "",
		sha1:                    strings.ToLower(sha1),
		sha256:                  sha256,
	} {
		got, err := ParseSHA("after", in)
		if err != nil || got != want {
			t.Errorf("ParseSHA(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"abc", strings.Repeat("g", 40), strings.Repeat("a", 41), "-" + strings.Repeat("a", 39)} {
		if _, err := ParseSHA("after", in); !errors.Is(err, ErrInvalidPayload) {
			t.Errorf("ParseSHA(%q) err = %v, want ErrInvalidPayload", in, err)
		}
	}
}

func TestRefUpdateEvent(t *testing.T) {
	z := strings.Repeat("0", 40)
	a := strings.Repeat("a", 40)
	ev, err := RefUpdate{Provider: "p", DeliveryID: "d", Ref: "refs/heads/main", Before: z, After: a, Pusher: "  bob\x1b[31m\u202e "}.Event()
	if err != nil {
		t.Fatal(err)
	}
	if ev.Before != "" || ev.Commit != a || ev.Deleted || ev.Pusher != "bob[31m" {
		t.Errorf("created: %+v", ev)
	}
	ev, err = RefUpdate{Ref: "refs/tags/v1", Before: a, After: z}.Event()
	if err != nil || !ev.Deleted || ev.Commit != "" || ev.Before != a {
		t.Errorf("deleted: %+v, %v", ev, err)
	}
	ev, err = RefUpdate{Ref: "refs/tags/v1", Before: a, After: "", Deleted: true}.Event()
	if err != nil || !ev.Deleted {
		t.Errorf("deleted flag: %+v, %v", ev, err)
	}
	if _, err = (RefUpdate{Ref: "refs/tags/v1", After: z[:38] + "1"}).Event(); !errors.Is(err, ErrInvalidPayload) {
		t.Errorf("short after: %v", err)
	}
	ev, _ = RefUpdate{Ref: "refs/heads/m", After: a, CloneURL: "https://x/\r\nInjected: 1"}.Event()
	if ev.CloneURL != "" {
		t.Errorf("clone URL with control characters kept: %q", ev.CloneURL)
	}
}

func TestCleanText(t *testing.T) {
	s := CleanText(strings.Repeat("é", 200)+"\xff", 257)
	if !utf8.ValidString(s) || len(s) > 257 {
		t.Errorf("CleanText gave %d bytes, valid=%v", len(s), utf8.ValidString(s))
	}
}

func TestCheckToken(t *testing.T) {
	if err := CheckToken("s3cret", "s3cret"); err != nil {
		t.Error(err)
	}
	for _, c := range [][2]string{{"", "s3cret"}, {"s3cre", "s3cret"}, {"s3cret", ""}, {"", ""}} {
		if err := CheckToken(c[0], c[1]); !errors.Is(err, ErrBadSignature) {
			t.Errorf("CheckToken(%q, %q) = %v", c[0], c[1], err)
		}
	}
}

func TestDeliveryID(t *testing.T) {
	h := http.Header{}
	h.Set("B", "second")
	if got := DeliveryID(h, nil, "A", "B"); got != "second" {
		t.Errorf("got %q", got)
	}
	h.Set("A", strings.Repeat("x", 500))
	if got := DeliveryID(h, nil, "A"); !strings.HasPrefix(got, "sha256:") || len(got) != 71 {
		t.Errorf("long id not hashed: %q", got)
	}
	if a, b := DeliveryID(nil, []byte("x"), "A"), DeliveryID(nil, []byte("y"), "A"); a == b || !strings.HasPrefix(a, "sha256:") {
		t.Errorf("body fallback: %q %q", a, b)
	}
}
