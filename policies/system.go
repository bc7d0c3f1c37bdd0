package policies

import (
	"fmt"
	"strings"
)

// Names of the read-only system policies.
const (
	FullAccessPolicy          = "AliyunContainerRegistryFullAccess"
	ReadOnlyAccessPolicy      = "AliyunContainerRegistryReadOnlyAccess"
	AdministratorAccessPolicy = "AdministratorAccess"
)

// Policy is a named policy document, as the API shows it.
type Policy struct {
	Name        string
	Description string
	Document    *Document
}

// SystemPolicies returns the read-only system policies. Each call returns
// fresh copies, so callers may not change the originals.
func SystemPolicies() []Policy {
	return []Policy{
		{
			Name:        FullAccessPolicy,
			Description: "Full access to Container Registry: every cr action on every resource.",
			Document:    allowDoc([]string{"cr:*"}, []string{AnyResource}),
		},
		{
			Name:        ReadOnlyAccessPolicy,
			Description: "Read-only access to Container Registry: read every resource by API and pull every image.",
			Document:    allowDoc([]string{"cr:Get*", "cr:List*", ActionPullRepository}, []string{AnyResource}),
		},
		{
			Name:        AdministratorAccessPolicy,
			Description: "Every action of every service on every resource, user and policy management included.",
			Document:    allowDoc([]string{"*"}, []string{AnyResource}),
		},
	}
}

func allowDoc(actions, resources []string) *Document {
	return &Document{
		Version:   Version,
		Statement: []Statement{{Effect: EffectAllow, Action: actions, Resource: resources}},
	}
}

// SystemPolicy returns the system policy with this exact name.
func SystemPolicy(name string) (Policy, bool) {
	for _, p := range SystemPolicies() {
		if p.Name == name {
			return p, true
		}
	}
	return Policy{}, false
}

// IsSystemPolicy reports whether name is exactly the name of a system policy.
func IsSystemPolicy(name string) bool {
	switch name {
	case FullAccessPolicy, ReadOnlyAccessPolicy, AdministratorAccessPolicy:
		return true
	}
	return false
}

// MaxPolicyNameLength is the longest custom policy name.
const MaxPolicyNameLength = 128

// ValidateName checks the name of a custom policy: 1–128 letters, digits and
// '-', and not a system policy's name in any letter case (a look-alike of a
// system policy would mislead whoever reads a user's attachments). The error
// wraps ErrInvalidPolicy.
func ValidateName(name string) error {
	if name == "" {
		return fmt.Errorf("%w: the policy name is empty", ErrInvalidPolicy)
	}
	if len(name) > MaxPolicyNameLength {
		return fmt.Errorf("%w: the policy name is %d characters; the limit is %d", ErrInvalidPolicy, len(name), MaxPolicyNameLength)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
			return fmt.Errorf("%w: policy name %q may hold only letters, digits and '-'", ErrInvalidPolicy, name)
		}
	}
	for _, p := range []string{FullAccessPolicy, ReadOnlyAccessPolicy, AdministratorAccessPolicy} {
		if strings.EqualFold(name, p) {
			return fmt.Errorf("%w: %q is the name of a system policy, which is read-only; choose another name", ErrInvalidPolicy, name)
		}
	}
	return nil
}
