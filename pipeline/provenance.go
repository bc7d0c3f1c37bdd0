package pipeline

import (
	"cmp"
	"encoding/json"
	"strings"
	"time"

	"github.com/berth-dev/berth/policies/signature"
)

// Provenance is what a verified SLSA provenance attestation says about how an image was built.
type Provenance struct {
	PredicateType string     `json:"predicate_type"`
	GitURL        string     `json:"git_url,omitempty"`
	Commit        string     `json:"commit,omitempty"`
	Dockerfile    string     `json:"dockerfile,omitempty"`
	BuildRule     string     `json:"build_rule,omitempty"`
	Builder       string     `json:"builder,omitempty"`
	StartedAt     *time.Time `json:"started_at,omitempty"`
	FinishedAt    *time.Time `json:"finished_at,omitempty"`
	// KeyID names the key that signed the attestation.
	KeyID string `json:"key_id"`
}

// ProvenanceOf reads the first SLSA provenance among atts (v0.2 as BuildKit writes it, or v1), leniently:
// fields it does not find stay empty. nil when there is none.
func ProvenanceOf(atts []signature.Attestation) *Provenance {
	for _, a := range atts {
		if a.PredicateType != signature.PredicateSLSAProvenance && a.PredicateType != signature.PredicateSLSAProvenanceV1 {
			continue
		}
		var pred map[string]any
		if json.Unmarshal(a.Statement.Predicate, &pred) != nil {
			continue
		}
		p := &Provenance{PredicateType: a.PredicateType, KeyID: a.KeyID}
		// SLSA v0.2 (BuildKit): invocation.configSource {uri, digest, entryPoint}, builder.id,
		// metadata.buildStartedOn / buildFinishedOn.
		src := field(pred, "invocation", "configSource")
		p.GitURL = str(field(src, "uri"))
		p.Commit = firstDigest(field(src, "digest"))
		p.Dockerfile = str(field(src, "entryPoint"))
		p.Builder = str(field(pred, "builder", "id"))
		p.StartedAt = timeOf(field(pred, "metadata", "buildStartedOn"))
		p.FinishedAt = timeOf(field(pred, "metadata", "buildFinishedOn"))
		// SLSA v1: runDetails.builder.id, runDetails.metadata.startedOn / finishedOn, the first resolved
		// dependency as the source.
		if p.Builder == "" {
			p.Builder = str(field(pred, "runDetails", "builder", "id"))
		}
		if p.StartedAt == nil {
			p.StartedAt = timeOf(field(pred, "runDetails", "metadata", "startedOn"))
		}
		if p.FinishedAt == nil {
			p.FinishedAt = timeOf(field(pred, "runDetails", "metadata", "finishedOn"))
		}
		if deps, ok := field(pred, "buildDefinition", "resolvedDependencies").([]any); ok && len(deps) > 0 && p.GitURL == "" {
			p.GitURL = str(field(deps[0], "uri"))
			p.Commit = firstDigest(field(deps[0], "digest"))
		}
		// The Git URL may carry the ref (BuildKit: https://host/repo.git#refs/heads/main).
		if u, _, ok := strings.Cut(p.GitURL, "#"); ok && strings.Contains(u, "://") {
			p.GitURL = u
		}
		// BuildKit's own record of the Git source of a build from a local clone (vcs:source, vcs:revision attrs),
		// and Berth's environment.
		vcs := field(pred, "metadata", "https://mobyproject.org/buildkit@v1#metadata", "vcs")
		if p.GitURL == "" {
			p.GitURL = str(field(vcs, "source"))
		}
		if p.Commit == "" {
			p.Commit = cmp.Or(str(field(vcs, "revision")), str(field(pred, "invocation", "environment", "berth", "commit")))
		}
		// Berth's own fields, wherever it puts them: the build rule, and the commit or source when BuildKit's are absent.
		p.BuildRule = str(find(pred, 5, "build_rule", "buildRule", "rule_id", "ruleId"))
		if p.Commit == "" {
			p.Commit = str(find(pred, 5, "commit", "git_commit", "vcs:revision"))
		}
		if p.GitURL == "" {
			p.GitURL = str(find(pred, 5, "git_url", "gitURL", "vcs:source"))
		}
		return p
	}
	return nil
}

// SBOMOf returns the CycloneDX predicate among atts, nil when there is none.
func SBOMOf(atts []signature.Attestation) json.RawMessage {
	for _, a := range atts {
		if a.PredicateType == signature.PredicateCycloneDX && len(a.Statement.Predicate) > 0 {
			return a.Statement.Predicate
		}
	}
	return nil
}

func field(v any, keys ...string) any {
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

// firstDigest is the value of a digest set ({"sha1": "…"}), preferring sha1 (a Git commit).
func firstDigest(v any) string {
	m, ok := v.(map[string]any)
	if !ok {
		return ""
	}
	if s := str(m["sha1"]); s != "" {
		return s
	}
	for _, x := range m {
		if s := str(x); s != "" {
			return s
		}
	}
	return ""
}

func timeOf(v any) *time.Time {
	t, err := time.Parse(time.RFC3339Nano, str(v))
	if err != nil {
		return nil
	}
	return &t
}

// find looks for the first of names as a key with a string value, breadth first, at most depth levels down.
func find(v any, depth int, names ...string) any {
	level := []any{v}
	for d := 0; d < depth && len(level) > 0; d++ {
		var next []any
		for _, x := range level {
			switch t := x.(type) {
			case map[string]any:
				for _, n := range names {
					if s := str(t[n]); s != "" {
						return s
					}
				}
				for _, c := range t {
					next = append(next, c)
				}
			case []any:
				next = append(next, t...)
			}
		}
		level = next
	}
	return nil
}
