// Package registrytest has fixtures for tests and tools that run the
// registry: a table-driven Authorizer and an allow-all one.
package registrytest

import (
	"context"
	"path"
	"slices"

	"github.com/berth-dev/berth/registry"
)

// Rule grants Actions on repositories matching Pattern (path.Match syntax,
// e.g. "conformance/*", or "*" with "/" handled as "*/*" too).
type Rule struct {
	Pattern string
	Actions []string
}

// User is a static user.
type User struct {
	Password string
	Rules    []Rule
	Catalog  bool // may list the catalog
}

// Authorizer is a static registry.Authorizer.
type Authorizer struct {
	Users     map[string]User
	Anonymous []Rule // what anonymous subjects get
}

var _ registry.Authorizer = (*Authorizer)(nil)

// Authenticate implements registry.Authorizer.
func (a *Authorizer) Authenticate(ctx context.Context, username, password string) (registry.Subject, error) {
	u, ok := a.Users[username]
	if !ok || u.Password != password {
		return registry.Subject{}, registry.ErrUnauthorized
	}
	return registry.Subject{Name: username, AccountID: "1"}, nil
}

// Grant implements registry.Authorizer.
func (a *Authorizer) Grant(ctx context.Context, subj registry.Subject, requested []registry.Access) ([]registry.Access, error) {
	var rules []Rule
	catalog := false
	if subj.Anonymous {
		rules = a.Anonymous
	} else if u, ok := a.Users[subj.Name]; ok {
		rules, catalog = u.Rules, u.Catalog
	}
	var out []registry.Access
	for _, req := range requested {
		if req.Type == "registry" {
			if catalog && req.Name == "catalog" {
				out = append(out, req)
			}
			continue
		}
		if req.Type != "repository" {
			continue
		}
		var acts []string
		for _, act := range req.Actions {
			for _, r := range rules {
				if matches(r.Pattern, req.Name) && (slices.Contains(r.Actions, act) || slices.Contains(r.Actions, "*")) {
					acts = append(acts, act)
					break
				}
			}
		}
		if len(acts) > 0 {
			out = append(out, registry.Access{Type: req.Type, Name: req.Name, Actions: acts})
		}
	}
	return out, nil
}

func matches(pattern, name string) bool {
	if pattern == "*" || pattern == "**" {
		return true
	}
	ok, _ := path.Match(pattern, name)
	return ok
}

// AllowAll authenticates anyone and grants everything asked.
type AllowAll struct{}

// Authenticate implements registry.Authorizer.
func (AllowAll) Authenticate(ctx context.Context, username, password string) (registry.Subject, error) {
	return registry.Subject{Name: username}, nil
}

// Grant implements registry.Authorizer.
func (AllowAll) Grant(ctx context.Context, subj registry.Subject, requested []registry.Access) ([]registry.Access, error) {
	return requested, nil
}

// Conformance is the authorizer the OCI conformance run uses: user
// "conformance" / "conformance-pass" has every right on conformance/*,
// anonymous has nothing.
func Conformance() *Authorizer {
	return &Authorizer{Users: map[string]User{
		"conformance": {Password: "conformance-pass", Rules: []Rule{{Pattern: "conformance/*", Actions: []string{"*"}}}, Catalog: true},
	}}
}
