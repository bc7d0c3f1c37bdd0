package pipeline

import (
	"errors"
	"fmt"
	"path"
	"regexp"
	"slices"
	"strings"

	"github.com/berth-dev/berth/registry/reference"
	"github.com/berth-dev/berth/store"
	"github.com/berth-dev/berth/webhooks/inbound/hook"
)

// Build rule limits.
const (
	MaxSourceRef      = 255
	MaxImageTag       = 128
	MaxDockerfilePath = 255
	MaxBuildArgs      = 50
	MaxBuildArgValue  = 4096
	MaxPlatforms      = 8
	DefaultImageTag   = "latest"
	DefaultDockerfile = "Dockerfile"
)

// Errors callers branch on; the messages say what to change.
var (
	// ErrInvalidRule wraps every reason CheckRule refuses a rule.
	ErrInvalidRule = errors.New("invalid build rule")
	// ErrBadImageTag: a rule's image_tag does not give a valid tag for a ref.
	ErrBadImageTag = errors.New("invalid image tag")
)

// ReservedBuildArgPrefix starts the build argument names BuildKit reads as its own options; rules may not set
// them (in any case).
const ReservedBuildArgPrefix = "BUILDKIT_"

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidRule, fmt.Sprintf(format, args...))
}

// RefMatcher decides whether a branch or tag name matches a rule's source_ref: the exact name, or else, when
// source_ref uses regular-expression syntax, the whole name against it. Named groups ((?<version>…), or Go's
// (?P<version>…)) become variables for the rule's image_tag.
type RefMatcher struct {
	exact string
	re    *regexp.Regexp // nil for a plain name
}

// CompileRef compiles a rule's source_ref (RE2 syntax: matching takes linear time whatever the input).
func CompileRef(sourceRef string) (*RefMatcher, error) {
	switch {
	case sourceRef == "":
		return nil, invalid("source_ref is required: a branch or tag name, or a regular expression like release-v(?<version>.*)")
	case len(sourceRef) > MaxSourceRef:
		return nil, invalid("source_ref is %d bytes; at most %d are allowed", len(sourceRef), MaxSourceRef)
	case strings.ContainsFunc(sourceRef, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		return nil, invalid("source_ref must not contain control characters")
	}
	m := &RefMatcher{exact: sourceRef}
	if regexp.QuoteMeta(sourceRef) == sourceRef {
		if err := hook.CheckRefName(sourceRef); err != nil {
			return nil, invalid("source_ref: %s", strings.TrimPrefix(err.Error(), hook.ErrInvalidPayload.Error()+": "))
		}
		return m, nil
	}
	// Go's regexp accepts (?<name>…) as well as (?P<name>…).
	re, err := regexp.Compile(`^(?:` + sourceRef + `)$`)
	if err != nil {
		return nil, invalid("source_ref %q is neither a valid branch or tag name nor a valid regular expression: %v", sourceRef, err)
	}
	m.re = re
	return m, nil
}

// IsPattern reports whether the matcher is a regular expression (so "build now" needs a concrete name).
func (m *RefMatcher) IsPattern() bool { return m.re != nil }

// Groups returns the names of the pattern's named groups.
func (m *RefMatcher) Groups() []string {
	if m.re == nil {
		return nil
	}
	var out []string
	for _, n := range m.re.SubexpNames() {
		if n != "" {
			out = append(out, n)
		}
	}
	return out
}

// Match reports whether name matches, with the values of the named groups.
func (m *RefMatcher) Match(name string) (vars map[string]string, ok bool) {
	if name == m.exact {
		return map[string]string{}, true
	}
	if m.re == nil {
		return nil, false
	}
	sub := m.re.FindStringSubmatch(name)
	if sub == nil {
		return nil, false
	}
	vars = map[string]string{}
	for i, n := range m.re.SubexpNames() {
		if n != "" {
			vars[n] = sub[i]
		}
	}
	return vars, true
}

var tagVarRE = regexp.MustCompile(`\$\{([^}]*)\}`)

// ExpandTag replaces every ${name} of an image_tag template with vars[name] and checks that the result is a
// valid image tag.
func ExpandTag(tmpl string, vars map[string]string) (string, error) {
	var missing []string
	out := tagVarRE.ReplaceAllStringFunc(tmpl, func(v string) string {
		name := v[2 : len(v)-1]
		val, ok := vars[name]
		if !ok {
			missing = append(missing, name)
		}
		return val
	})
	if len(missing) > 0 {
		return "", fmt.Errorf("%w: image_tag %q uses ${%s}, which source_ref does not capture", ErrBadImageTag, tmpl, missing[0])
	}
	if !reference.ValidTag(out) {
		return "", fmt.Errorf("%w: image_tag %q gives %q, which is not a valid image tag (1-128 of A-Z a-z 0-9 _ . -, not starting with . or -)", ErrBadImageTag, tmpl, out)
	}
	return out, nil
}

var (
	buildArgRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,127}$`)
	targetRE   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`)
	platformRE = regexp.MustCompile(`^[a-z0-9]{1,32}/[a-z0-9_]{1,32}(/[a-z0-9]{1,16})?$`)
)

