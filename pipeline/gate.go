package pipeline

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/berth-dev/berth/policies/security"
	"github.com/berth-dev/berth/registry"
	"github.com/berth-dev/berth/store"
)

// DefaultGateTTL is how long the gate trusts a cached answer. Changes made in this process (a scan finishing,
// a policy saved) are seen at once; changes made by another replica or a remote worker within the TTL.
const DefaultGateTTL = 5 * time.Second

// gateCacheMax bounds each of the gate's caches; past it they start over.
const gateCacheMax = 20000

// Gate is the security policy gate (SPEC §7): whether an image version is blocked, decided from the stored
// scan of its digest and the policy in force for its repository. Verdicts are computed when asked and
// remembered, so the registry's pull path (Check, on every manifest GET/HEAD) costs no database round trip
// while nothing changed; Changed forgets them when a scan finishes or a policy changes.
type Gate struct {
	Store store.Store
	// TTL bounds how long an answer is reused; 0 means DefaultGateTTL.
	TTL time.Duration

	mu       sync.Mutex
	gen      uint64
	verdicts map[string]cachedVerdict // repo@digest
	policies map[string]cachedPolicy  // repo
}

type cachedVerdict struct {
	v   Verdict
	exp time.Time
}

type cachedPolicy struct {
	p   EffectivePolicy
	exp time.Time
}

// EffectivePolicy is the policy in force for a repository and where it comes from.
type EffectivePolicy struct {
	security.Policy
	// Override is true when the repository has its own policy.
	Override bool
	// Owner names it for messages: "namespace NS" or "repository NS/REPO".
	Owner string
}

// Verdict is the gate's answer for one image version.
type Verdict struct {
	security.Verdict
	// Status is the scan status the verdict was made on (a rescan keeps the previous DONE result in force).
	Status string
	// Message names the policy and the counts; empty when not blocked.
	Message string
}

// NewGate returns a gate over st.
func NewGate(st store.Store) *Gate { return &Gate{Store: st} }

func (g *Gate) ttl() time.Duration {
	if g.TTL <= 0 {
		return DefaultGateTTL
	}
	return g.TTL
}

// Changed forgets every cached answer: call it when a scan finishes or a policy changes.
func (g *Gate) Changed() {
	g.mu.Lock()
	g.gen++
	g.verdicts, g.policies = nil, nil
	g.mu.Unlock()
}

func (g *Gate) generation() uint64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.gen
}

// Policy returns the policy in force for repo (namespace/name): its override, else its namespace's, else
// the default (nothing blocks).
func (g *Gate) Policy(ctx context.Context, repo string) (EffectivePolicy, error) {
	now := time.Now()
	g.mu.Lock()
	c, ok := g.policies[repo]
	gen := g.gen
	g.mu.Unlock()
	if ok && now.Before(c.exp) {
		return c.p, nil
	}
	p, err := LoadPolicy(ctx, g.Store, repo)
	if err != nil {
		return EffectivePolicy{}, err
	}
	g.mu.Lock()
	if g.gen == gen {
		if g.policies == nil || len(g.policies) >= gateCacheMax {
			g.policies = map[string]cachedPolicy{}
		}
		g.policies[repo] = cachedPolicy{p: p, exp: now.Add(g.ttl())}
	}
	g.mu.Unlock()
	return p, nil
}

// LoadPolicy reads the policy in force for repo from the store, uncached.
func LoadPolicy(ctx context.Context, st store.Store, repo string) (EffectivePolicy, error) {
	ns, _, _ := strings.Cut(repo, "/")
	if sp, err := st.GetSecurityPolicy(ctx, repo); err == nil {
		return EffectivePolicy{Policy: PolicyFromStore(sp), Override: true, Owner: "repository " + repo}, nil
	} else if !errors.Is(err, store.ErrNotFound) {
		return EffectivePolicy{}, err
	}
	sp, err := st.GetSecurityPolicy(ctx, ns)
	if errors.Is(err, store.ErrNotFound) {
		return EffectivePolicy{Policy: security.Default(), Owner: "namespace " + ns}, nil
	}
	if err != nil {
		return EffectivePolicy{}, err
	}
	return EffectivePolicy{Policy: PolicyFromStore(sp), Owner: "namespace " + ns}, nil
}

// PolicyFromStore converts a stored policy.
func PolicyFromStore(sp *store.SecurityPolicy) security.Policy {
	p := security.Policy{BlockSeverity: sp.BlockSeverity, OnlyFixable: sp.OnlyFixable, BlockUnscanned: sp.BlockUnscanned,
		Allowlist: make([]security.AllowEntry, len(sp.Allowlist)), RequireSignature: sp.RequireSignature,
		TrustedKeys: append([]string{}, sp.TrustedKeys...)}
	for i, e := range sp.Allowlist {
		p.Allowlist[i] = security.AllowEntry{ID: e.ID, ExpiresAt: e.ExpiresAt}
	}
	return p
}

