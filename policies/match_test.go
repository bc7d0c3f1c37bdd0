package policies

import "testing"

// refMatch is the textbook dynamic-programming definition of wildcard
// matching, against which the compiled matcher is checked (here and in
// FuzzMatch). After processing p[i:], next[j] says whether p[i+1:] matches
// s[j:] and cur[j] whether p[i:] does.
func refMatch(p, s string, fold bool) bool {
	next := make([]bool, len(s)+1)
	cur := make([]bool, len(s)+1)
	next[len(s)] = true
	for i := len(p) - 1; i >= 0; i-- {
		for j := len(s); j >= 0; j-- {
			switch {
			case p[i] == '*':
				cur[j] = next[j] || j < len(s) && cur[j+1]
			case j == len(s):
				cur[j] = false
			default:
				cur[j] = (p[i] == '?' || p[i] == s[j] || fold && lower(p[i]) == lower(s[j])) && next[j+1]
			}
		}
		next, cur = cur, next
	}
	return next[0]
}

func TestPatternMatch(t *testing.T) {
	tests := []struct {
		pattern, s string
		fold       bool
		want       bool
	}{
		{"*", "", false, true},
		{"*", "anything:at/all", false, true},
		{"**", "x", false, true},
		{"", "", false, true},
		{"", "x", false, false},
		{"abc", "abc", false, true},
		{"abc", "abcd", false, false},
		{"abc", "ABC", false, false},
		{"abc", "ABC", true, true},
		{"cr:*", "cr:PullRepository", true, true},
		{"cr:*", "ram:CreateUser", true, false},
		{"cr:*", "cr:", true, true},
		{"cr:get*", "cr:GetRepository", true, true},
		{"cr:Get*", "cr:ListRepository", true, false},
		{"cr:Get*", "cr:Ge", true, false},
		{"cr:*Repository", "cr:PullRepository", true, true},
		{"cr:*Repository", "cr:PullRepositoryTag", true, false},
		{"cr:*Repository*", "cr:ListRepositoryTag", true, true},
		{"cr:?etBuild", "cr:GetBuild", true, true},
		{"cr:?etBuild", "cr:etBuild", true, false},
		{"acs:cr:*:*:repository/juzhong/*", "acs:cr:cn-hangzhou:123:repository/juzhong/nginx", false, true},
		{"acs:cr:*:*:repository/juzhong/*", "acs:cr:cn-hangzhou:123:repository/juzhong", false, false},
		{"acs:cr:*:*:repository/juzhong/*", "acs:cr:cn-hangzhou:123:repository/juzhong2/nginx", false, false},
		{"acs:cr:*:*:repository/juzhong", "acs:cr:cn-hangzhou:123:repository/juzhong", false, true},
		{"acs:cr:*:*:repository/juzhong", "acs:cr:cn-hangzhou:123:repository/juzhong/nginx", false, false},
		{"acs:cr:cn-hangzhou:*:repository/juzhong/nginx", "acs:cr:cn-hangzhou:123:repository/juzhong/nginx", false, true},
		{"acs:cr:cn-hangzhou:*:repository/juzhong/nginx", "acs:cr:cn-shanghai:123:repository/juzhong/nginx", false, false},
		{"acs:cr:*:*:repository/Juzhong/*", "acs:cr:cn-hangzhou:123:repository/juzhong/nginx", false, false},
		{"a*b*c", "abc", false, true},
		{"a*b*c", "aXbYc", false, true},
		{"a*b*c", "acb", false, false},
		{"a*ab", "aab", false, true}, // last segment anchored, not greedy
		{"a*a", "a", false, false},   // first and last must not overlap
		{"*a?c*", "xxabcxx", false, true},
		{"*A?C*", "xxabcxx", true, true},
		{"*A?C*", "xxabcxx", false, false},
		{"?", "", false, false},
		{"??", "ab", false, true},
		{"a*?", "a", false, false},
		{"a*?", "ab", false, true},
	}
	for _, tt := range tests {
		p := compilePattern(tt.pattern, tt.fold)
		if got := p.match(tt.s); got != tt.want {
			t.Errorf("match(%q, %q, fold=%v) = %v, want %v", tt.pattern, tt.s, tt.fold, got, tt.want)
		}
		if ref := refMatch(tt.pattern, tt.s, tt.fold); ref != tt.want {
			t.Errorf("refMatch(%q, %q, fold=%v) = %v, want %v (bad test)", tt.pattern, tt.s, tt.fold, ref, tt.want)
		}
	}
}
