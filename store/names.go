package store

import (
	"fmt"
	"regexp"
)

// Name rules (SPEC §1, §2). A name must also be one valid OCI path component, so every name Berth accepts
// can be pushed to: lower-case letters and digits, separated by one '.', one or two '_', or dashes.
var (
	ociComponent = regexp.MustCompile(`^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*$`)
	namespaceRE  = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,28}[a-z0-9]$`)
	repoRE       = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,62}[a-z0-9]$`)
)

// ValidateNamespaceName explains why name is not a valid namespace name, or returns nil.
func ValidateNamespaceName(name string) error {
	if !namespaceRE.MatchString(name) || !ociComponent.MatchString(name) {
		return fmt.Errorf("namespace name %q is invalid: use 2-30 characters of a-z, 0-9, '_', '.', '-', "+
			"starting and ending with a letter or digit, with no two separators in a row (e.g. misaka-team)", name)
	}
	return nil
}

// ValidateRepositoryName explains why name is not a valid repository name, or returns nil.
func ValidateRepositoryName(name string) error {
	if !repoRE.MatchString(name) || !ociComponent.MatchString(name) {
		return fmt.Errorf("repository name %q is invalid: use 2-64 characters of a-z, 0-9, '_', '.', '-', "+
			"starting and ending with a letter or digit, one path segment, with no two separators in a row (e.g. console-web)", name)
	}
	return nil
}

// ValidVisibility reports whether v is PUBLIC or PRIVATE.
func ValidVisibility(v string) bool { return v == VisibilityPublic || v == VisibilityPrivate }
