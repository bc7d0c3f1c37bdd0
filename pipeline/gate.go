package pipeline

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/berth-dev/berth/policies/security"
	"github.com/berth-dev/berth/policies/signature"
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
	// InstanceKey answers the instance's signing public key (SPEC §15), nil while there is none; nil itself
	// means no instance key. Signatures by it satisfy require_signature, as do those by a trusted key.
	InstanceKey func() crypto.PublicKey

	content atomic.Pointer[Content]

	mu       sync.Mutex
	gen      uint64
	verdicts map[string]cached[Verdict]         // repo@digest
	policies map[string]cached[EffectivePolicy] // repo
	sigs     map[string]cached[SignatureStatus] // repo@digest
	accs     map[string]cached[[]Accessory]     // repo@digest
	atts     map[string]cached[[]signature.Attestation]
}

// cached is an answer of the gate and when it stops being reused.
type cached[V any] struct {
	v   V
	exp time.Time
}

// through answers what m holds under key while it is fresh, else load's answer, remembered. When load fails
// and staleOK, a stale answer is better than none.
func through[V any](g *Gate, m *map[string]cached[V], key string, staleOK bool, load func(now time.Time) (V, error)) (V, error) {
	now := time.Now()
	g.mu.Lock()
	c, found := (*m)[key]
	gen := g.gen
	g.mu.Unlock()
	if found && now.Before(c.exp) {
		return c.v, nil
	}
	v, err := load(now)
	if err != nil {
		if found && staleOK {
			return c.v, nil
		}
		return v, err
	}
	remember(g, m, gen, key, v, now)
	return v, nil
}

// remember keeps v under key unless something changed since gen (then v may already be stale).
func remember[V any](g *Gate, m *map[string]cached[V], gen uint64, key string, v V, now time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.gen != gen {
		return
	}
	if *m == nil || len(*m) >= gateCacheMax {
		*m = map[string]cached[V]{}
	}
	(*m)[key] = cached[V]{v: v, exp: now.Add(g.ttl())}
}

// EffectivePolicy is the policy in force for a repository and where it comes from.
type EffectivePolicy struct {
	security.Policy
	// Override is true when the repository has its own policy.
	Override bool
	// Owner names it for messages: "namespace NS" or "repository NS/REPO".
	Owner string
	// Keys are the parsed TrustedKeys.
	Keys []crypto.PublicKey
}

// Verdict is the gate's answer for one image version.
type Verdict struct {
	security.Verdict
	// Status is the scan status the verdict was made on (a rescan keeps the previous DONE result in force).
	Status string
	// Message names the policy and the counts; empty when not blocked.
	Message string
	// Unsigned: require_signature is all that blocks it (no vulnerability does).
	Unsigned bool
}

// NewGate returns a gate over st.
func NewGate(st store.Store) *Gate { return &Gate{Store: st} }

func (g *Gate) ttl() time.Duration {
	if g.TTL <= 0 {
		return DefaultGateTTL
	}
	return g.TTL
}

// SetContent gives the gate the registry it reads signatures from (made after the gate itself). Without it,
// require_signature finds no signature.
func (g *Gate) SetContent(c Content) { g.content.Store(&c) }

// Changed forgets every cached answer: call it when a scan finishes, a policy changes or a signature is pushed
// or deleted.
func (g *Gate) Changed() {
	g.mu.Lock()
	g.gen++
	g.verdicts, g.policies, g.sigs, g.accs, g.atts = nil, nil, nil, nil, nil
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
	return through(g, &g.policies, repo, false, func(time.Time) (EffectivePolicy, error) {
		return LoadPolicy(ctx, g.Store, repo)
	})
}

// LoadPolicy reads the policy in force for repo from the store, uncached.
func LoadPolicy(ctx context.Context, st store.Store, repo string) (EffectivePolicy, error) {
	ns, _, _ := strings.Cut(repo, "/")
	if sp, err := st.GetSecurityPolicy(ctx, repo); err == nil {
		return withKeys(EffectivePolicy{Policy: PolicyFromStore(sp), Override: true, Owner: "repository " + repo}), nil
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
	return withKeys(EffectivePolicy{Policy: PolicyFromStore(sp), Owner: "namespace " + ns}), nil
}

// withKeys parses the policy's trusted keys. They were validated when the policy was saved; a key that no
// longer parses counts for nothing (require_signature then wants another signature, never fewer).
func withKeys(p EffectivePolicy) EffectivePolicy {
	for _, k := range p.TrustedKeys {
		if pub, err := signature.ParsePublicKeyPEM([]byte(k)); err == nil {
			p.Keys = append(p.Keys, pub)
		}
	}
	return p
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
	// A stale verdict is better than refusing every pull while the store is away.
	return through(g, &g.verdicts, repo+"@"+digest, true, func(now time.Time) (Verdict, error) {
		return g.verdict(ctx, repo, digest, now)
	})
}

func (g *Gate) verdict(ctx context.Context, repo, digest string, now time.Time) (Verdict, error) {
	p, err := g.Policy(ctx, repo)
	if err != nil {
		return Verdict{}, err
	}
	open := Verdict{Status: "-"}
	if !needsScan(p.Policy) && !p.RequireSignature {
		return open, nil
	}
	// A signature, attestation or SBOM is never scanned nor signed itself: cosign must read it to verify.
	if g.isAccessory(ctx, repo, digest) {
		return open, nil
	}
	v := open
	if needsScan(p.Policy) {
		sc, err := g.Store.GetScan(ctx, digest)
		if errors.Is(err, store.ErrNotFound) {
			sc = nil
		} else if err != nil {
			return Verdict{}, err
		}
		v = Evaluate(p, sc, now)
	}
	if v.Blocked || !p.RequireSignature {
		return v, nil
	}
	sig, err := g.signatureOf(ctx, repo, digest, p)
	if err != nil {
		return Verdict{}, err
	}
	if !sig.Signed {
		v.Blocked, v.Unsigned = true, true
		v.Reason = "blocked by security policy (require_signature): " + UnsignedReason
		v.Message = "blocked by the security policy of " + p.Owner + " (require_signature): " + UnsignedReason
	}
	return v, nil
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
	err = registry.ErrDenied(fmt.Sprintf("%s@%s is %s", repo, digest, v.Message))
	if v.Unsigned {
		return unsignedError{err}
	}
	return err
}

// ErrUnsigned is wrapped by Check's refusal of an image that require_signature alone blocks.
var ErrUnsigned = errors.New("image not signed")

type unsignedError struct{ denied error }

func (e unsignedError) Error() string   { return e.denied.Error() }
func (e unsignedError) Unwrap() []error { return []error{e.denied, ErrUnsigned} }
