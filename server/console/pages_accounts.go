package console

import (
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
)

// Code accounts (SPEC §16) and "Create repository" as two steps (SPEC §12, as in the guide's console): step 1
// names the repository, step 2 connects its code source, from a bound code account (an account, one of its
// repositories, a branch), from a Git URL and credentials, or is skipped.

// connectPath is a step 2 page, the only place a bind form sends the browser back to.
var connectPath = regexp.MustCompile(`^/repositories/[a-z0-9][a-z0-9_.-]*/[a-z0-9][a-z0-9_.-]*/connect$`)

func (c *Console) codeAccounts(x *reqCtx) {
	var l list[codeAccount]
	if err := x.call("GET", apiPath("code-accounts")+"?page_size=100", nil, &l); err != nil {
		x.fail(err)
		return
	}
	x.render("code_accounts", "Code accounts", map[string]any{"Items": l.Items, "Form": x.r.PostForm})
}

func (c *Console) createCodeAccount(x *reqCtx) {
	f := x.r.PostForm
	body := map[string]any{"provider": f.Get("provider"), "username": strings.TrimSpace(f.Get("username")), "token": f.Get("token")}
	if v := strings.TrimSpace(f.Get("base_url")); v != "" {
		body["base_url"] = v
	}
	var a codeAccount
	if err := x.call("POST", apiPath("code-accounts"), body, &a); err != nil {
		x.again(err, c.codeAccounts)
		return
	}
	if next := f.Get("next"); connectPath.MatchString(next) { // bound from step 2: back to it, the account chosen
		x.done(next + "?account=" + url.QueryEscape(a.ID))
		return
	}
	x.notice = "The " + a.Provider + " account " + a.Username + " is bound; connect repositories to its repositories now."
	x.r.PostForm = nil
	c.codeAccounts(x)
}

func (c *Console) deleteCodeAccount(x *reqCtx) {
	if err := x.call("DELETE", apiPath("code-accounts", x.r.PathValue("id")), nil, nil); err != nil {
		x.again(err, c.codeAccounts)
		return
	}
	x.done("/code-accounts")
}

// newRepository is step 1 when the namespace is chosen on the page (from the Repositories page).
func (c *Console) newRepository(x *reqCtx) {
	data := map[string]any{"Form": x.r.PostForm, "Namespace": x.r.URL.Query().Get("namespace")}
	if x.r.Method == http.MethodPost {
		data["Namespace"] = x.r.PostForm.Get("namespace")
	}
	if x.can("GET", apiPath("namespaces")) {
		var nss list[namespace]
		if err := x.call("GET", apiPath("namespaces")+"?page_size=100", nil, &nss); err == nil {
			var mine []string
			for _, n := range nss.Items {
				if x.can("POST", apiPath("namespaces", n.Name, "repositories")) {
					mine = append(mine, n.Name)
				}
			}
			data["Namespaces"] = mine
		}
	}
	x.render("repository_new", "Create a repository", data)
}

func (c *Console) postNewRepository(x *reqCtx) {
	ns := strings.TrimSpace(x.r.PostForm.Get("namespace"))
	if ns == "" {
		x.again(&apiError{Status: http.StatusBadRequest, Code: "INVALID_ARGUMENT", Message: "choose the namespace the repository goes in"}, c.newRepository)
		return
	}
	c.createRepositoryIn(x, ns, c.newRepository)
}

// createRepositoryIn is step 1: it creates the repository and goes on to step 2, connecting its code source.
func (c *Console) createRepositoryIn(x *reqCtx, ns string, again func(*reqCtx)) {
	f := x.r.PostForm
	name := strings.TrimSpace(f.Get("name"))
	body := map[string]any{"name": name, "summary": f.Get("summary"), "description": f.Get("description")}
	if v := f.Get("visibility"); v != "" { // empty: the namespace's default
		body["visibility"] = v
	}
	if err := x.call("POST", apiPath("namespaces", ns, "repositories"), body, nil); err != nil {
		x.again(err, again)
		return
	}
	to := "/repositories/" + url.PathEscape(ns) + "/" + url.PathEscape(name)
	if x.can("PUT", apiPath("repositories", ns, name, "source")) {
		to += "/connect"
	}
	x.done(to)
}

