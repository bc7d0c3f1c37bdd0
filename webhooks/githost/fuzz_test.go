package githost

import (
	"net/http"
	"testing"
)

// FuzzAnswers: whatever a host sends back in an error body or a Link header, reading it never panics, the
// message stays bounded, and a next page is never below 1.
func FuzzAnswers(f *testing.F) {
	f.Add([]byte(`{"message":"Bad credentials"}`), `<https://api.github.com/user/repos?page=2>; rel="next"`)
	f.Add([]byte(`{"type":"error","error":{"message":"Invalid credentials"}}`), `<x?page=0>; rel="next", <y?page=9>; rel="last"`)
	f.Add([]byte(`{"message":{"base":["x"]},"errors":[1,2]}`), `garbage;;rel=next`)
	f.Fuzz(func(t *testing.T, body []byte, link string) {
		if msg := hostMessage(body); len(msg) > 300+len("…") {
			t.Fatalf("message of %d bytes", len(msg))
		}
		h := http.Header{}
		h.Add("Link", link)
		if n := linkNext(h); n < 0 {
			t.Fatalf("next page %d", n)
		}
	})
}
