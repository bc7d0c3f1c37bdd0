package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"time"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"github.com/berth-dev/berth/policies"
	"github.com/berth-dev/berth/store"
)

// Error codes of policy management.
const (
	// CodeInvalidPolicy: the policy document does not validate; the message says where and why.
	CodeInvalidPolicy = "INVALID_POLICY"
	// CodeSystemPolicyReadOnly: system policies cannot be created, changed or deleted.
	CodeSystemPolicyReadOnly = "SYSTEM_POLICY_READ_ONLY"
)

// MaxPolicyDescriptionRunes bounds a custom policy's description.
const MaxPolicyDescriptionRunes = 1024

type policyView struct {
	Name        string          `json:"name"`
	Description string          `json:"description"`
	Document    json.RawMessage `json:"document"`
	System      bool            `json:"system"`
	CreatedAt   *time.Time      `json:"created_at,omitempty"`
	UpdatedAt   *time.Time      `json:"updated_at,omitempty"`
}

func viewSystemPolicy(p policies.Policy) policyView {
	doc, _ := json.Marshal(p.Document)
	return policyView{Name: p.Name, Description: p.Description, Document: doc, System: true}
}

func viewPolicy(p *store.Policy) policyView {
	return policyView{Name: p.Name, Description: p.Description, Document: json.RawMessage(p.Document),
		CreatedAt: &p.CreatedAt, UpdatedAt: &p.UpdatedAt}
}

// policyDocument validates a document given as a JSON object, or as a string holding one (the form Alibaba
// Cloud's API uses), and returns its compact text for storage.
func policyDocument(raw json.RawMessage) (string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return "", errf(http.StatusBadRequest, CodeInvalidPolicy,
			`document is missing; give a policy document such as {"Version":"1","Statement":[…]}`)
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", errf(http.StatusBadRequest, CodeInvalidPolicy, "document: %v", err)
		}
		raw = []byte(s)
	}
	if _, err := policies.Parse(raw); err != nil {
		return "", errf(http.StatusBadRequest, CodeInvalidPolicy, "%v", err)
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, raw); err != nil { // Parse accepted it, so this cannot fail
		return "", err
	}
	return compact.String(), nil
}

func checkPolicyDescription(d *string) error {
	if d != nil && utf8.RuneCountInString(*d) > MaxPolicyDescriptionRunes {
		return badRequest("description is %d characters; at most %d are allowed", utf8.RuneCountInString(*d), MaxPolicyDescriptionRunes)
	}
	return nil
}

func systemPolicyReadOnly(c *gin.Context, status int, name string) {
	fail(c, errf(status, CodeSystemPolicyReadOnly,
		"%s is a system policy and read-only; create a custom policy with POST /api/v1/policies instead", name))
}

func (a *api) createPolicy(c *gin.Context) {
	var req struct {
		Name        string          `json:"name"`
		Description *string         `json:"description"`
		Document    json.RawMessage `json:"document"`
	}
	if err := bindJSON(c, &req); err != nil {
		fail(c, err)
		return
	}
	if policies.IsSystemPolicy(req.Name) {
		systemPolicyReadOnly(c, http.StatusConflict, req.Name)
		return
	}
	if err := policies.ValidateName(req.Name); err != nil {
		fail(c, errf(http.StatusBadRequest, CodeInvalidName, "%v", err))
		return
	}
	if err := checkPolicyDescription(req.Description); err != nil {
		fail(c, err)
		return
	}
	doc, err := policyDocument(req.Document)
	if err != nil {
		fail(c, err)
		return
	}
	p := &store.Policy{Name: req.Name, Document: doc}
	if req.Description != nil {
		p.Description = *req.Description
	}
	err = a.Store.CreatePolicy(c.Request.Context(), p)
	if errors.Is(err, store.ErrAlreadyExists) {
		fail(c, errf(http.StatusConflict, CodeAlreadyExists, "policy %q already exists; change it with PUT /api/v1/policies/%s", req.Name, req.Name))
		return
	}
	if err != nil {
		fail(c, err)
		return
	}
	// A user may hold the name of a policy deleted earlier only if the delete raced an attach; drop what is
	// cached so the new document is read.
	a.Auth.Invalidate("")
	c.JSON(http.StatusCreated, viewPolicy(p))
}

// listPolicies lists the system policies first, then the custom ones by name, as one paged list.
func (a *api) listPolicies(c *gin.Context) {
	p, err := page(c)
	if err != nil {
		fail(c, err)
		return
	}
	sys := policies.SystemPolicies()
	from := (p.Page - 1) * p.PageSize
	out := []policyView{}
	for i := from; i < len(sys) && len(out) < p.PageSize; i++ {
		out = append(out, viewSystemPolicy(sys[i]))
	}
	custom, total, err := a.Store.ListPoliciesFrom(c.Request.Context(), max(0, from-len(sys)), p.PageSize-len(out))
	if err != nil {
		fail(c, err)
		return
	}
	for i := range custom {
		out = append(out, viewPolicy(&custom[i]))
	}
	c.JSON(http.StatusOK, listResponse[policyView]{Items: out, Total: total + int64(len(sys)), Page: p.Page, PageSize: p.PageSize})
}

func (a *api) getPolicy(c *gin.Context) {
	name := c.Param("name")
	if sp, ok := policies.SystemPolicy(name); ok {
		c.JSON(http.StatusOK, viewSystemPolicy(sp))
		return
	}
	p, err := a.Store.GetPolicy(c.Request.Context(), name)
	if errors.Is(err, store.ErrNotFound) {
		fail(c, notFound("policy %q does not exist", name))
		return
	}
	if err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusOK, viewPolicy(p))
}

func (a *api) updatePolicy(c *gin.Context) {
	name := c.Param("name")
	if policies.IsSystemPolicy(name) {
		systemPolicyReadOnly(c, http.StatusForbidden, name)
		return
	}
	var req struct {
		Description *string         `json:"description"`
		Document    json.RawMessage `json:"document"`
	}
	if err := bindJSON(c, &req); err != nil {
		fail(c, err)
		return
	}
	if err := checkPolicyDescription(req.Description); err != nil {
		fail(c, err)
		return
	}
	doc, err := policyDocument(req.Document)
	if err != nil {
		fail(c, err)
		return
	}
	ctx := c.Request.Context()
	old, err := a.Store.GetPolicy(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		fail(c, notFound("policy %q does not exist; create it with POST /api/v1/policies", name))
		return
	}
	if err != nil {
		fail(c, err)
		return
	}
	desc := old.Description
	if req.Description != nil {
		desc = *req.Description
	}
	p, err := a.Store.UpdatePolicy(ctx, name, desc, doc)
	if errors.Is(err, store.ErrNotFound) {
		fail(c, notFound("policy %q does not exist", name))
		return
	}
	if err != nil {
		fail(c, err)
		return
	}
	a.Auth.Invalidate("")
	c.JSON(http.StatusOK, viewPolicy(p))
}

func (a *api) deletePolicy(c *gin.Context) {
	name := c.Param("name")
	if policies.IsSystemPolicy(name) {
		systemPolicyReadOnly(c, http.StatusForbidden, name)
		return
	}
	err := a.Store.DeletePolicy(c.Request.Context(), name)
	if errors.Is(err, store.ErrNotFound) {
		fail(c, notFound("policy %q does not exist", name))
		return
	}
	if err != nil {
		fail(c, err)
		return
	}
	a.Auth.Invalidate("")
	c.Status(http.StatusNoContent)
}
