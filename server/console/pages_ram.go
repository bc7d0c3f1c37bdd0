package console

import (
	"encoding/json"
	"net/url"
	"strings"
)

func (c *Console) users(x *reqCtx) {
	var l list[user]
	if err := x.call("GET", apiPath("users")+"?page_size=100", nil, &l); err != nil && x.flash == nil {
		x.flash, x.status = err, statusOf(err)
	}
	var pols list[policy]
	if x.can("GET", apiPath("policies")) {
		_ = x.call("GET", apiPath("policies")+"?page_size=100", nil, &pols)
	}
	x.render("users", "Users", map[string]any{"Items": l.Items, "Policies": pols.Items, "Form": x.r.PostForm})
}

func (c *Console) createUser(x *reqCtx) {
	f := x.r.PostForm
	name := strings.TrimSpace(f.Get("name"))
	body := map[string]any{"name": name, "display_name": f.Get("display_name"), "password": f.Get("password"),
		"enabled": true, "policies": f["policies"]}
	if f.Get("password") == "" {
		delete(body, "password")
	}
	if len(f["policies"]) == 0 {
		body["policies"] = []string{}
	}
	if err := x.call("POST", apiPath("users"), body, nil); err != nil {
		x.again(err, c.users)
		return
	}
	x.done("/users/" + url.PathEscape(name))
}

func (c *Console) userPage(x *reqCtx) { c.showUser(x, nil) }

// showUser shows a user, its access keys and policies; created is an access key just made (its secret shown
// this once).
func (c *Console) showUser(x *reqCtx, created *accessKey) {
	name := x.r.PathValue("name")
	var u user
	if err := x.call("GET", apiPath("users", name), nil, &u); err != nil {
		x.fail(err)
		return
	}
	data := map[string]any{"U": u, "Created": created, "API": apiPath("users", name), "Base": "/users/" + url.PathEscape(name)}
	var keys list[accessKey]
	if err := x.call("GET", apiPath("users", name, "access-keys")+"?page_size=100", nil, &keys); err != nil {
		data["KeysError"] = err
	}
	data["Keys"] = keys.Items
	var pols list[policy]
	if x.can("GET", apiPath("policies")) {
		_ = x.call("GET", apiPath("policies")+"?page_size=100", nil, &pols)
	}
	attached := map[string]bool{}
	for _, p := range u.Policies {
		attached[p] = true
	}
	var other []string
	for _, p := range pols.Items {
		if !attached[p.Name] {
			other = append(other, p.Name)
		}
	}
	data["Attachable"] = other
	x.render("user", name, data)
}

func (c *Console) updateUser(x *reqCtx) {
	name, f := x.r.PathValue("name"), x.r.PostForm
	body := map[string]any{}
	if v := f.Get("display_name"); f.Has("display_name") {
		body["display_name"] = v
	}
	if v := f.Get("password"); v != "" {
		body["password"] = v
	}
	if v := f.Get("enabled"); v != "" {
		body["enabled"] = v == "true"
	}
	if err := x.call("PATCH", apiPath("users", name), body, nil); err != nil {
		x.again(err, c.userPage)
		return
	}
	x.done("/users/" + url.PathEscape(name))
}

func (c *Console) deleteUser(x *reqCtx) {
	if err := x.call("DELETE", apiPath("users", x.r.PathValue("name")), nil, nil); err != nil {
		x.again(err, c.userPage)
		return
	}
	x.done("/users")
}

func (c *Console) createAccessKey(x *reqCtx) {
	var k accessKey
	if err := x.call("POST", apiPath("users", x.r.PathValue("name"), "access-keys"), nil, &k); err != nil {
		x.again(err, c.userPage)
		return
	}
	x.notice = "Access key created. Copy its secret now: it is not shown again."
	c.showUser(x, &k)
}

func (c *Console) deleteAccessKey(x *reqCtx) {
	name := x.r.PathValue("name")
	if err := x.call("DELETE", apiPath("users", name, "access-keys", x.r.PathValue("id")), nil, nil); err != nil {
		x.again(err, c.userPage)
		return
	}
	x.done("/users/" + url.PathEscape(name))
}

func (c *Console) attachPolicy(x *reqCtx) {
	name := x.r.PathValue("name")
	if err := x.call("PUT", apiPath("users", name, "policies", x.r.PostForm.Get("policy")), nil, nil); err != nil {
		x.again(err, c.userPage)
		return
	}
	x.done("/users/" + url.PathEscape(name))
}

