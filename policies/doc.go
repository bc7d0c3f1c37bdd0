// Package policies owns Berth's RAM-style access policies (SPEC §9): the policy
// document format and its validation, the action and resource names every API
// checks, the read-only system policies, and a compiled evaluator.
//
// A handler authorizes one action on one resource:
//
//	doc, err := policies.Parse(body) // errors.Is(err, policies.ErrInvalidPolicy) → INVALID_POLICY
//	set := policies.Compile(attachedDocs...)
//	res := policies.RepositoryResource(region, accountID, ns, repo)
//	if !set.Allowed(policies.ActionPullRepository, res) { … 403 … }
//
// An explicit Deny beats any Allow, and no matching Allow means denied.
// Wildcards are '*' (any run of characters, '/' and ':' included) and '?'
// (exactly one character). Actions match case-insensitively, resources
// case-sensitively. The blocking security policy lives in package
// policies/security.
package policies
