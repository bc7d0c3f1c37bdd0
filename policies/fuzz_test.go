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

// FuzzEvaluate: a compiled Set decides exactly as the definition says (Deny if a Deny statement matches,
// else Allow if an Allow statement does, else ImplicitDeny; actions folded, resources not), whether the
// requested action takes the precomputed fast path (a canonically spelled Berth action) or not.
func FuzzEvaluate(f *testing.F) {
	f.Add("cr:Get*", "cr:PullRepository", "acs:cr:*:*:repository/juzhong/*", "*", uint8(2), uint8(0), "", "acs:cr:cn-hangzhou:1:repository/juzhong/nginx")
	f.Add("cr:*", "*", "acs:cr:cn-hangzhou:*:repository/juzhong/nginx", "acs:cr:*:*:repository/juzhong", uint8(5), uint8(200), "CR:getrepository", "acs:cr:cn-hangzhou:1:repository/juzhong")
	f.Add("cr:Delete*", "cr:?ushRepository", "acs:cr:*:*:repository/prod/*", "acs:cr:*:*:repository/*", uint8(1), uint8(16), "", "acs:cr:x:1:repository/prod/api")
	f.Fuzz(func(t *testing.T, a1, a2, r1, r2 string, effects, actIdx uint8, freeAction, resource string) {
		for _, s := range []string{a1, a2, r1, r2, freeAction, resource} {
			if len(s) > 64 {
				return
			}
		}
		effect := func(bit uint8) Effect {
			if effects&bit != 0 {
				return EffectDeny
			}
			return EffectAllow
		}
		doc := &Document{Version: Version, Statement: []Statement{
			{Effect: effect(1), Action: []string{a1}, Resource: []string{r1}},
			{Effect: effect(2), Action: []string{a1, a2}, Resource: []string{r2}},
			{Effect: effect(4), Action: []string{a2}, Resource: []string{r1, r2}},
		}}
		action := freeAction
		if int(actIdx) < len(AllActions) {
			action = AllActions[actIdx]
		} else if int(actIdx)-128 >= 0 && int(actIdx)-128 < len(AllActions) {
			action = asciiLower(AllActions[actIdx-128]) // a known action, not canonically spelled
		}
		req := Request{Action: action, Resource: resource}
		want := ImplicitDeny
		for _, st := range doc.Statement {
			am, rm := false, false
			for _, a := range st.Action {
				am = am || refMatch(a, req.Action, true)
			}
			for _, r := range st.Resource {
				rm = rm || refMatch(r, req.Resource, false)
			}
			if am && rm {
				if st.Effect == EffectDeny {
					want = Deny
					break
				}
				want = Allow
			}
		}
		if got := Compile(doc).Evaluate(req); got != want {
			t.Fatalf("Evaluate(%+v) on %+v = %v, want %v", req, doc.Statement, got, want)
		}
	})
}
