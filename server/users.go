package server

import (
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"github.com/berth-dev/berth/policies"
	"github.com/berth-dev/berth/policies/access"
	"github.com/berth-dev/berth/store"
)

// Error codes of user management.
const (
	// CodeAdminUserProtected: the main account's administrator cannot be deleted or disabled, and policies do
	// not apply to it.
	CodeAdminUserProtected = "ADMIN_USER_PROTECTED"
	// CodeLimitExceeded: a per-user limit (access keys, attached policies) is reached.
	CodeLimitExceeded = "LIMIT_EXCEEDED"
)

// Limits of user management.
const (
	MaxDisplayNameRunes  = 128
	MaxAccessKeysPerUser = 5
	MaxPoliciesPerUser   = 20
)

type userView struct {
	Name        string    `json:"name"`
	DisplayName string    `json:"display_name"`
	Enabled     bool      `json:"enabled"`
	Admin       bool      `json:"admin"`
	Policies    []string  `json:"policies"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
}

func viewUser(u *store.User) userView {
	ps := u.Policies
	if ps == nil {
		ps = []string{}
	}
	return userView{Name: u.Name, DisplayName: u.DisplayName, Enabled: u.Enabled, Admin: u.Admin, Policies: ps,
		CreatedAt: u.CreatedAt, UpdatedAt: u.UpdatedAt}
}

type accessKeyView struct {
	ID        string    `json:"id"`
	User      string    `json:"user"`
	Secret    string    `json:"secret,omitempty"` // only in the answer that creates the key
	Enabled   bool      `json:"enabled"`
	CreatedAt time.Time `json:"created_at"`
}

func viewAccessKey(k *store.AccessKey) accessKeyView {
	return accessKeyView{ID: k.ID, User: k.User, Enabled: k.Enabled, CreatedAt: k.CreatedAt}
}

func checkDisplayName(v *string) error {
	if v == nil {
		return nil
	}
	if n := utf8.RuneCountInString(*v); n > MaxDisplayNameRunes {
		return badRequest("display_name is %d characters; at most %d are allowed", n, MaxDisplayNameRunes)
	}
	if strings.IndexFunc(*v, unicode.IsControl) >= 0 || !utf8.ValidString(*v) {
		return badRequest("display_name may not hold control characters")
	}
	return nil
}

func hashPassword(pw *string) (*string, error) {
	if pw == nil {
		return nil, nil
	}
	h, err := access.HashPassword(*pw)
	if err != nil {
		return nil, badRequest("password: %v", err)
	}
	return &h, nil
}

// policyExists reports whether name is a system policy or a stored custom one.
func (a *api) policyExists(c *gin.Context, name string) (bool, error) {
	if policies.IsSystemPolicy(name) {
		return true, nil
	}
	_, err := a.Store.GetPolicy(c.Request.Context(), name)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

func (a *api) createUser(c *gin.Context) {
	var req struct {
		Name        string   `json:"name"`
		DisplayName *string  `json:"display_name"`
		Password    *string  `json:"password"`
		Enabled     *bool    `json:"enabled"`
		Policies    []string `json:"policies"`
	}
	if err := bindJSON(c, &req); err != nil {
		fail(c, err)
		return
	}
	if err := store.ValidateUserName(req.Name); err != nil {
		fail(c, errf(http.StatusBadRequest, CodeInvalidName, "%v", err))
		return
	}
	if err := checkDisplayName(req.DisplayName); err != nil {
		fail(c, err)
		return
	}
	hash, err := hashPassword(req.Password)
	if err != nil {
		fail(c, err)
		return
	}
	u := &store.User{Name: req.Name, AccountID: a.AccountID, Enabled: true}
	if req.DisplayName != nil {
		u.DisplayName = *req.DisplayName
	}
	if hash != nil {
		u.PasswordHash = *hash
	}
	if req.Enabled != nil {
		u.Enabled = *req.Enabled
	}
	for _, pn := range req.Policies {
		if slices.Contains(u.Policies, pn) {
			continue
		}
		ok, err := a.policyExists(c, pn)
		if err != nil {
			fail(c, err)
			return
		}
		if !ok {
			fail(c, notFound("policy %q does not exist; list policies with GET /api/v1/policies", pn))
			return
		}
		u.Policies = append(u.Policies, pn)
	}
	if len(u.Policies) > MaxPoliciesPerUser {
		fail(c, errf(http.StatusBadRequest, CodeLimitExceeded, "%d policies; a user may have at most %d", len(u.Policies), MaxPoliciesPerUser))
		return
	}
	err = a.Store.CreateUser(c.Request.Context(), u)
	if errors.Is(err, store.ErrAlreadyExists) {
		fail(c, errf(http.StatusConflict, CodeAlreadyExists, "user %q already exists; choose another name", req.Name))
		return
	}
	if err != nil {
		fail(c, err)
		return
	}
	a.Auth.Invalidate(u.Name) // a re-created name must not see the old user's cached state
	c.JSON(http.StatusCreated, viewUser(u))
}

func (a *api) listUsers(c *gin.Context) {
	p, err := page(c)
	if err != nil {
		fail(c, err)
		return
	}
	items, total, err := a.Store.ListUsers(c.Request.Context(), p)
	if err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusOK, list(items, total, p, viewUser))
}

// userOr404 loads the user named by the :name parameter.
func (a *api) userOr404(c *gin.Context) (*store.User, bool) {
	u, err := a.Store.GetUser(c.Request.Context(), c.Param("name"))
	if errors.Is(err, store.ErrNotFound) {
		fail(c, notFound("user %q does not exist", c.Param("name")))
		return nil, false
	}
	if err != nil {
		fail(c, err)
		return nil, false
	}
	return u, true
}

// adminOnlyChanges refuses changes to the administrator's credentials by anyone but the administrator: a RAM
// user with AdministratorAccess manages users, but must not be able to become the main account.
func adminOnlyChanges(c *gin.Context, u *store.User) bool {
	if u.Admin && !principal(c).Admin {
		fail(c, errf(http.StatusForbidden, CodeForbidden,
			"only the administrator itself may change the administrator's password or access keys"))
		return false
	}
	return true
}

func (a *api) getUser(c *gin.Context) {
	if u, ok := a.userOr404(c); ok {
		c.JSON(http.StatusOK, viewUser(u))
	}
}

func (a *api) updateUser(c *gin.Context) {
	var req struct {
		DisplayName *string `json:"display_name"`
		Password    *string `json:"password"`
		Enabled     *bool   `json:"enabled"`
	}
	if err := bindJSON(c, &req); err != nil {
		fail(c, err)
		return
	}
	if err := checkDisplayName(req.DisplayName); err != nil {
		fail(c, err)
		return
	}
	hash, err := hashPassword(req.Password)
	if err != nil {
		fail(c, err)
		return
	}
	u, ok := a.userOr404(c)
	if !ok {
		return
	}
	if u.Admin {
		if req.Enabled != nil && !*req.Enabled {
			fail(c, errf(http.StatusConflict, CodeAdminUserProtected, "the administrator cannot be disabled"))
			return
		}
		if req.Password != nil && !adminOnlyChanges(c, u) {
			return
		}
	}
	disable := req.Enabled != nil && !*req.Enabled
	u, err = a.Store.ChangeUser(c.Request.Context(), u.Name,
		store.UserUpdate{DisplayName: req.DisplayName, PasswordHash: hash, Enabled: req.Enabled, RevokeTokens: disable})
	a.userChanged(c, u, err)
}

func (a *api) deleteUser(c *gin.Context) {
	u, ok := a.userOr404(c)
	if !ok {
		return
	}
	if u.Admin {
		fail(c, errf(http.StatusConflict, CodeAdminUserProtected, "the administrator cannot be deleted"))
		return
	}
	err := a.Store.DeleteUser(c.Request.Context(), u.Name)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		fail(c, err)
		return
	}
	a.Auth.Invalidate(u.Name)
	c.Status(http.StatusNoContent)
}

func (a *api) createAccessKey(c *gin.Context) {
	u, ok := a.userOr404(c)
	if !ok || !adminOnlyChanges(c, u) {
		return
	}
	ctx := c.Request.Context()
	_, n, err := a.Store.ListAccessKeys(ctx, u.Name, store.Page{Page: 1, PageSize: 1})
	if err != nil {
		fail(c, err)
		return
	}
	if n >= MaxAccessKeysPerUser {
		fail(c, errf(http.StatusConflict, CodeLimitExceeded,
			"user %q already has %d access keys, the limit; delete one first", u.Name, n))
		return
	}
	id, secret, err := a.Auth.NewAccessKey(ctx, u.Name)
	if err != nil {
		fail(c, err)
		return
	}
	k, err := a.Store.GetAccessKey(ctx, id)
	if err != nil {
		fail(c, err)
		return
	}
	v := viewAccessKey(k)
	v.Secret = secret
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusCreated, v)
}

func (a *api) listAccessKeys(c *gin.Context) {
	p, err := page(c)
	if err != nil {
		fail(c, err)
		return
	}
	u, ok := a.userOr404(c)
	if !ok {
		return
	}
	items, total, err := a.Store.ListAccessKeys(c.Request.Context(), u.Name, p)
	if err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusOK, list(items, total, p, viewAccessKey))
}

func (a *api) updateAccessKey(c *gin.Context) {
	var req struct {
		Enabled *bool `json:"enabled"`
	}
	if err := bindJSON(c, &req); err != nil {
		fail(c, err)
		return
	}
	if req.Enabled == nil {
		fail(c, badRequest("give enabled: true or false"))
		return
	}
	u, ok := a.userOr404(c)
	if !ok || !adminOnlyChanges(c, u) {
		return
	}
	ctx := c.Request.Context()
	err := a.Store.SetAccessKeyEnabled(ctx, u.Name, c.Param("id"), *req.Enabled)
	if errors.Is(err, store.ErrNotFound) {
		fail(c, notFound("user %q has no access key %q", u.Name, c.Param("id")))
		return
	}
	if err != nil {
		fail(c, err)
		return
	}
	a.Auth.Invalidate(u.Name)
	k, err := a.Store.GetAccessKey(ctx, c.Param("id"))
	if err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusOK, viewAccessKey(k))
}

func (a *api) deleteAccessKey(c *gin.Context) {
	u, ok := a.userOr404(c)
	if !ok || !adminOnlyChanges(c, u) {
		return
	}
	err := a.Store.DeleteAccessKey(c.Request.Context(), u.Name, c.Param("id"))
	if errors.Is(err, store.ErrNotFound) {
		fail(c, notFound("user %q has no access key %q", u.Name, c.Param("id")))
		return
	}
	if err != nil {
		fail(c, err)
		return
	}
	a.Auth.Invalidate(u.Name)
	c.Status(http.StatusNoContent)
}

func (a *api) attachPolicy(c *gin.Context) {
	u, ok := a.userOr404(c)
	if !ok {
		return
	}
	pn := c.Param("policy")
	if u.Admin {
		fail(c, errf(http.StatusConflict, CodeAdminUserProtected,
			"the administrator is allowed everything; policies do not apply to it"))
		return
	}
	exists, err := a.policyExists(c, pn)
	if err != nil {
		fail(c, err)
		return
	}
	if !exists {
		fail(c, notFound("policy %q does not exist; list policies with GET /api/v1/policies", pn))
		return
	}
	if !slices.Contains(u.Policies, pn) && len(u.Policies) >= MaxPoliciesPerUser {
		fail(c, errf(http.StatusConflict, CodeLimitExceeded,
			"user %q already has %d policies, the limit; detach one first", u.Name, len(u.Policies)))
		return
	}
	u, err = a.Store.AttachPolicy(c.Request.Context(), u.Name, pn)
	a.userChanged(c, u, err)
}

func (a *api) detachPolicy(c *gin.Context) {
	u, ok := a.userOr404(c)
	if !ok {
		return
	}
	pn := c.Param("policy")
	if !slices.Contains(u.Policies, pn) {
		fail(c, notFound("policy %q is not attached to user %q", pn, u.Name))
		return
	}
	if _, err := a.Store.DetachPolicy(c.Request.Context(), u.Name, pn); err != nil {
		fail(c, err)
		return
	}
	a.Auth.Invalidate(u.Name)
	c.Status(http.StatusNoContent)
}

// userChanged answers a change to a user: the user as it now is, after dropping what was cached about it so
// the change applies to its next request; or the error.
func (a *api) userChanged(c *gin.Context, u *store.User, err error) {
	if errors.Is(err, store.ErrNotFound) {
		fail(c, notFound("user %q does not exist", c.Param("name")))
		return
	}
	if err != nil {
		fail(c, err)
		return
	}
	a.Auth.Invalidate(u.Name)
	c.JSON(http.StatusOK, viewUser(u))
}