// connect is step 2: choose a code account, then one of its repositories (searchable, paged as the host
// pages), then the branch to build; or a Git URL with credentials; or skip.
func (c *Console) connect(x *reqCtx) {
	nav := x.repoNav("build")
	var r repository
	if err := x.call("GET", nav.API, nil, &r); err != nil {
		x.fail(err)
		return
	}
	q := x.r.URL.Query()
	if x.r.Method == http.MethodPost {
		q = x.r.PostForm
	}
	data := map[string]any{"Nav": nav, "Repo": r, "Form": x.r.PostForm, "Self": nav.Base + "/connect"}
	if !x.can("PUT", nav.API+"/source") {
		data["CannotConnect"] = true
		x.render("connect", nav.NS+"/"+nav.Name+": connect the code source", data)
		return
	}
	canAccounts := x.can("GET", apiPath("code-accounts"))
	data["CanAccounts"] = canAccounts
	data["CanBind"] = x.can("POST", apiPath("code-accounts"))
	if canAccounts {
		var accounts list[codeAccount]
		if err := x.call("GET", apiPath("code-accounts")+"?page_size=100", nil, &accounts); err != nil {
			data["AccountsError"] = err
		}
		data["Accounts"] = accounts.Items
		id := q.Get("account")
		for i := range accounts.Items {
			if accounts.Items[i].ID == id {
				data["Account"] = &accounts.Items[i]
			}
		}
		if data["Account"] != nil {
			c.hostRepositories(x, id, q, data)
		}
	}
	x.render("connect", nav.NS+"/"+nav.Name+": connect the code source", data)
}

// hostRepositories fills the repositories of code account id that the page shows (?q= searches, ?page=
// pages), and the one chosen (?repository=owner/name) with the branch to build.
func (c *Console) hostRepositories(x *reqCtx, id string, q url.Values, data map[string]any) {
	search := strings.TrimSpace(q.Get("q"))
	page, _ := strconv.Atoi(q.Get("page"))
	if page < 1 || page > 10000 {
		page = 1
	}
	chosen := q.Get("repository")
	v := url.Values{"page": {strconv.Itoa(page)}}
	if search != "" {
		v.Set("q", search)
	} else if chosen != "" {
		v.Set("q", chosen[strings.LastIndex(chosen, "/")+1:])
	}
	var repos struct {
		Items    []hostRepository `json:"items"`
		NextPage int              `json:"next_page"`
	}
	if err := x.call("GET", apiPath("code-accounts", id, "repositories")+"?"+v.Encode(), nil, &repos); err != nil {
		data["ReposError"] = err
	}
	data["Repos"] = repos.Items
	data["Q"] = v.Get("q")
	data["Page"] = page
	link := func(p int) string {
		l := url.Values{"account": {id}, "page": {strconv.Itoa(p)}}
		if search != "" {
			l.Set("q", search)
		}
		return "?" + l.Encode()
	}
	if page > 1 {
		data["Prev"] = link(page - 1)
	}
	if repos.NextPage > page {
		data["Next"] = link(repos.NextPage)
	}
	if chosen == "" {
		return
	}
	pick := hostRepository{FullName: chosen}
	for _, r := range repos.Items {
		if r.FullName == chosen {
			pick = r
		}
	}
	data["Chosen"] = pick
	branch := pick.DefaultBranch
	if x.r.Method == http.MethodPost {
		branch = q.Get("branch")
	}
	data["Branch"] = branch
}

// postConnect connects the source chosen in step 2, and adds a rule building the chosen branch as latest.
func (c *Console) postConnect(x *reqCtx) {
	nav, f := x.repoNav("build"), x.r.PostForm
	body := sourceBody(f, f.Get("mode") != "account")
	if f.Get("mode") == "account" {
		body["account_id"], body["repository"] = f.Get("account"), f.Get("repository")
	}
	var src source
	if err := x.call("PUT", nav.API+"/source", body, &src); err != nil {
		x.again(err, c.connect)
		return
	}
	x.notice = "The code source is connected."
	if branch := strings.TrimSpace(f.Get("branch")); branch != "" {
		rule := map[string]any{"source_type": "BRANCH", "source_ref": branch, "image_tag": "latest"}
		if err := x.call("POST", nav.API+"/build-rules", rule, nil); err != nil {
			x.flash, x.status = err, statusOf(err)
		} else {
			x.notice += " A build rule builds branch " + branch + " as the image tag latest; change it below."
		}
	}
	x.r.PostForm = url.Values{}
	c.showBuildSettings(x, &src)
}
