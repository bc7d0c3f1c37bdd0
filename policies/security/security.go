// Package security owns the blocking security policy (SPEC §7): which scan
// results make an image version blocked, so that its pulls are refused, its
// triggers do not fire and its build ends BLOCKED.
//
// It is pure: the caller supplies the policy in force, the scan status and
// the vulnerabilities, and the time; Evaluate answers a Verdict.
//
//	v := security.Evaluate(security.Effective(nsPolicy, repoPolicy), scan.Status, scan.Vulnerabilities, time.Now())
//	if v.Blocked { … 403 DENIED, v.Reason … }
package security

import (
	"crypto"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/berth-dev/berth/policies/signature"
)

// Severities: the block thresholds of a Policy, and Trivy's severities of a
// Vulnerability (which adds UNKNOWN).
const (
	SeverityNone     = "NONE"
	SeverityLow      = "LOW"
	SeverityMedium   = "MEDIUM"
	SeverityHigh     = "HIGH"
	SeverityCritical = "CRITICAL"
	SeverityUnknown  = "UNKNOWN"
)

// Scan statuses (SPEC §6).
const (
	ScanNotScanned = "NOT_SCANNED"
	ScanScanning   = "SCANNING"
	ScanDone       = "DONE"
	ScanFailed     = "FAILED"
)

// Limits on a Policy.
const (
	MaxAllowlistEntries = 1000
	MaxIDLength         = 128
	// MaxTrustedKeys bounds trusted_keys; each key is at most signature.MaxKeyPEM bytes.
	MaxTrustedKeys = 10
)

// ErrInvalidPolicy is wrapped by every error Validate returns.
var ErrInvalidPolicy = errors.New("invalid security policy")

// Policy is the blocking policy of a namespace, or a repository's override.
type Policy struct {
	// BlockSeverity is the lowest severity that blocks: NONE (never),
	// LOW, MEDIUM, HIGH or CRITICAL.
	BlockSeverity string `json:"block_severity"`
	// OnlyFixable counts only vulnerabilities that have a fixed version.
	OnlyFixable bool `json:"only_fixable"`
	// Allowlist names vulnerabilities that never count, until they expire.
	Allowlist []AllowEntry `json:"allowlist"`
	// BlockUnscanned blocks images whose scan is not DONE (not scanned yet,
	// still scanning, or failed).
	BlockUnscanned bool `json:"block_unscanned"`
	// RequireSignature blocks images without a valid cosign signature (a
	// ".sig" accessory) by the instance's signing key or one of TrustedKeys
	// (SPEC §15). The signature check itself is the pipeline's gate: it reads
	// the registry.
	RequireSignature bool `json:"require_signature"`
	// TrustedKeys are PEM public keys (cosign.pub) whose signatures count
	// besides the instance key's.
	TrustedKeys []string `json:"trusted_keys"`
}

// AllowEntry allowlists one vulnerability id (CVE, GHSA, …), matched without
// regard to letter case. With ExpiresAt set, the entry stops applying at that
// instant and the vulnerability counts again.
type AllowEntry struct {
	ID        string     `json:"id"`
	ExpiresAt *time.Time `json:"expires_at"`
}

// Default is the policy of a namespace nobody has configured: nothing blocks.
func Default() Policy {
	return Policy{BlockSeverity: SeverityNone, Allowlist: []AllowEntry{}, TrustedKeys: []string{}}
}

// Effective is the policy in force for a repository: its own when it has one,
// else its namespace's. An override replaces the namespace policy whole; the
// two are not merged.
func Effective(namespace Policy, repository *Policy) Policy {
	if repository != nil {
		return *repository
	}
	return namespace
}

// threshold ranks block severities; rank ranks vulnerability severities on
// the same scale. 0 means "never blocks" / "never counts".
var threshold = map[string]int{
	SeverityNone:     0,
	SeverityLow:      1,
	SeverityMedium:   2,
	SeverityHigh:     3,
	SeverityCritical: 4,
}

