package security

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/policies/signature"
)

var now = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

func at(d time.Duration) *time.Time { t := now.Add(d); return &t }

func vuln(id, severity, fixed string) Vulnerability {
	return Vulnerability{ID: id, Package: "pkg", InstalledVersion: "1.0", FixedVersion: fixed, Severity: severity}
}

// One of each severity, all fixable, plus an unfixed HIGH.
var sample = []Vulnerability{
	vuln("CVE-0001", "CRITICAL", "1.1"),
	vuln("CVE-0002", "HIGH", "1.1"),
	vuln("CVE-0003", "HIGH", ""),
	vuln("CVE-0004", "MEDIUM", "1.1"),
	vuln("CVE-0005", "LOW", "1.1"),
	vuln("CVE-0006", "UNKNOWN", "1.1"),
}

func TestEvaluate(t *testing.T) {
	tests := []struct {
		name    string
		policy  Policy
		status  string
		vulns   []Vulnerability
		blocked bool
		counted Summary
		reason  string // substring; "" means Reason must be empty
	}{
		{"default never blocks", Default(), ScanDone, sample, false, Summary{}, ""},
		{"zero policy never blocks", Policy{}, ScanDone, sample, false, Summary{}, ""},
		{"NONE never blocks", Policy{BlockSeverity: SeverityNone}, ScanDone, sample, false, Summary{}, ""},
		{"LOW counts low and above", Policy{BlockSeverity: SeverityLow}, ScanDone, sample, true,
			Summary{High: 3, Medium: 1, Low: 1},
			"blocked by security policy (block_severity=LOW): 3 high, 1 medium, 1 low vulnerabilities; allowlist a CVE or fix the image"},
		{"MEDIUM counts medium and above", Policy{BlockSeverity: SeverityMedium}, ScanDone, sample, true,
			Summary{High: 3, Medium: 1}, "(block_severity=MEDIUM): 3 high, 1 medium vulnerabilities;"},
		{"HIGH counts high and critical", Policy{BlockSeverity: SeverityHigh}, ScanDone, sample, true,
			Summary{High: 3}, "(block_severity=HIGH): 3 high vulnerabilities;"},
		{"CRITICAL counts only critical", Policy{BlockSeverity: SeverityCritical}, ScanDone, sample, true,
			Summary{High: 1}, "(block_severity=CRITICAL): 1 critical vulnerability;"},
		{"below threshold does not block", Policy{BlockSeverity: SeverityHigh}, ScanDone,
			[]Vulnerability{vuln("CVE-1", "MEDIUM", "2"), vuln("CVE-2", "LOW", "2")}, false, Summary{}, ""},
		{"CRITICAL ignores high", Policy{BlockSeverity: SeverityCritical}, ScanDone,
			[]Vulnerability{vuln("CVE-1", "HIGH", "2")}, false, Summary{}, ""},
		{"UNKNOWN never counts, even at LOW", Policy{BlockSeverity: SeverityLow}, ScanDone,
			[]Vulnerability{vuln("CVE-1", "UNKNOWN", "2"), vuln("CVE-2", "", "2"), vuln("CVE-3", "NEGLIGIBLE", "2")}, false, Summary{}, ""},
		{"severity case does not matter", Policy{BlockSeverity: SeverityHigh}, ScanDone,
			[]Vulnerability{vuln("CVE-1", "high", "2")}, true, Summary{High: 1}, "1 high vulnerability;"},
		{"no vulnerabilities", Policy{BlockSeverity: SeverityLow}, ScanDone, nil, false, Summary{}, ""},
		{"only fixable skips unfixed", Policy{BlockSeverity: SeverityHigh, OnlyFixable: true}, ScanDone, sample, true,
			Summary{High: 2}, "(block_severity=HIGH, only_fixable): 2 high fixable vulnerabilities;"},
		{"only fixable, nothing fixable", Policy{BlockSeverity: SeverityLow, OnlyFixable: true}, ScanDone,
			[]Vulnerability{vuln("CVE-1", "CRITICAL", ""), vuln("CVE-2", "HIGH", "  ")}, false, Summary{}, ""},
		{"allowlist removes", Policy{BlockSeverity: SeverityHigh, Allowlist: []AllowEntry{{ID: "CVE-0001"}, {ID: "cve-0002"}}}, ScanDone, sample, true,
			Summary{High: 1}, "1 high vulnerability;"},
		{"allowlist clears block", Policy{BlockSeverity: SeverityCritical, Allowlist: []AllowEntry{{ID: "CVE-0001", ExpiresAt: at(time.Hour)}}}, ScanDone, sample, false,
			Summary{}, ""},
		{"expired allowlist entry counts again", Policy{BlockSeverity: SeverityCritical, Allowlist: []AllowEntry{{ID: "CVE-0001", ExpiresAt: at(-time.Second)}}}, ScanDone, sample, true,
			Summary{High: 1}, "1 critical vulnerability;"},
		{"entry expiring exactly now counts", Policy{BlockSeverity: SeverityCritical, Allowlist: []AllowEntry{{ID: "CVE-0001", ExpiresAt: at(0)}}}, ScanDone, sample, true,
			Summary{High: 1}, "1 critical"},
		{"not scanned, not blocking", Policy{BlockSeverity: SeverityLow}, ScanNotScanned, sample, false, Summary{}, ""},
		{"not scanned, blocking", Policy{BlockSeverity: SeverityNone, BlockUnscanned: true}, ScanNotScanned, nil, true, Summary{}, "has not been scanned"},
		{"scanning, blocking", Policy{BlockUnscanned: true}, ScanScanning, nil, true, Summary{}, "has not been scanned"},
		{"failed, blocking", Policy{BlockUnscanned: true}, ScanFailed, nil, true, Summary{}, "scan failed"},
		{"failed, not blocking", Policy{BlockSeverity: SeverityLow}, ScanFailed, sample, false, Summary{}, ""},
		{"unknown status is unscanned", Policy{BlockUnscanned: true}, "", nil, true, Summary{}, "has not been scanned"},
		{"scanned and clean with block_unscanned", Policy{BlockSeverity: SeverityHigh, BlockUnscanned: true}, ScanDone,
			[]Vulnerability{vuln("CVE-1", "LOW", "")}, false, Summary{}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Evaluate(tt.policy, tt.status, tt.vulns, now)
			if got.Blocked != tt.blocked || got.Counted != tt.counted {
				t.Errorf("got Blocked=%v Counted=%+v, want %v %+v", got.Blocked, got.Counted, tt.blocked, tt.counted)
			}
			if tt.reason == "" && got.Reason != "" || !strings.Contains(got.Reason, tt.reason) {
				t.Errorf("Reason = %q, want it to contain %q", got.Reason, tt.reason)
			}
		})
	}
}

