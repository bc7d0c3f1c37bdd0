package app

import (
	"context"
	"strings"

	"github.com/berth-dev/berth/pipeline"
	"github.com/berth-dev/berth/policies/access"
	"github.com/berth-dev/berth/registry"
	"github.com/berth-dev/berth/store"
)

// internalAuthorizer lets the registry accept the short-lived logins of Berth's own clients — builds
// (BuildKit pushes) and the scanner (Trivy pulls), pipeline.InternalLogins — which they trade for tokens at
// /token, and grants each what its kind allows. Every other login goes to Berth's access layer.
type internalAuthorizer struct {
	*access.RegistryAuthorizer
	logins    []*pipeline.InternalLogins
	store     store.Store
	accountID string
}

func (a *App) internalAuthorizer(inner *access.RegistryAuthorizer) registry.Authorizer {
	return &internalAuthorizer{RegistryAuthorizer: inner, logins: []*pipeline.InternalLogins{a.pipe.creds, a.scan.creds},
		store: a.Store, accountID: a.Instance.AccountID}
}

func (i *internalAuthorizer) Authenticate(ctx context.Context, username, password string) (registry.Subject, error) {
	for _, l := range i.logins {
		if username == l.User {
			repo, ok := l.Verify(username, password)
			if !ok {
				return registry.Subject{}, registry.ErrUnauthorized
			}
			return l.Subject(repo, i.accountID), nil
		}
	}
	return i.RegistryAuthorizer.Authenticate(ctx, username, password)
}

func (i *internalAuthorizer) Grant(ctx context.Context, subj registry.Subject, requested []registry.Access) ([]registry.Access, error) {
	for _, l := range i.logins {
		if repo, ok := l.RepoOf(subj); ok {
			return l.Grant(repo, requested, func(name string) bool {
				ns, r, _ := strings.Cut(name, "/")
				rep, err := i.store.GetRepository(ctx, ns, r)
				return err == nil && rep.Visibility == store.VisibilityPublic
			}), nil
		}
	}
	return i.RegistryAuthorizer.Grant(ctx, subj, requested)
}