func rank(severity string) int {
	switch strings.ToUpper(severity) {
	case SeverityLow:
		return 1
	case SeverityMedium:
		return 2
	case SeverityHigh:
		return 3
	case SeverityCritical:
		return 4
	}
	return 0 // UNKNOWN or anything else never counts
}

// Validate checks a policy. Every error wraps ErrInvalidPolicy and names the
// offending field.
func (p Policy) Validate() error {
	if _, ok := threshold[p.BlockSeverity]; !ok {
		return fmt.Errorf("%w: block_severity %q is not one of NONE, LOW, MEDIUM, HIGH, CRITICAL", ErrInvalidPolicy, p.BlockSeverity)
	}
	if len(p.Allowlist) > MaxAllowlistEntries {
		return fmt.Errorf("%w: allowlist has %d entries; the limit is %d", ErrInvalidPolicy, len(p.Allowlist), MaxAllowlistEntries)
	}
	seen := make(map[string]int, len(p.Allowlist))
	for i, e := range p.Allowlist {
		switch {
		case e.ID == "":
			return fmt.Errorf("%w: allowlist[%d].id is empty; give a vulnerability id such as CVE-2024-3094", ErrInvalidPolicy, i)
		case len(e.ID) > MaxIDLength:
			return fmt.Errorf("%w: allowlist[%d].id is %d characters; the limit is %d", ErrInvalidPolicy, i, len(e.ID), MaxIDLength)
		case strings.IndexFunc(e.ID, func(r rune) bool { return r <= ' ' || r > '~' }) >= 0:
			return fmt.Errorf("%w: allowlist[%d].id %q may hold only printable ASCII without spaces", ErrInvalidPolicy, i, e.ID)
		}
		key := strings.ToUpper(e.ID)
		if j, dup := seen[key]; dup {
			return fmt.Errorf("%w: allowlist[%d].id %q repeats allowlist[%d]", ErrInvalidPolicy, i, e.ID, j)
		}
		seen[key] = i
	}
	_, err := p.Keys()
	return err
}

// Keys parses TrustedKeys. Errors wrap ErrInvalidPolicy and name the entry.
func (p Policy) Keys() ([]crypto.PublicKey, error) {
	if len(p.TrustedKeys) > MaxTrustedKeys {
		return nil, fmt.Errorf("%w: trusted_keys has %d keys; the limit is %d", ErrInvalidPolicy, len(p.TrustedKeys), MaxTrustedKeys)
	}
	keys := make([]crypto.PublicKey, 0, len(p.TrustedKeys))
	ids := make(map[string]int, len(p.TrustedKeys))
	for i, k := range p.TrustedKeys {
		pub, err := signature.ParsePublicKeyPEM([]byte(k))
		if err != nil {
			return nil, fmt.Errorf("%w: trusted_keys[%d]: %s", ErrInvalidPolicy, i, strings.TrimPrefix(err.Error(), signature.ErrInvalid.Error()+": "))
		}
		id := signature.KeyID(pub)
		if j, dup := ids[id]; dup {
			return nil, fmt.Errorf("%w: trusted_keys[%d] is the same key as trusted_keys[%d]", ErrInvalidPolicy, i, j)
		}
		ids[id] = i
		keys = append(keys, pub)
	}
	return keys, nil
}

// Vulnerability is one finding of a scan.
type Vulnerability struct {
	ID               string `json:"id"`
	Package          string `json:"package"`
	InstalledVersion string `json:"installed_version"`
	FixedVersion     string `json:"fixed_version"`
	// Severity is Trivy's: CRITICAL, HIGH, MEDIUM, LOW or UNKNOWN.
	Severity string `json:"severity"`
	Title    string `json:"title"`
	Link     string `json:"link"`
}

// Summary counts vulnerabilities in the four levels the product shows.
type Summary struct {
	High    int `json:"high"` // Trivy CRITICAL + HIGH
	Medium  int `json:"medium"`
	Low     int `json:"low"`
	Unrated int `json:"unrated"` // Trivy UNKNOWN, or a severity we do not know
}