// CheckRule validates a rule before it is saved and fills its defaults: dockerfile_dir "/" (kept as a clean
// path from the repository root), dockerfile_name "Dockerfile", image_tag "latest".
func CheckRule(r *store.BuildRule) error {
	if r.SourceType != store.RuleBranch && r.SourceType != store.RuleTag {
		return invalid("source_type must be %s or %s, got %q", store.RuleBranch, store.RuleTag, r.SourceType)
	}
	m, err := CompileRef(r.SourceRef)
	if err != nil {
		return err
	}

	dir := r.DockerfileDir
	if len(dir) > MaxDockerfilePath || strings.ContainsAny(dir, "\\\x00") {
		return invalid("dockerfile_dir must be a path of at most %d bytes under the repository root, like / or /docker", MaxDockerfilePath)
	}
	if slices.Contains(strings.Split(dir, "/"), "..") {
		return invalid("dockerfile_dir %q must stay inside the repository: no '..'", dir)
	}
	r.DockerfileDir = path.Clean("/" + dir)

	if r.DockerfileName == "" {
		r.DockerfileName = DefaultDockerfile
	}
	if n := r.DockerfileName; len(n) > MaxDockerfilePath || strings.ContainsAny(n, "/\\\x00") || n == "." || n == ".." {
		return invalid("dockerfile_name %q must be a file name in dockerfile_dir (no '/'), like Dockerfile or Dockerfile.prod", n)
	}

	if r.ImageTag == "" {
		r.ImageTag = DefaultImageTag
	}
	if len(r.ImageTag) > MaxImageTag {
		return invalid("image_tag is %d bytes; at most %d are allowed", len(r.ImageTag), MaxImageTag)
	}
	sample := map[string]string{}
	for _, g := range m.Groups() {
		sample[g] = "x"
	}
	if _, err := ExpandTag(r.ImageTag, sample); err != nil {
		return invalid("%s", strings.TrimPrefix(err.Error(), ErrBadImageTag.Error()+": "))
	}

	if len(r.BuildArgs) > MaxBuildArgs {
		return invalid("%d build_args; at most %d are allowed", len(r.BuildArgs), MaxBuildArgs)
	}
	for k, v := range r.BuildArgs {
		if !buildArgRE.MatchString(k) {
			return invalid("build_args name %q must be a letter or '_' then letters, digits or '_' (at most 128)", k)
		}
		if strings.HasPrefix(strings.ToUpper(k), ReservedBuildArgPrefix) {
			return invalid("build_args name %q is reserved: names starting with %s configure BuildKit itself (cache-mount namespace, inline cache, frontend), which Berth sets", k, ReservedBuildArgPrefix)
		}
		if len(v) > MaxBuildArgValue || strings.ContainsRune(v, 0) {
			return invalid("build_args %s must be at most %d bytes of text", k, MaxBuildArgValue)
		}
	}
	if r.Target != "" && !targetRE.MatchString(r.Target) {
		return invalid("target %q is not a stage name (letters, digits, '_', '.', '-')", r.Target)
	}
	if len(r.Platforms) > MaxPlatforms {
		return invalid("%d platforms; at most %d are allowed", len(r.Platforms), MaxPlatforms)
	}
	seen := map[string]bool{}
	for _, p := range r.Platforms {
		if !platformRE.MatchString(p) {
			return invalid("platform %q must be os/arch or os/arch/variant, like linux/amd64 or linux/arm/v7", p)
		}
		if seen[p] {
			return invalid("platform %q is listed twice", p)
		}
		seen[p] = true
	}
	return nil
}

// RuleRefType maps a rule's source_type to the ref type of push events.
func RuleRefType(sourceType string) string {
	if sourceType == store.RuleTag {
		return hook.RefTypeTag
	}
	return hook.RefTypeBranch
}
