package outbound

import (
	"errors"
	"fmt"
	"regexp"
	"regexp/syntax"
	"slices"
)

// Filter types.
const (
	FilterAll        = "ALL"
	FilterExpression = "EXPRESSION"
	FilterTags       = "TAGS"
)

// Filter limits.
const (
	MaxFilterTags       = 10
	MaxExpressionLength = 256
)

// ErrInvalidFilter is wrapped by every error Filter.Validate returns.
var ErrInvalidFilter = errors.New("trigger filter is not valid")

// tagPattern is the OCI distribution spec's tag grammar.
var tagPattern = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$`)

// Filter chooses which pushed tags fire a trigger.
type Filter struct {
	// Type is FilterAll (also when empty), FilterExpression or FilterTags.
	Type string `json:"type"`
	// Expression is a Go (RE2) regular expression the whole tag must match,
	// e.g. "release-v.*"; for FilterExpression only.
	Expression string `json:"expression,omitempty"`
	// Tags lists 1 to MaxFilterTags exact tags; for FilterTags only.
	Tags []string `json:"tags,omitempty"`
}

func filterErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidFilter, fmt.Sprintf(format, args...))
}

// Validate checks the filter as it is saved.
func (f Filter) Validate() error {
	_, err := CompileFilter(f)
	return err
}

// Match reports whether tag fires a trigger with this filter; an invalid
// filter matches nothing. It compiles the expression on every call: compile
// once with CompileFilter to match many tags.
func (f Filter) Match(tag string) bool {
	c, err := CompileFilter(f)
	return err == nil && c.Match(tag)
}

// CompiledFilter is a validated Filter, ready to match tags. It is safe for
// concurrent use.
type CompiledFilter struct {
	typ  string
	re   *regexp.Regexp
	tags []string
}

// CompileFilter validates f and prepares it for matching.
func CompileFilter(f Filter) (*CompiledFilter, error) {
	switch f.Type {
	case "", FilterAll:
		return &CompiledFilter{typ: FilterAll}, nil
	case FilterExpression:
		if f.Expression == "" {
			return nil, filterErr("an EXPRESSION filter needs an expression, like release-v.*")
		}
		if len(f.Expression) > MaxExpressionLength {
			return nil, filterErr("the expression is %d characters long: at most %d are allowed", len(f.Expression), MaxExpressionLength)
		}
		// Compile it alone first: wrapped in ^(?:…)$, an unbalanced
		// expression like "a)|(b" would compile to something else.
		if _, err := regexp.Compile(f.Expression); err != nil {
			return nil, filterErr("expression %q is not a valid regular expression: %v", f.Expression, regexpReason(err))
		}
		re, err := regexp.Compile(`^(?:` + f.Expression + `)$`)
		if err != nil {
			return nil, filterErr("expression %q is not a valid regular expression: %v", f.Expression, regexpReason(err))
		}
		return &CompiledFilter{typ: FilterExpression, re: re}, nil
	case FilterTags:
		if len(f.Tags) == 0 {
			return nil, filterErr("a TAGS filter needs at least one tag")
		}
		if len(f.Tags) > MaxFilterTags {
			return nil, filterErr("a TAGS filter holds at most %d tags; %d were given", MaxFilterTags, len(f.Tags))
		}
		for i, tag := range f.Tags {
			if !tagPattern.MatchString(tag) {
				return nil, filterErr("tag %q is not a valid image tag: tags are 1-128 letters, digits, '_', '.' or '-', not starting with '.' or '-'", tag)
			}
			if slices.Contains(f.Tags[:i], tag) {
				return nil, filterErr("tag %q is listed twice", tag)
			}
		}
		return &CompiledFilter{typ: FilterTags, tags: slices.Clone(f.Tags)}, nil
	}
	return nil, filterErr("filter type %q is unknown: use ALL, EXPRESSION or TAGS", f.Type)
}

// regexpReason keeps the useful part of a regexp error: "missing closing )"
// rather than "error parsing regexp: missing closing ): `a(`".
func regexpReason(err error) string {
	var se *syntax.Error
	if errors.As(err, &se) {
		return string(se.Code)
	}
	return err.Error()
}

// Type returns FilterAll, FilterExpression or FilterTags.
func (c *CompiledFilter) Type() string { return c.typ }

// Match reports whether tag fires the trigger. EXPRESSION filters match the
// whole tag: release-v.* matches release-v1 but not xrelease-v1.
func (c *CompiledFilter) Match(tag string) bool {
	switch c.typ {
	case FilterExpression:
		return c.re.MatchString(tag)
	case FilterTags:
		return slices.Contains(c.tags, tag)
	}
	return true
}
