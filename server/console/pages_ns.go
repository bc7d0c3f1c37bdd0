package console

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// pager is one page of a list and the links around it.
type pager struct {
	Page, Pages int
	Total       int64
	Prev, Next  string
}

func newPager(base string, q url.Values, page, size int, total int64) pager {
	pg := pager{Page: page, Total: total, Pages: int((total + int64(size) - 1) / int64(size))}
	link := func(p int) string {
		v := url.Values{}
		for k, vs := range q {
			v[k] = vs
		}
		v.Set("page", strconv.Itoa(p))
		return base + "?" + v.Encode()
	}
	if page > 1 {
		pg.Prev = link(page - 1)
	}
	if page < pg.Pages {
		pg.Next = link(page + 1)
	}
	return pg
}

// pageParam is the page= of the request (from 1).
func (x *reqCtx) pageParam() int {
	n, err := strconv.Atoi(x.r.URL.Query().Get("page"))
	if err != nil || n < 1 || n > 1_000_000 {
		return 1
	}
	return n
}

func checked(v string) bool { return v == "on" || v == "true" || v == "1" }

// canOpenNamespace reports whether the namespace's page opens for the user: it may read the namespace, or
// every repository in it (SPEC §9 worked case 1: cr:Get* on repository/NS/* reads juzhong's repositories, not
// the namespace resource itself).
func (x *reqCtx) canOpenNamespace(ns string) bool {
	return x.can("GET", apiPath("namespaces", ns)) || x.can("GET", apiPath("repositories", ns, "*"))
}

// listed is a name the list APIs answer, and whether its page opens for the user: all names are shown (as
// the list APIs answer them), a link only where the page opens.
type listed[T any] struct {
	Item T
	Open bool
}

func (c *Console) namespaces(x *reqCtx) {
	if ns := strings.TrimSpace(x.r.URL.Query().Get("open")); ns != "" {
		x.done("/namespaces/" + url.PathEscape(ns))
		return
	}
	data := map[string]any{"Form": x.r.PostForm}
	var l list[namespace]
	if x.can("GET", apiPath("namespaces")) {
		if err := x.call("GET", apiPath("namespaces")+"?page_size=100", nil, &l); err != nil && x.flash == nil {
			x.flash, x.status = err, statusOf(err)
		}
	} else {
		data["NoList"] = true
	}
	items := make([]listed[namespace], 0, len(l.Items))
	for _, n := range l.Items {
		items = append(items, listed[namespace]{n, x.canOpenNamespace(n.Name)})
	}
	data["Items"] = items
	x.render("namespaces", "Namespaces", data)
}

func (c *Console) createNamespace(x *reqCtx) {
	f := x.r.PostForm
	name := strings.TrimSpace(f.Get("name"))
	body := map[string]any{"name": name, "auto_create_repo": checked(f.Get("auto_create_repo")),
		"default_visibility": f.Get("default_visibility")}
	if err := x.call("POST", apiPath("namespaces"), body, nil); err != nil {
		x.again(err, c.namespaces)
		return
	}
	x.done("/namespaces/" + url.PathEscape(name))
}

func (c *Console) repositories(x *reqCtx) {
	ns := x.r.PathValue("ns")
	if name := strings.TrimSpace(x.r.URL.Query().Get("open")); name != "" {
		x.done("/repositories/" + url.PathEscape(ns) + "/" + url.PathEscape(name))
		return
	}
	var n namespace
	if err := x.call("GET", apiPath("namespaces", ns), nil, &n); err != nil {
		// A user who reads every repository of the namespace but not the namespace itself still gets its page
		// (without its settings): SPEC §9 worked case 1.
		if statusOf(err) != http.StatusForbidden || !x.can("GET", apiPath("repositories", ns, "*")) {
			x.fail(err)
			return
		}
		n = namespace{Name: ns}
	}
	q := strings.TrimSpace(x.r.URL.Query().Get("q"))
	page := x.pageParam()
	v := url.Values{"page": {strconv.Itoa(page)}, "page_size": {"20"}}
	if q != "" {
		v.Set("q", q)
	}
	var l list[repository]
	data := map[string]any{"NS": n, "Q": q, "Form": x.r.PostForm}
	if x.can("GET", apiPath("namespaces", ns, "repositories")) {
		err := x.call("GET", apiPath("namespaces", ns, "repositories")+"?"+v.Encode(), nil, &l)
		if err != nil && x.flash == nil {
			x.flash, x.status = err, statusOf(err)
		}
	} else {
		data["NoList"] = true
	}
	items := make([]listed[repository], 0, len(l.Items))
	for _, r := range l.Items {
		items = append(items, listed[repository]{r, x.can("GET", apiPath("repositories", r.Namespace, r.Name))})
	}
	pq := url.Values{}
	if q != "" {
		pq.Set("q", q)
	}
	data["Items"] = items
	data["Pager"] = newPager("/namespaces/"+url.PathEscape(ns), pq, page, 20, l.Total)
	x.render("repositories", ns, data)
}

