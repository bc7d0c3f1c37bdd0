package pipeline

import (
	"encoding/json"
	"testing"

	"github.com/berth-dev/berth/policies/signature"
)

func TestProvenanceOf(t *testing.T) {
	// As BuildKit writes SLSA v0.2 (mode=max, trimmed), with a field Berth adds.
	buildkit := `{"builder":{"id":"https://berth.example/builders/eu-1"},"buildType":"https://mobyproject.org/buildkit@v1",
	 "invocation":{"configSource":{"uri":"https://git.example/team/app.git#refs/heads/main","digest":{"sha1":"0123abcd"},"entryPoint":"Dockerfile"},
	  "parameters":{"frontend":"dockerfile.v0"},"environment":{"platform":"linux/amd64","berth":{"build_rule":"rule-7"}}},
	 "metadata":{"buildStartedOn":"2026-12-01T10:00:00.5Z","buildFinishedOn":"2026-12-01T10:01:00Z","completeness":{}}}`
	v1 := `{"buildDefinition":{"buildType":"x","resolvedDependencies":[{"uri":"git+https://git.example/x.git","digest":{"gitCommit":"beef"}}]},
	 "runDetails":{"builder":{"id":"b1"},"metadata":{"startedOn":"2026-12-01T10:00:00Z"}}}`
	att := func(pt, pred string) signature.Attestation {
		return signature.Attestation{PredicateType: pt, KeyID: "k", Statement: signature.Statement{PredicateType: pt, Predicate: json.RawMessage(pred)}}
	}
	p := ProvenanceOf([]signature.Attestation{att(signature.PredicateCycloneDX, `{"bomFormat":"CycloneDX"}`), att(signature.PredicateSLSAProvenance, buildkit)})
	if p == nil || p.GitURL != "https://git.example/team/app.git" || p.Commit != "0123abcd" || p.Dockerfile != "Dockerfile" ||
		p.Builder != "https://berth.example/builders/eu-1" || p.BuildRule != "rule-7" || p.StartedAt == nil || p.FinishedAt == nil ||
		p.FinishedAt.Sub(*p.StartedAt).Seconds() != 59.5 || p.KeyID != "k" {
		t.Fatalf("v0.2: %+v", p)
	}
	p = ProvenanceOf([]signature.Attestation{att(signature.PredicateSLSAProvenanceV1, v1)})
	if p == nil || p.GitURL != "git+https://git.example/x.git" || p.Commit != "beef" || p.Builder != "b1" || p.StartedAt == nil {
		t.Fatalf("v1: %+v", p)
	}
	// What a Berth build attests: BuildKit built a local clone, so the Git source is in its vcs metadata.
	berth := `{"builder":{"id":"http://berth"},"invocation":{"configSource":{"entryPoint":"Dockerfile"},
	  "environment":{"berth":{"commit":"c0ffee","rule_id":"r1"}}},
	 "metadata":{"https://mobyproject.org/buildkit@v1#metadata":{"vcs":{"source":"https://git.example/a.git","revision":"c0ffee"}}}}`
	p = ProvenanceOf([]signature.Attestation{att(signature.PredicateSLSAProvenance, berth)})
	if p == nil || p.GitURL != "https://git.example/a.git" || p.Commit != "c0ffee" || p.BuildRule != "r1" || p.Dockerfile != "Dockerfile" {
		t.Fatalf("Berth's build: %+v", p)
	}
	if p := ProvenanceOf([]signature.Attestation{att(signature.PredicateSLSAProvenance, `"not an object"`)}); p != nil {
		t.Fatalf("malformed: %+v", p)
	}
	if s := SBOMOf([]signature.Attestation{att(signature.PredicateCycloneDX, `{"bomFormat":"CycloneDX"}`)}); string(s) != `{"bomFormat":"CycloneDX"}` {
		t.Fatalf("SBOM: %s", s)
	}
}
