package console

import (
	"encoding/json"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
)

func itoa(n int) string { return strconv.Itoa(n) }

func (c *Console) buildSettings(x *reqCtx) { c.showBuildSettings(x, nil) }

// showBuildSettings renders the code source and the build rules; created, when not nil, is the source just
// connected (or its secret just rotated), whose webhook secret is shown this once.
func (c *Console) showBuildSettings(x *reqCtx, created *source) {
	nav := x.repoNav("build")
	var r repository
	if err := x.call("GET", nav.API, nil, &r); err != nil {
		x.fail(err)
		return
	}
	data := map[string]any{"Nav": nav, "Created": created, "Form": x.r.PostForm}
	var src source
	switch err := x.call("GET", nav.API+"/source", nil, &src); {
	case err == nil:
		data["Source"] = &src
	case statusOf(err) == http.StatusNotFound:
	default:
		data["SourceError"] = err
	}
	var rules list[rule]
	if err := x.call("GET", nav.API+"/build-rules?page_size=100", nil, &rules); err != nil {
		data["RulesError"] = err
	}
	data["Rules"] = rules.Items
	// The rule being edited in place: ?edit=ID, or the rule whose edit form was just refused.
	edit := x.r.URL.Query().Get("edit")
	if x.r.Method == http.MethodPost && x.r.PostForm.Get("edit") != "" {
		edit = x.r.PostForm.Get("edit")
	}
	for _, r := range rules.Items {
		if r.ID == edit {
			data["Edit"] = r.ID
			if x.r.Method == http.MethodPost {
				data["EditFields"] = fieldsOfForm(x.r.PostForm)
			} else {
				data["EditFields"] = fieldsOfRule(r)
			}
		}
	}
	if x.r.Method == http.MethodPost && edit == "" {
		data["NewFields"] = fieldsOfForm(x.r.PostForm)
	} else {
		data["NewFields"] = ruleFields{SourceType: "BRANCH"}
	}
	// The source's real branches and tags are offered (not imposed: names and patterns may still be typed);
	// console.js reads them from the Git server after the page has loaded (sourceRefs), so a slow Git server
	// never slows the page.
	data["Refs"] = data["Source"] != nil && x.can("GET", nav.API+"/source/refs")
	x.render("build", nav.NS+"/"+nav.Name+" build", data)
}

// ruleFields are a build rule form's values.
type ruleFields struct {
	SourceType, SourceRef, ImageTag, DockerfileDir, DockerfileName, Target, Platforms, BuildArgs string
}

func fieldsOfRule(r rule) ruleFields {
	keys := make([]string, 0, len(r.BuildArgs))
	for k := range r.BuildArgs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var args strings.Builder
	for _, k := range keys {
		args.WriteString(k + "=" + r.BuildArgs[k] + "\n")
	}
	return ruleFields{SourceType: r.SourceType, SourceRef: r.SourceRef, ImageTag: r.ImageTag, DockerfileDir: r.DockerfileDir,
		DockerfileName: r.DockerfileName, Target: r.Target, Platforms: strings.Join(r.Platforms, ", "), BuildArgs: args.String()}
}

func fieldsOfForm(f url.Values) ruleFields {
	return ruleFields{SourceType: f.Get("source_type"), SourceRef: f.Get("source_ref"), ImageTag: f.Get("image_tag"),
		DockerfileDir: f.Get("dockerfile_dir"), DockerfileName: f.Get("dockerfile_name"), Target: f.Get("target"),
		Platforms: f.Get("platforms"), BuildArgs: f.Get("build_args")}
}

func (c *Console) putSource(x *reqCtx) {
	nav := x.repoNav("build")
	body := sourceBody(x.r.PostForm, true)
	var src source
	if err := x.call("PUT", nav.API+"/source", body, &src); err != nil {
		x.again(err, c.buildSettings)
		return
	}
	x.notice = "The code source is saved."
	c.showBuildSettings(x, &src)
}

// sourceBody reads a code source form into an API body: the build options, and with byURL the provider, the
// clone URL and credentials (write-only: a field left empty keeps what is stored).
func sourceBody(f url.Values, byURL bool) map[string]any {
	body := map[string]any{"auto_build": checked(f.Get("auto_build")), "overseas_build": checked(f.Get("overseas_build")),
		"no_cache": checked(f.Get("no_cache"))}
	if !byURL {
		return body
	}
	body["provider"], body["url"] = f.Get("provider"), strings.TrimSpace(f.Get("url"))
	for _, k := range []string{"username", "token", "password", "ssh_key"} {
		if v := f.Get(k); v != "" {
			body[k] = v
		}
	}
	return body
}

// rotateSourceSecret replaces the webhook secret and shows the new one, this once.
func (c *Console) rotateSourceSecret(x *reqCtx) {
	nav := x.repoNav("build")
	var src source
	if err := x.call("POST", nav.API+"/source/rotate-secret", nil, &src); err != nil {
		x.again(err, c.buildSettings)
		return
	}
	x.notice = "The webhook secret is replaced: set the new one on the Git host; deliveries signed with the old one are refused."
	c.showBuildSettings(x, &src)
}

func (c *Console) deleteSource(x *reqCtx) {
	nav := x.repoNav("build")
	if err := x.call("DELETE", nav.API+"/source", nil, nil); err != nil {
		x.again(err, c.buildSettings)
		return
	}
	x.done(nav.Base + "/build")
}

