package console

import (
	"net/url"
	"strconv"
	"strings"
)

// retentionSection reads what the namespace settings page shows of tag retention: the rules and the recent
// runs (nil when the user may not list them).
func (c *Console) retentionSection(x *reqCtx, ns string) map[string]any {
	rulesPath := apiPath("namespaces", ns, "retention-rules")
	if !x.can("GET", rulesPath) {
		return nil
	}
	var rules list[retentionRule]
	err := x.call("GET", rulesPath, nil, &rules)
	var runs list[retentionRun]
	if err == nil {
		err = x.call("GET", apiPath("namespaces", ns, "retention-runs")+"?page_size=10", nil, &runs)
	}
	return map[string]any{"Rules": rules.Items, "Runs": runs.Items, "Error": err,
		"CanCreate": x.can("POST", rulesPath), "CanUpdate": x.can("PATCH", rulesPath+"/x"),
		"CanDelete": x.can("DELETE", rulesPath+"/x"), "CanRun": x.can("POST", apiPath("namespaces", ns, "retention-runs"))}
}

// ruleForm reads a retention rule's form as the API's body.
func ruleForm(f url.Values) map[string]any {
	num := func(k string) int {
		n, _ := strconv.Atoi(strings.TrimSpace(f.Get(k)))
		return n
	}
	return map[string]any{"repository_pattern": strings.TrimSpace(f.Get("repository_pattern")),
		"tag_pattern": strings.TrimSpace(f.Get("tag_pattern")), "keep_last": num("keep_last"), "keep_days": num("keep_days"),
		"enabled": checked(f.Get("enabled"))}
}

// changeRetention makes an API call that changes the namespace's rules and shows the settings again.
func (c *Console) changeRetention(x *reqCtx, method string, body any, notice string, path ...string) {
	ns := x.r.PathValue("ns")
	if err := x.call(method, apiPath(append([]string{"namespaces", ns, "retention-rules"}, path...)...), body, nil); err != nil {
		x.again(err, c.namespaceSettings)
		return
	}
	x.notice = notice
	c.namespaceSettings(x)
}

func (c *Console) createRetentionRule(x *reqCtx) {
	c.changeRetention(x, "POST", ruleForm(x.r.PostForm), "Retention rule added.")
}

func (c *Console) updateRetentionRule(x *reqCtx) {
	c.changeRetention(x, "PATCH", ruleForm(x.r.PostForm), "Retention rule saved.", x.r.PathValue("id"))
}

func (c *Console) deleteRetentionRule(x *reqCtx) {
	c.changeRetention(x, "DELETE", nil, "Retention rule deleted.", x.r.PathValue("id"))
}

// startRetentionRun runs the rules now, or as a dry run (a preview), and opens the run's page.
func (c *Console) startRetentionRun(x *reqCtx) {
	ns := x.r.PathValue("ns")
	var run retentionRun
	body := map[string]any{"dry_run": checked(x.r.PostForm.Get("dry_run"))}
	if err := x.call("POST", apiPath("namespaces", ns, "retention-runs"), body, &run); err != nil {
		x.again(err, c.namespaceSettings)
		return
	}
	x.done("/namespaces/" + url.PathEscape(ns) + "/retention-runs/" + url.PathEscape(run.ID))
}

func (c *Console) retentionRunPage(x *reqCtx) {
	ns, id := x.r.PathValue("ns"), x.r.PathValue("id")
	var run retentionRun
	if err := x.call("GET", apiPath("namespaces", ns, "retention-runs", id), nil, &run); err != nil {
		x.fail(err)
		return
	}
	x.render("retention_run", "Retention run "+id, map[string]any{"NS": ns, "Run": run})
}