// Total is the number of vulnerabilities counted.
func (s Summary) Total() int { return s.High + s.Medium + s.Low + s.Unrated }

func (s *Summary) add(severity string) {
	switch rank(severity) {
	case 4, 3:
		s.High++
	case 2:
		s.Medium++
	case 1:
		s.Low++
	default:
		s.Unrated++
	}
}

// Summarize counts vulnerabilities by level.
func Summarize(vulns []Vulnerability) Summary {
	var s Summary
	for _, v := range vulns {
		s.add(v.Severity)
	}
	return s
}

// Verdict is the outcome of Evaluate.
type Verdict struct {
	Blocked bool
	// Reason is a sentence for the user (it goes into the registry's 403
	// message); empty when not blocked.
	Reason string
	// Counted summarizes the vulnerabilities that counted toward blocking:
	// at or above the threshold, fixable when OnlyFixable, not allowlisted.
	Counted Summary
}

// Evaluate decides whether an image version is blocked.
//
// If the scan is not DONE, the image is blocked exactly when the policy
// blocks unscanned images. Otherwise a vulnerability counts when its
// severity is at or above BlockSeverity (UNKNOWN never counts; NONE blocks
// nothing), it has a fixed version if OnlyFixable, and no allowlist entry
// unexpired at now names it; the image is blocked when any counts.
func Evaluate(p Policy, scanStatus string, vulns []Vulnerability, now time.Time) Verdict {
	if scanStatus != ScanDone {
		if !p.BlockUnscanned {
			return Verdict{}
		}
		why := "the image has not been scanned yet"
		if scanStatus == ScanFailed {
			why = "the image's scan failed; rescan it"
		}
		return Verdict{
			Blocked: true,
			Reason:  fmt.Sprintf("blocked by security policy (block_unscanned): %s, or turn off block_unscanned", why),
		}
	}
	floor := threshold[p.BlockSeverity]
	if floor == 0 { // NONE, or an invalid severity: fail open as the default does
		return Verdict{}
	}
	var counted Summary
	critical := 0
	for _, v := range vulns {
		r := rank(v.Severity)
		if r == 0 || r < floor {
			continue
		}
		if p.OnlyFixable && strings.TrimSpace(v.FixedVersion) == "" {
			continue
		}
		if allowlisted(p.Allowlist, v.ID, now) {
			continue
		}
		counted.add(v.Severity)
		if r == 4 {
			critical++
		}
	}
	if counted.Total() == 0 {
		return Verdict{Counted: counted}
	}
	return Verdict{Blocked: true, Reason: reason(p, counted, critical), Counted: counted}
}

func allowlisted(list []AllowEntry, id string, now time.Time) bool {
	for _, e := range list {
		if strings.EqualFold(e.ID, id) && (e.ExpiresAt == nil || now.Before(*e.ExpiresAt)) {
			return true
		}
	}
	return false
}

// reason words the counts in the product's levels; when only criticals can
// count it says "critical", since "high" would undersell them.
func reason(p Policy, c Summary, critical int) string {
	var parts []string
	if c.High > 0 {
		if p.BlockSeverity == SeverityCritical {
			parts = append(parts, fmt.Sprintf("%d critical", critical))
		} else {
			parts = append(parts, fmt.Sprintf("%d high", c.High))
		}
	}
	if c.Medium > 0 {
		parts = append(parts, fmt.Sprintf("%d medium", c.Medium))
	}
	if c.Low > 0 {
		parts = append(parts, fmt.Sprintf("%d low", c.Low))
	}
	noun := "vulnerabilities"
	if c.Total() == 1 {
		noun = "vulnerability"
	}
	settings := "block_severity=" + p.BlockSeverity
	if p.OnlyFixable {
		settings += ", only_fixable"
		noun = "fixable " + noun
	}
	return fmt.Sprintf("blocked by security policy (%s): %s %s; allowlist a CVE or fix the image",
		settings, strings.Join(parts, ", "), noun)
}
