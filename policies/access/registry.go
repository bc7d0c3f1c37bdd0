package access

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/berth-dev/berth/policies"
	"github.com/berth-dev/berth/registry"
	"github.com/berth-dev/berth/server/forwarded"
	"github.com/berth-dev/berth/store"
)

// RegistryAuthorizer applies the same identities and policies to the registry's token service (SPEC §9):
// pull needs cr:PullRepository (or a PUBLIC repository), push cr:PushRepository, delete cr:DeleteRepositoryTag.
type RegistryAuthorizer struct {
	Service *Service
	Region  string
}

var _ registry.Authorizer = (*RegistryAuthorizer)(nil)

// Authenticate checks `docker login` credentials.
func (a *RegistryAuthorizer) Authenticate(ctx context.Context, username, password string) (registry.Subject, error) {
	p, err := a.Service.Login(ctx, username, password, forwarded.ClientIPFrom(ctx, registry.ClientAddr(ctx)))
	if errors.Is(err, ErrBadCredentials) || errors.Is(err, ErrNoCredentials) {
		return registry.Subject{}, registry.ErrUnauthorized
	}
	if errors.Is(err, ErrRateLimited) {
		return registry.Subject{}, registry.ErrTooManyRequests("too many failed logins from this client; wait a minute and try again")
	}
	if err != nil {
		return registry.Subject{}, err
	}
	return registry.Subject{Name: p.Name, AccountID: p.AccountID, Credential: p.cred}, nil
}

var _ registry.SubjectChecker = (*RegistryAuthorizer)(nil)

// SubjectActive lets the registry refuse, at once, tokens and cached logins of a user who has been disabled or
// deleted since they were issued (also one deleted and re-created under the same name, or disabled and
// enabled again). A store error other
// than not-found answers true: the user's state cannot have changed while the store is unreachable, and pulls
// keep working through a database blip.
func (a *RegistryAuthorizer) SubjectActive(ctx context.Context, subj registry.Subject, issued time.Time) bool {
	cu, err := a.Service.loadUser(ctx, subj.Name)
	if err != nil {
		return !errors.Is(err, store.ErrNotFound)
	}
	// Token times have one-second precision (TokensNotBefore is a whole second already).
	if !cu.user.Enabled || issued.Before(cu.user.CreatedAt.Truncate(time.Second)) || issued.Before(cu.user.TokensNotBefore) {
		return false
	}
	// The credential the login proved (a password, an access key, or the one a temporary token came from)
	// must still stand: a password change or a disabled or deleted key ends the tokens made with it.
	ok, err := a.Service.credentialActive(ctx, cu, subj.Credential)
	return ok || (err != nil && !errors.Is(err, store.ErrNotFound))
}

var actionFor = map[string]string{
	"pull":   policies.ActionPullRepository,
	"push":   policies.ActionPushRepository,
	"delete": policies.ActionDeleteRepositoryTag,
}

// Grant returns the actions the subject may have on each requested resource.
func (a *RegistryAuthorizer) Grant(ctx context.Context, subj registry.Subject, requested []registry.Access) ([]registry.Access, error) {
	var p *Principal
	if !subj.Anonymous && subj.Name != "" {
		var err error
		if p, err = a.Service.Principal(ctx, subj.Name); err != nil {
			return nil, nil // deleted or disabled since the token was issued: nothing
		}
	}
	var out []registry.Access
	for _, req := range requested {
		var granted []string
		switch req.Type {
		case "registry":
			if req.Name == "catalog" && p.Can(policies.ActionListRepository, policies.AnyResource) {
				granted = []string{"*"}
			}
		case "repository":
			ns, repo, ok := strings.Cut(req.Name, "/")
			if !ok || strings.Contains(repo, "/") {
				continue
			}
			res := policies.RepositoryResource(a.Region, a.Service.accountID, ns, repo)
			want := req.Actions
			if len(want) == 1 && want[0] == "*" {
				want = []string{"pull", "push", "delete"}
			}
			for _, act := range want {
				ram, known := actionFor[act]
				if !known {
					continue
				}
				if p.Can(ram, res) || (act == "pull" && a.public(ctx, ns, repo)) {
					granted = append(granted, act)
				}
			}
		}
		if len(granted) > 0 {
			out = append(out, registry.Access{Type: req.Type, Name: req.Name, Actions: granted})
		}
	}
	return out, nil
}

func (a *RegistryAuthorizer) public(ctx context.Context, ns, repo string) bool {
	r, err := a.Service.store.GetRepository(ctx, ns, repo)
	return err == nil && r.Visibility == store.VisibilityPublic
}