// allRepositories lists every repository (GET /repositories), with a namespace filter, a search and paging; a
// Manage link on each row the user may open.
func (c *Console) allRepositories(x *reqCtx) {
	qv := x.r.URL.Query()
	ns, q := strings.TrimSpace(qv.Get("namespace")), strings.TrimSpace(qv.Get("q"))
	page := x.pageParam()
	data := map[string]any{"Namespace": ns, "Q": q}
	pq := url.Values{}
	if ns != "" {
		pq.Set("namespace", ns)
	}
	if q != "" {
		pq.Set("q", q)
	}
	if !x.can("GET", apiPath("repositories")) {
		data["NoList"], data["CanCreate"] = true, true // the user names the namespace in step 1
		x.render("all_repositories", "Repositories", data)
		return
	}
	var l list[repository]
	v := url.Values{"page": {strconv.Itoa(page)}, "page_size": {"20"}}
	for k, vs := range pq {
		v[k] = vs
	}
	if err := x.call("GET", apiPath("repositories")+"?"+v.Encode(), nil, &l); err != nil {
		x.flash, x.status = err, statusOf(err)
	}
	items := make([]listed[repository], 0, len(l.Items))
	for _, r := range l.Items {
		items = append(items, listed[repository]{r, x.can("GET", apiPath("repositories", r.Namespace, r.Name))})
	}
	data["Items"] = items
	data["Pager"] = newPager("/repositories", pq, page, 20, l.Total)
	var nss list[namespace]
	if x.can("GET", apiPath("namespaces")) {
		if err := x.call("GET", apiPath("namespaces")+"?page_size=100", nil, &nss); err == nil {
			data["Namespaces"] = nss.Items
		}
	}
	// "Create repository" is offered where the user may create one: in the filtered namespace, else in one of
	// the namespaces on the page.
	candidates := []string{ns}
	if ns == "" {
		candidates = candidates[:0]
		for _, n := range nss.Items {
			candidates = append(candidates, n.Name)
		}
		for _, r := range l.Items {
			candidates = append(candidates, r.Namespace)
		}
	}
	data["CanCreate"] = slices.ContainsFunc(candidates, func(n string) bool {
		return x.can("POST", apiPath("namespaces", n, "repositories"))
	})
	x.render("all_repositories", "Repositories", data)
}

// createRepository is step 1 of "Create repository" from a namespace's page; step 2 connects the source.
func (c *Console) createRepository(x *reqCtx) {
	c.createRepositoryIn(x, x.r.PathValue("ns"), c.repositories)
}

func (c *Console) namespaceSettings(x *reqCtx) {
	ns := x.r.PathValue("ns")
	var n namespace
	if err := x.call("GET", apiPath("namespaces", ns), nil, &n); err != nil {
		x.fail(err)
		return
	}
	var pol securityPolicy
	var polErr error
	if x.can("GET", apiPath("namespaces", ns, "security-policy")) {
		polErr = x.call("GET", apiPath("namespaces", ns, "security-policy"), nil, &pol)
	}
	x.render("namespace_settings", ns+" settings", map[string]any{"NS": n, "Policy": pol, "PolicyError": polErr,
		"CanPolicy": x.can("GET", apiPath("namespaces", ns, "security-policy")), "Retention": c.retentionSection(x, ns)})
}

func (c *Console) updateNamespace(x *reqCtx) {
	ns, f := x.r.PathValue("ns"), x.r.PostForm
	body := map[string]any{"auto_create_repo": checked(f.Get("auto_create_repo")), "default_visibility": f.Get("default_visibility")}
	if err := x.call("PATCH", apiPath("namespaces", ns), body, nil); err != nil {
		x.again(err, c.namespaceSettings)
		return
	}
	x.notice = "Settings saved."
	c.namespaceSettings(x)
}

// policyForm reads a security policy form: allowlist lines are "ID" or "ID YYYY-MM-DD" (allowed until then).
func policyForm(f url.Values) (map[string]any, error) {
	allow := []map[string]any{}
	for _, line := range strings.Split(f.Get("allowlist"), "\n") {
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		e := map[string]any{"id": fields[0]}
		if len(fields) > 1 {
			t, err := time.Parse("2006-01-02", fields[1])
			if err != nil {
				return nil, fmt.Errorf("allowlist line %q: the expiry must be a date like 2027-01-31", strings.TrimSpace(line))
			}
			e["expires_at"] = t
		}
		allow = append(allow, e)
	}
	return map[string]any{"block_severity": f.Get("block_severity"), "only_fixable": checked(f.Get("only_fixable")),
		"block_unscanned": checked(f.Get("block_unscanned")), "allowlist": allow,
		"require_signature": checked(f.Get("require_signature")), "trusted_keys": pemBlocks(f.Get("trusted_keys"))}, nil
}

// pemBlocks splits pasted public keys into one entry per PEM block; text that is no block is passed on as it
// is, for the API to name what is wrong with it.
func pemBlocks(text string) []string {
	const end = "-----END PUBLIC KEY-----"
	keys := []string{}
	for _, part := range strings.SplitAfter(strings.ReplaceAll(text, "\r\n", "\n"), end) {
		if part = strings.TrimSpace(part); part != "" {
			keys = append(keys, part+"\n")
		}
	}
	return keys
}

func (c *Console) putNamespacePolicy(x *reqCtx) {
	ns := x.r.PathValue("ns")
	body, err := policyForm(x.r.PostForm)
	if err == nil {
		err = x.call("PUT", apiPath("namespaces", ns, "security-policy"), body, nil)
	}
	if err != nil {
		x.again(err, c.namespaceSettings)
		return
	}
	x.notice = "Security policy saved; the namespace's images are judged by it now."
	c.namespaceSettings(x)
}

func (c *Console) deleteNamespace(x *reqCtx) {
	ns := x.r.PathValue("ns")
	path := apiPath("namespaces", ns)
	if checked(x.r.PostForm.Get("force")) {
		path += "?force=true"
	}
	if err := x.call("DELETE", path, nil, nil); err != nil {
		x.again(err, c.namespaceSettings)
		return
	}
	x.done("/namespaces")
}