// PolicyToStore converts a policy for the store; repo is "" for a namespace's policy.
func PolicyToStore(p security.Policy, ns, repo string) *store.SecurityPolicy {
	sp := &store.SecurityPolicy{Namespace: ns, Repository: repo, BlockSeverity: p.BlockSeverity, OnlyFixable: p.OnlyFixable,
		BlockUnscanned: p.BlockUnscanned, Allowlist: make([]store.AllowEntry, len(p.Allowlist)),
		RequireSignature: p.RequireSignature, TrustedKeys: append([]string{}, p.TrustedKeys...)}
	for i, e := range p.Allowlist {
		sp.Allowlist[i] = store.AllowEntry{ID: e.ID, ExpiresAt: e.ExpiresAt}
	}
	return sp
}

// needsScan reports whether p can block anything, i.e. whether a verdict needs the scan at all.
func needsScan(p security.Policy) bool {
	return p.BlockUnscanned || (p.BlockSeverity != "" && p.BlockSeverity != security.SeverityNone)
}

// Verdict says whether repo@digest is blocked.
func (g *Gate) Verdict(ctx context.Context, repo, digest string) (Verdict, error) {
	key := repo + "@" + digest
	now := time.Now()
	g.mu.Lock()
	c, ok := g.verdicts[key]
	gen := g.gen
	g.mu.Unlock()
	if ok && now.Before(c.exp) {
		return c.v, nil
	}
	v, err := g.verdict(ctx, repo, digest, now)
	if err != nil {
		if ok { // stale is better than refusing every pull while the store is away
			return c.v, nil
		}
		return Verdict{}, err
	}
	g.mu.Lock()
	if g.gen == gen {
		if g.verdicts == nil || len(g.verdicts) >= gateCacheMax {
			g.verdicts = map[string]cachedVerdict{}
		}
		g.verdicts[key] = cachedVerdict{v: v, exp: now.Add(g.ttl())}
	}
	g.mu.Unlock()
	return v, nil
}

func (g *Gate) verdict(ctx context.Context, repo, digest string, now time.Time) (Verdict, error) {
	p, err := g.Policy(ctx, repo)
	if err != nil {
		return Verdict{}, err
	}
	if !needsScan(p.Policy) {
		return Verdict{Status: "-"}, nil
	}
	sc, err := g.Store.GetScan(ctx, digest)
	if errors.Is(err, store.ErrNotFound) {
		sc = nil
	} else if err != nil {
		return Verdict{}, err
	}
	return Evaluate(p, sc, now), nil
}

// Evaluate applies p to a stored scan (nil: never scanned).
func Evaluate(p EffectivePolicy, sc *store.Scan, now time.Time) Verdict {
	status := EffectiveScanStatus(sc)
	var vulns []security.Vulnerability
	if sc != nil && status == store.ScanDone {
		vulns = make([]security.Vulnerability, len(sc.Vulnerabilities))
		for i, v := range sc.Vulnerabilities {
			vulns[i] = security.Vulnerability{ID: v.ID, Package: v.Package, InstalledVersion: v.InstalledVersion,
				FixedVersion: v.FixedVersion, Severity: v.Severity, Title: v.Title, Link: v.Link}
		}
	}
	sv := security.Evaluate(p.Policy, status, vulns, now)
	v := Verdict{Verdict: sv, Status: status}
	if sv.Blocked {
		v.Message = strings.Replace(sv.Reason, "blocked by security policy", "blocked by the security policy of "+p.Owner, 1)
	}
	return v
}

// EffectiveScanStatus is the status the gate judges by: a rescan keeps the previous DONE result in force.
func EffectiveScanStatus(sc *store.Scan) string {
	switch {
	case sc == nil:
		return store.ScanNotScanned
	case sc.Status == store.ScanScanning && sc.ResultStatus == store.ScanDone:
		return store.ScanDone
	}
	return sc.Status
}

// Check refuses the pull of a blocked image (RegistryHooks.Blocked): 403 DENIED naming the policy and counts.
func (g *Gate) Check(ctx context.Context, repo, digest string) error {
	v, err := g.Verdict(ctx, repo, digest)
	if err != nil {
		return fmt.Errorf("security policy gate: %w", err)
	}
	if !v.Blocked {
		return nil
	}
	return registry.ErrDenied(fmt.Sprintf("%s@%s is %s", repo, digest, v.Message))
}