func (c *Console) detachPolicy(x *reqCtx) {
	name := x.r.PathValue("name")
	if err := x.call("DELETE", apiPath("users", name, "policies", x.r.PathValue("policy")), nil, nil); err != nil {
		x.again(err, c.userPage)
		return
	}
	x.done("/users/" + url.PathEscape(name))
}

const examplePolicy = `{
  "Version": "1",
  "Statement": [
    {
      "Effect": "Allow",
      "Action": ["cr:Get*", "cr:List*", "cr:PullRepository"],
      "Resource": ["acs:cr:*:*:repository/my-namespace/*"]
    }
  ]
}`

func (c *Console) policies(x *reqCtx) {
	var l list[policy]
	if err := x.call("GET", apiPath("policies")+"?page_size=100", nil, &l); err != nil && x.flash == nil {
		x.flash, x.status = err, statusOf(err)
	}
	doc := x.r.PostForm.Get("document")
	if doc == "" {
		doc = examplePolicy
	}
	x.render("policies", "Policies", map[string]any{"Items": l.Items, "Form": x.r.PostForm, "Document": doc})
}

// policyBody reads a policy form: the document is sent as the JSON it is (the API validates it and answers
// INVALID_POLICY with what is wrong); text that is not JSON at all is sent as a string, so the API says so.
func policyBody(f map[string][]string) map[string]any {
	get := func(k string) string {
		if v := f[k]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	body := map[string]any{"description": get("description")}
	doc := strings.TrimSpace(get("document"))
	if json.Valid([]byte(doc)) {
		body["document"] = json.RawMessage(doc)
	} else {
		body["document"] = doc
	}
	return body
}

func (c *Console) createPolicy(x *reqCtx) {
	f := x.r.PostForm
	name := strings.TrimSpace(f.Get("name"))
	body := policyBody(f)
	body["name"] = name
	if err := x.call("POST", apiPath("policies"), body, nil); err != nil {
		x.again(err, c.policies)
		return
	}
	x.done("/policies/" + url.PathEscape(name))
}

func (c *Console) policyPage(x *reqCtx) {
	name := x.r.PathValue("name")
	var p policy
	if err := x.call("GET", apiPath("policies", name), nil, &p); err != nil {
		x.fail(err)
		return
	}
	doc := x.r.PostForm.Get("document")
	if doc == "" {
		var pretty any
		if json.Unmarshal(p.Document, &pretty) == nil {
			b, _ := json.MarshalIndent(pretty, "", "  ")
			doc = string(b)
		} else {
			doc = string(p.Document)
		}
	}
	x.render("policy", name, map[string]any{"P": p, "Document": doc, "API": apiPath("policies", name),
		"Base": "/policies/" + url.PathEscape(name)})
}

func (c *Console) updatePolicy(x *reqCtx) {
	name := x.r.PathValue("name")
	if err := x.call("PUT", apiPath("policies", name), policyBody(x.r.PostForm), nil); err != nil {
		x.again(err, c.policyPage)
		return
	}
	x.notice = "Policy saved; it applies to its users at once."
	x.r.PostForm.Del("document")
	c.policyPage(x)
}

func (c *Console) deletePolicy(x *reqCtx) {
	if err := x.call("DELETE", apiPath("policies", x.r.PathValue("name")), nil, nil); err != nil {
		x.again(err, c.policyPage)
		return
	}
	x.done("/policies")
}

func (c *Console) credentials(x *reqCtx) { c.showCredentials(x, nil) }

func (c *Console) showCredentials(x *reqCtx, tok *tempToken) {
	data := map[string]any{"Token": tok, "Registry": x.registry()}
	if tok != nil {
		data["Login"] = "echo " + tok.Password + " | docker login " + x.registry() + " -u " + tok.Username + " --password-stdin"
	}
	x.render("credentials", "Temporary login credentials", data)
}

func (c *Console) createCredentials(x *reqCtx) {
	var tok tempToken
	if err := x.call("POST", apiPath("auth", "token"), nil, &tok); err != nil {
		x.again(err, c.credentials)
		return
	}
	x.w.Header().Set("Cache-Control", "no-store")
	c.showCredentials(x, &tok)
}