// ruleBody reads a build rule form into an API body. An edit sends every field, so a field emptied on the
// form is cleared (the API fills the defaults of the Dockerfile's place); a new rule sends only what is set.
func ruleBody(f url.Values, edit bool) map[string]any {
	body := map[string]any{"source_type": f.Get("source_type"), "source_ref": strings.TrimSpace(f.Get("source_ref")),
		"image_tag": strings.TrimSpace(f.Get("image_tag"))}
	for _, k := range []string{"dockerfile_dir", "dockerfile_name", "target"} {
		if v := strings.TrimSpace(f.Get(k)); v != "" || edit {
			body[k] = v
		}
	}
	if v := strings.TrimSpace(f.Get("platforms")); v != "" || edit {
		body["platforms"] = strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' })
	}
	if v := strings.TrimSpace(f.Get("build_args")); v != "" || edit {
		args := map[string]string{}
		for _, line := range strings.Split(v, "\n") {
			if k, val, ok := strings.Cut(strings.TrimSpace(line), "="); ok {
				args[strings.TrimSpace(k)] = val
			}
		}
		body["build_args"] = args
	}
	return body
}

func (c *Console) createRule(x *reqCtx) {
	nav := x.repoNav("build")
	if err := x.call("POST", nav.API+"/build-rules", ruleBody(x.r.PostForm, false), nil); err != nil {
		x.again(err, c.buildSettings)
		return
	}
	x.done(nav.Base + "/build")
}

// updateRule saves a rule edited in place (its row on the build page turned into a form).
func (c *Console) updateRule(x *reqCtx) {
	nav := x.repoNav("build")
	id := x.r.PathValue("id")
	if err := x.call("PATCH", nav.API+"/build-rules/"+url.PathEscape(id), ruleBody(x.r.PostForm, true), nil); err != nil {
		x.again(err, c.buildSettings)
		return
	}
	x.done(nav.Base + "/build#rule-" + url.PathEscape(id))
}

func (c *Console) buildNow(x *reqCtx) {
	nav := x.repoNav("build")
	var body any
	if ref := strings.TrimSpace(x.r.PostForm.Get("ref")); ref != "" {
		body = map[string]any{"ref": ref}
	}
	var b build
	if err := x.call("POST", nav.API+"/build-rules/"+url.PathEscape(x.r.PathValue("id"))+"/builds", body, &b); err != nil {
		x.again(err, c.buildSettings)
		return
	}
	x.done(nav.Base + "/builds/" + url.PathEscape(b.ID))
}

func (c *Console) deleteRule(x *reqCtx) {
	nav := x.repoNav("build")
	if err := x.call("DELETE", nav.API+"/build-rules/"+url.PathEscape(x.r.PathValue("id")), nil, nil); err != nil {
		x.again(err, c.buildSettings)
		return
	}
	x.done(nav.Base + "/build")
}

func (c *Console) builds(x *reqCtx) {
	nav := x.repoNav("builds")
	page := x.pageParam()
	var l list[build]
	if err := x.call("GET", nav.API+"/builds?page_size=20&page="+itoa(page), nil, &l); err != nil {
		x.fail(err)
		return
	}
	x.render("builds", nav.NS+"/"+nav.Name+" builds", map[string]any{"Nav": nav, "Items": l.Items,
		"Pager": newPager(nav.Base+"/builds", nil, page, 20, l.Total)})
}

func (c *Console) buildPage(x *reqCtx) {
	nav := x.repoNav("builds")
	id := x.r.PathValue("id")
	var b build
	if err := x.call("GET", nav.API+"/builds/"+url.PathEscape(id), nil, &b); err != nil {
		x.fail(err)
		return
	}
	x.render("build_page", "Build "+id, map[string]any{"Nav": nav, "Build": b, "Self": nav.Base + "/builds/" + url.PathEscape(id)})
}

// buildLog streams the build's log through the API's own handler (?follow=true follows it live).
func (c *Console) buildLog(x *reqCtx) {
	nav := x.repoNav("builds")
	follow := "false"
	if checked(x.r.URL.Query().Get("follow")) {
		follow = "true"
	}
	x.c.API.ServeHTTP(x.w, x.apiRequest("GET", nav.API+"/builds/"+url.PathEscape(x.r.PathValue("id"))+"/logs?follow="+follow, nil))
}

// sourceRefs answers the source's branches and tags (GET …/source/refs) as JSON, for the rule form's pickers.
func (c *Console) sourceRefs(x *reqCtx) {
	nav := x.repoNav("build")
	x.c.API.ServeHTTP(x.w, x.apiRequest("GET", nav.API+"/source/refs", nil))
}

// buildStatus answers the build as JSON, for the build page to update itself without a reload.
func (c *Console) buildStatus(x *reqCtx) {
	nav := x.repoNav("builds")
	var b build
	x.w.Header().Set("Content-Type", "application/json")
	if err := x.call("GET", nav.API+"/builds/"+url.PathEscape(x.r.PathValue("id")), nil, &b); err != nil {
		x.w.WriteHeader(statusOf(err))
		_ = json.NewEncoder(x.w).Encode(map[string]string{"message": err.Error()})
		return
	}
	_ = json.NewEncoder(x.w).Encode(map[string]any{"build": b, "final": b.Final()})
}

func (c *Console) cancelBuild(x *reqCtx) {
	nav := x.repoNav("builds")
	id := x.r.PathValue("id")
	if err := x.call("POST", nav.API+"/builds/"+url.PathEscape(id)+"/cancel", nil, nil); err != nil {
		x.again(err, c.buildPage)
		return
	}
	x.done(nav.Base + "/builds/" + url.PathEscape(id))
}
