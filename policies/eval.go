package policies

// Request is one authorization question: may the caller do Action on Resource?
type Request struct {
	Action   string
	Resource string
}

// Decision is the outcome of evaluating a Request.
type Decision uint8

const (
	// ImplicitDeny: no statement allowed the request. It is the zero value,
	// so a forgotten decision denies.
	ImplicitDeny Decision = iota
	// Allow: some Allow statement matched and no Deny statement did.
	Allow
	// Deny: a Deny statement matched; it beats every Allow.
	Deny
)

func (d Decision) String() string {
	switch d {
	case Allow:
		return "Allow"
	case Deny:
		return "Deny"
	default:
		return "ImplicitDeny"
	}
}

// Set is the compiled union of the policy documents attached to one identity.
// It is immutable and safe for concurrent use; the zero value and nil deny
// everything.
type Set struct {
	deny, allow []compiledStatement
}

type compiledStatement struct {
	actions, resources []pattern
	// known has bit i set when an action pattern matches indexedActions[i],
	// so the common case, a canonically spelled Berth action, costs one bit
	// test per statement instead of a pattern match.
	known []uint64
}

// indexedActions is a private snapshot of AllActions (which callers could
// change), and actionIndex maps each one to its position.
var (
	indexedActions = append([]string(nil), AllActions...)
	actionIndex    = func() map[string]int {
		m := make(map[string]int, len(indexedActions))
		for i, a := range indexedActions {
			m[a] = i
		}
		return m
	}()
)

// Compile merges documents into a Set. Nil documents are skipped, and so are
// statements whose effect is neither Allow nor Deny (Parse refuses those).
// Compile does not validate: documents should come from Parse or have passed
// Validate.
func Compile(docs ...*Document) *Set {
	s := &Set{}
	for _, d := range docs {
		if d == nil {
			continue
		}
		for _, st := range d.Statement {
			cs := compiledStatement{
				actions:   compileAll(st.Action, true),
				resources: compileAll(st.Resource, false),
				known:     make([]uint64, (len(indexedActions)+63)/64),
			}
			for i, a := range indexedActions {
				if anyMatch(cs.actions, a) {
					cs.known[i/64] |= 1 << (i % 64)
				}
			}
			switch st.Effect {
			case EffectAllow:
				s.allow = append(s.allow, cs)
			case EffectDeny:
				s.deny = append(s.deny, cs)
			}
		}
	}
	return s
}

func compileAll(values []string, fold bool) []pattern {
	out := make([]pattern, len(values))
	for i, v := range values {
		out[i] = compilePattern(v, fold)
	}
	return out
}

// Evaluate decides a request: Deny if any Deny statement matches, else Allow if
// any Allow statement matches, else ImplicitDeny. A statement matches when one
// of its actions matches the action and one of its resources the resource.
func (s *Set) Evaluate(req Request) Decision {
	if s == nil {
		return ImplicitDeny
	}
	idx, known := actionIndex[req.Action]
	for i := range s.deny {
		if s.deny[i].matches(idx, known, req) {
			return Deny
		}
	}
	for i := range s.allow {
		if s.allow[i].matches(idx, known, req) {
			return Allow
		}
	}
	return ImplicitDeny
}

// Allowed reports whether the Set allows action on resource.
func (s *Set) Allowed(action, resource string) bool {
	return s.Evaluate(Request{Action: action, Resource: resource}) == Allow
}

func (c *compiledStatement) matches(idx int, known bool, req Request) bool {
	if known {
		if c.known[idx/64]&(1<<(idx%64)) == 0 {
			return false
		}
	} else if !anyMatch(c.actions, req.Action) {
		return false
	}
	return anyMatch(c.resources, req.Resource)
}

func anyMatch(ps []pattern, s string) bool {
	for i := range ps {
		if ps[i].match(s) {
			return true
		}
	}
	return false
}
