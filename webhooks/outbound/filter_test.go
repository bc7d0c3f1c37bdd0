package outbound

import (
	"errors"
	"strings"
	"testing"
)

func TestFilterValidate(t *testing.T) {
	tags := func(n int) []string {
		var s []string
		for i := 0; i < n; i++ {
			s = append(s, "v"+strings.Repeat("1", i+1))
		}
		return s
	}
	tests := []struct {
		name string
		f    Filter
		msg  string // "" = valid
	}{
		{"zero value is ALL", Filter{}, ""},
		{"ALL", Filter{Type: FilterAll}, ""},
		{"expression", Filter{Type: FilterExpression, Expression: "release-v.*"}, ""},
		{"expression at the limit", Filter{Type: FilterExpression, Expression: strings.Repeat("a", MaxExpressionLength)}, ""},
		{"expression too long", Filter{Type: FilterExpression, Expression: strings.Repeat("a", MaxExpressionLength+1)}, "at most 256"},
		{"expression empty", Filter{Type: FilterExpression}, "needs an expression"},
		{"expression does not compile", Filter{Type: FilterExpression, Expression: "release-(v.*"}, "missing closing )"},
		{"expression unbalanced, valid only once wrapped", Filter{Type: FilterExpression, Expression: "a)|(b"}, "not a valid regular expression"},
		{"perl lookahead is not RE2", Filter{Type: FilterExpression, Expression: "(?!latest).*"}, "not a valid regular expression"},
		{"one tag", Filter{Type: FilterTags, Tags: []string{"latest"}}, ""},
		{"ten tags", Filter{Type: FilterTags, Tags: tags(10)}, ""},
		{"eleven tags", Filter{Type: FilterTags, Tags: tags(11)}, "at most 10 tags; 11 were given"},
		{"no tags", Filter{Type: FilterTags}, "at least one tag"},
		{"invalid tag", Filter{Type: FilterTags, Tags: []string{"latest", "-bad"}}, `tag "-bad" is not a valid image tag`},
		{"tag with slash", Filter{Type: FilterTags, Tags: []string{"a/b"}}, "not a valid image tag"},
		{"tag too long", Filter{Type: FilterTags, Tags: []string{strings.Repeat("a", 129)}}, "not a valid image tag"},
		{"tag at max length", Filter{Type: FilterTags, Tags: []string{strings.Repeat("a", 128)}}, ""},
		{"duplicate tag", Filter{Type: FilterTags, Tags: []string{"a", "a"}}, "listed twice"},
		{"unknown type", Filter{Type: "PREFIX"}, `filter type "PREFIX" is unknown: use ALL, EXPRESSION or TAGS`},
		{"types are upper case", Filter{Type: "tags", Tags: []string{"a"}}, "unknown"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.f.Validate()
			if tt.msg == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidFilter) || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("Validate = %v, want an ErrInvalidFilter containing %q", err, tt.msg)
			}
		})
	}
}

func TestFilterMatch(t *testing.T) {
	tests := []struct {
		f       Filter
		match   []string
		noMatch []string
	}{
		{Filter{}, []string{"latest", "v1", ""}, nil},
		{Filter{Type: FilterAll}, []string{"anything"}, nil},
		{
			Filter{Type: FilterExpression, Expression: "release-v.*"},
			[]string{"release-v1", "release-v", "release-v1.2.3"},
			[]string{"latest", "xrelease-v1", "release-", "Release-v1"},
		},
		{
			Filter{Type: FilterExpression, Expression: "v1|v2"}, // alternation is anchored as a whole
			[]string{"v1", "v2"},
			[]string{"v10", "xv2", "v1v2"},
		},
		{
			Filter{Type: FilterExpression, Expression: `v\d+\.\d+`},
			[]string{"v1.2", "v10.20"},
			[]string{"v1.2.3", "v1x2"},
		},
		{
			Filter{Type: FilterTags, Tags: []string{"latest", "stable"}},
			[]string{"latest", "stable"},
			[]string{"Latest", "latest2", "v1"},
		},
		{Filter{Type: FilterExpression, Expression: "a("}, nil, []string{"a(", "a"}}, // invalid: matches nothing
		{Filter{Type: "BOGUS"}, nil, []string{"latest"}},
	}
	for _, tt := range tests {
		c, cerr := CompileFilter(tt.f)
		for _, tag := range tt.match {
			if !tt.f.Match(tag) {
				t.Errorf("%+v should match %q", tt.f, tag)
			}
			if cerr != nil || !c.Match(tag) {
				t.Errorf("compiled %+v should match %q (%v)", tt.f, tag, cerr)
			}
		}
		for _, tag := range tt.noMatch {
			if tt.f.Match(tag) {
				t.Errorf("%+v should not match %q", tt.f, tag)
			}
			if cerr == nil && c.Match(tag) {
				t.Errorf("compiled %+v should not match %q", tt.f, tag)
			}
		}
	}
}

func TestCompiledFilterKeepsItsOwnTags(t *testing.T) {
	f := Filter{Type: FilterTags, Tags: []string{"latest"}}
	c, err := CompileFilter(f)
	if err != nil {
		t.Fatal(err)
	}
	f.Tags[0] = "other"
	if !c.Match("latest") || c.Type() != FilterTags {
		t.Error("compiled filter changed with its source")
	}
}