func TestSummarize(t *testing.T) {
	got := Summarize(sample)
	if want := (Summary{High: 3, Medium: 1, Low: 1, Unrated: 1}); got != want {
		t.Errorf("Summarize = %+v, want %+v", got, want)
	}
	if got.Total() != len(sample) {
		t.Errorf("Total = %d", got.Total())
	}
	if (Summarize(nil) != Summary{}) {
		t.Error("Summarize(nil) not zero")
	}
	b, _ := json.Marshal(got)
	if string(b) != `{"high":3,"medium":1,"low":1,"unrated":1}` {
		t.Errorf("JSON = %s", b)
	}
}

func TestValidate(t *testing.T) {
	many := func(n int) []AllowEntry {
		out := make([]AllowEntry, n)
		for i := range out {
			out[i].ID = fmt.Sprintf("CVE-2024-%d", i)
		}
		return out
	}
	pemOf := func() string {
		k, err := signature.GenerateKey()
		if err != nil {
			t.Fatal(err)
		}
		b, _ := signature.PublicKeyPEM(k.Public())
		return string(b)
	}
	key := pemOf()
	keys := func(n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = pemOf()
		}
		return out
	}
	tests := []struct {
		name   string
		policy Policy
		err    string // substring; "" means valid
	}{
		{"require_signature with trusted keys", Policy{BlockSeverity: SeverityNone, RequireSignature: true, TrustedKeys: keys(MaxTrustedKeys)}, ""},
		{"too many trusted keys", Policy{BlockSeverity: SeverityNone, TrustedKeys: keys(MaxTrustedKeys + 1)}, "trusted_keys has 11 keys; the limit is 10"},
		{"trusted key not PEM", Policy{BlockSeverity: SeverityNone, TrustedKeys: []string{key, "ssh-ed25519 AAAA"}}, `trusted_keys[1]: not a PEM "PUBLIC KEY" block`},
		{"trusted key too long", Policy{BlockSeverity: SeverityNone, TrustedKeys: []string{strings.Repeat("A", signature.MaxKeyPEM+1)}}, "trusted_keys[0]: public key PEM is 8193 bytes"},
		{"trusted key twice", Policy{BlockSeverity: SeverityNone, TrustedKeys: []string{key, "\n" + key}}, "trusted_keys[1] is the same key as trusted_keys[0]"},
		{"default", Default(), ""},
		{"every severity", Policy{BlockSeverity: SeverityCritical, OnlyFixable: true, BlockUnscanned: true, Allowlist: []AllowEntry{{ID: "GHSA-xxxx-yyyy-zzzz", ExpiresAt: at(time.Hour)}}}, ""},
		{"expired entries are fine", Policy{BlockSeverity: SeverityLow, Allowlist: []AllowEntry{{ID: "CVE-1", ExpiresAt: at(-time.Hour)}}}, ""},
		{"max entries", Policy{BlockSeverity: SeverityLow, Allowlist: many(MaxAllowlistEntries)}, ""},
		{"empty severity", Policy{}, `block_severity "" is not one of`},
		{"unknown severity", Policy{BlockSeverity: "SEVERE"}, `block_severity "SEVERE" is not one of NONE, LOW, MEDIUM, HIGH, CRITICAL`},
		{"lower-case severity", Policy{BlockSeverity: "high"}, `block_severity "high"`},
		{"UNKNOWN is no threshold", Policy{BlockSeverity: SeverityUnknown}, `block_severity "UNKNOWN"`},
		{"too many entries", Policy{BlockSeverity: SeverityLow, Allowlist: many(MaxAllowlistEntries + 1)}, "1001 entries; the limit is 1000"},
		{"empty id", Policy{BlockSeverity: SeverityLow, Allowlist: []AllowEntry{{ID: "CVE-1"}, {ID: ""}}}, "allowlist[1].id is empty"},
		{"long id", Policy{BlockSeverity: SeverityLow, Allowlist: []AllowEntry{{ID: strings.Repeat("A", MaxIDLength+1)}}}, "allowlist[0].id is 129 characters"},
		{"id with space", Policy{BlockSeverity: SeverityLow, Allowlist: []AllowEntry{{ID: "CVE 1"}}}, "printable ASCII without spaces"},
		{"duplicate id", Policy{BlockSeverity: SeverityLow, Allowlist: []AllowEntry{{ID: "CVE-1"}, {ID: "cve-1"}}}, `allowlist[1].id "cve-1" repeats allowlist[0]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.policy.Validate()
			if tt.err == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidPolicy) || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("Validate = %v, want ErrInvalidPolicy containing %q", err, tt.err)
			}
		})
	}
}

func TestPolicyJSON(t *testing.T) {
	b, err := json.Marshal(Default())
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"block_severity":"NONE","only_fixable":false,"allowlist":[],"block_unscanned":false,"require_signature":false,"trusted_keys":[]}`; string(b) != want {
		t.Errorf("Default JSON = %s, want %s", b, want)
	}
	in := `{"block_severity":"HIGH","only_fixable":true,"allowlist":[{"id":"CVE-2024-3094","expires_at":"2027-01-01T00:00:00Z"},{"id":"CVE-1","expires_at":null}],"block_unscanned":true,"require_signature":true,"trusted_keys":["k"]}`
	var p Policy
	if err := json.Unmarshal([]byte(in), &p); err != nil {
		t.Fatal(err)
	}
	if p.BlockSeverity != SeverityHigh || !p.OnlyFixable || !p.BlockUnscanned || len(p.Allowlist) != 2 ||
		p.Allowlist[0].ExpiresAt == nil || !p.Allowlist[0].ExpiresAt.Equal(time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)) || p.Allowlist[1].ExpiresAt != nil {
		t.Errorf("decoded %+v", p)
	}
	out, _ := json.Marshal(p)
	if string(out) != in {
		t.Errorf("round trip:\n got %s\nwant %s", out, in)
	}
	var v Vulnerability
	if err := json.Unmarshal([]byte(`{"id":"CVE-1","package":"musl","installed_version":"1.2.5-r8","fixed_version":"1.2.5-r9","severity":"HIGH","title":"t","link":"https://x"}`), &v); err != nil {
		t.Fatal(err)
	}
	if v != (Vulnerability{ID: "CVE-1", Package: "musl", InstalledVersion: "1.2.5-r8", FixedVersion: "1.2.5-r9", Severity: "HIGH", Title: "t", Link: "https://x"}) {
		t.Errorf("decoded %+v", v)
	}
}

func TestEffective(t *testing.T) {
	ns := Policy{BlockSeverity: SeverityHigh}
	repo := Policy{BlockSeverity: SeverityNone}
	if got := Effective(ns, nil); got.BlockSeverity != SeverityHigh {
		t.Errorf("no override: %+v", got)
	}
	if got := Effective(ns, &repo); got.BlockSeverity != SeverityNone {
		t.Errorf("override: %+v", got)
	}
}
