package policies

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// FuzzParse: Parse never panics, every error is a *ValidationError wrapping
// ErrInvalidPolicy, and an accepted document validates, marshals, and parses
// back to the same JSON.
func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		`{"Version":"1","Statement":[{"Effect":"Allow","Action":"cr:PullRepository","Resource":["acs:cr:*:*:repository/juzhong/*"]}]}`,
		`{"Version":"1","Statement":[{"Effect":"Deny","Action":["cr:Get*","cr:List*"],"Resource":"*"}]}`,
		`{"Version":"1","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}`,
		`{"Version":"1","Statement":[{"Effect":"Allow","Action":"cr:*","Resource":"acs:cr:cn-hangzhou:*:repository/juzhong/nginx"}]}`,
		`{"Version":"1","Statement":[{"Effect":"Allow","Action":"ram:CreateUser","Resource":"*"}]}`,
		`{"Version":"2","Statement":[]}`,
		`{"version":"1"}`,
		`{"Version":"1","Statement":[{"Effect":"Allow","Action":[1],"Resource":null}]}`,
		`[]`, `null`, `"x"`, ``, `{`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		doc, err := Parse(data)
		if err != nil {
			var ve *ValidationError
			if !errors.As(err, &ve) || !errors.Is(err, ErrInvalidPolicy) {
				t.Fatalf("error %v (%T) is not a *ValidationError wrapping ErrInvalidPolicy", err, err)
			}
			return
		}
		if err := doc.Validate(); err != nil {
			t.Fatalf("parsed document does not validate: %v", err)
		}
		out, err := json.Marshal(doc)
		if err != nil {
			t.Fatalf("marshal: %v", err)
		}
		doc2, err := Parse(out)
		if err != nil {
			t.Fatalf("re-parse of %s: %v", out, err)
		}
		out2, _ := json.Marshal(doc2)
		if string(out) != string(out2) {
			t.Fatalf("not stable:\n%s\n%s", out, out2)
		}
		// Compiling and evaluating an accepted document must not panic either.
		Compile(doc).Evaluate(Request{Action: ActionPullRepository, Resource: RepositoryResource("cn-hangzhou", "1", "ns", "repo")})
	})
}

// FuzzMatch: the compiled matcher never panics and agrees with the reference
// definition; a pattern without wildcards matches only itself (modulo letter
// case when folding); "*" matches anything.
func FuzzMatch(f *testing.F) {
	seeds := []struct{ p, s string }{
		{"*", ""},
		{"cr:Get*", "cr:GetRepository"},
		{"acs:cr:*:*:repository/juzhong/*", "acs:cr:cn-hangzhou:123:repository/juzhong/nginx"},
		{"acs:cr:*:*:repository/juzhong/*", "acs:cr:cn-hangzhou:123:repository/juzhong"},
		{"a*b?c*d", "aXXbYcZZd"},
		{"a*a", "a"},
		{"??*", "é"},
		{"", ""},
	}
	for _, s := range seeds {
		f.Add(s.p, s.s, false)
		f.Add(s.p, s.s, true)
	}
	f.Fuzz(func(t *testing.T, p, s string, fold bool) {
		// Policy strings are at most MaxStringLength; keep the quadratic
		// reference matcher cheap.
		if len(p) > MaxStringLength || len(s) > MaxStringLength {
			return
		}
		cp := compilePattern(p, fold)
		got := cp.match(s)
		if want := refMatch(p, s, fold); got != want {
			t.Fatalf("match(%q, %q, fold=%v) = %v, reference says %v", p, s, fold, got, want)
		}
		if !strings.ContainsAny(p, "*?") {
			same := p == s || fold && len(p) == len(s) && asciiLower(p) == asciiLower(s)
			if got != same {
				t.Fatalf("literal %q vs %q (fold=%v): match = %v", p, s, fold, got)
			}
			if !cp.match(p) {
				t.Fatalf("literal %q does not match itself", p)
			}
		}
		star := compilePattern("*", fold)
		if !star.match(s) {
			t.Fatalf("* does not match %q", s)
		}
	})
}
