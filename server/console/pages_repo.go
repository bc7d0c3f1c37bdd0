package console

import (
	"encoding/json"
	"net/url"
	"strings"
)

// repoNav is what every page of a repository shows above its own content.
type repoNav struct {
	NS, Name, Base, API string
	Tab                 string
}

func (x *reqCtx) repoNav(tab string) repoNav {
	ns, name := x.r.PathValue("ns"), x.r.PathValue("repo")
	return repoNav{NS: ns, Name: name, Base: "/repositories/" + url.PathEscape(ns) + "/" + url.PathEscape(name),
		API: apiPath("repositories", ns, name), Tab: tab}
}

func (c *Console) repository(x *reqCtx) {
	nav := x.repoNav("overview")
	var r repository
	if err := x.call("GET", nav.API, nil, &r); err != nil {
		x.fail(err)
		return
	}
	x.render("repository", nav.NS+"/"+nav.Name, map[string]any{"Nav": nav, "Repo": r,
		"Login": "docker login " + x.registry() + " -u " + x.sess.User,
		"Pull":  "docker pull " + x.registry() + "/" + nav.NS + "/" + nav.Name + ":latest"})
}

func (c *Console) updateRepository(x *reqCtx) {
	nav, f := x.repoNav("overview"), x.r.PostForm
	body := map[string]any{"summary": f.Get("summary"), "description": f.Get("description"), "visibility": f.Get("visibility"),
		"immutable_tags": f.Get("immutable_tags")}
	if err := x.call("PATCH", nav.API, body, nil); err != nil {
		x.again(err, c.repository)
		return
	}
	x.done(nav.Base)
}

func (c *Console) deleteRepository(x *reqCtx) {
	nav := x.repoNav("overview")
	if err := x.call("DELETE", nav.API, nil, nil); err != nil {
		x.again(err, c.repository)
		return
	}
	x.done("/namespaces/" + url.PathEscape(nav.NS))
}

func (c *Console) tags(x *reqCtx) {
	nav := x.repoNav("tags")
	page := x.pageParam()
	var l list[tag]
	if err := x.call("GET", nav.API+"/tags?page_size=20&page="+url.QueryEscape(itoa(page)), nil, &l); err != nil {
		x.fail(err)
		return
	}
	x.render("tags", nav.NS+"/"+nav.Name+" versions", map[string]any{"Nav": nav, "Items": l.Items,
		"Pager": newPager(nav.Base+"/tags", nil, page, 20, l.Total),
		"Pull":  "docker pull " + x.registry() + "/" + nav.NS + "/" + nav.Name + ":"})
}

func (c *Console) tagPage(x *reqCtx) {
	nav := x.repoNav("tags")
	tg := x.r.PathValue("tag")
	var t tag
	if err := x.call("GET", nav.API+"/tags/"+url.PathEscape(tg), nil, &t); err != nil {
		x.fail(err)
		return
	}
	data := map[string]any{"Nav": nav, "Tag": t, "Pull": "docker pull " + x.registry() + "/" + nav.NS + "/" + nav.Name + ":" + tg}
	platform := x.r.URL.Query().Get("platform")
	if platform == "" && len(t.Platforms) > 0 {
		platform = t.Platforms[0]
	}
	data["Platform"] = platform
	if x.can("GET", nav.API+"/tags/"+url.PathEscape(tg)+"/layers") {
		var layers []layer
		p := nav.API + "/tags/" + url.PathEscape(tg) + "/layers"
		if len(t.Platforms) > 1 && platform != "" {
			p += "?platform=" + url.QueryEscape(platform)
		}
		var wrapped struct {
			Items []layer `json:"items"`
		}
		if err := x.call("GET", p, nil, &wrapped); err != nil {
			data["LayersError"] = err
		}
		layers = wrapped.Items
		data["Layers"] = layers
	}
	if x.can("GET", nav.API+"/tags/"+url.PathEscape(tg)+"/scan") {
		var s scan
		if err := x.call("GET", nav.API+"/tags/"+url.PathEscape(tg)+"/scan", nil, &s); err != nil {
			data["ScanError"] = err
		} else {
			data["Scan"] = s
		}
	}
	x.render("tag", nav.NS+"/"+nav.Name+":"+tg, data)
}

// tagSBOM downloads the version's SBOM through the API (its route decides who may).
func (c *Console) tagSBOM(x *reqCtx) {
	nav := x.repoNav("tags")
	tg := x.r.PathValue("tag")
	var sbom json.RawMessage
	if err := x.call("GET", nav.API+"/tags/"+url.PathEscape(tg)+"/sbom", nil, &sbom); err != nil {
		x.fail(err)
		return
	}
	name := strings.NewReplacer("/", "_", ":", "_").Replace(nav.NS + "_" + nav.Name + "_" + tg)
	x.w.Header().Set("Content-Type", "application/vnd.cyclonedx+json")
	x.w.Header().Set("Content-Disposition", `attachment; filename="`+name+`.cdx.json"`)
	_, _ = x.w.Write(sbom)
}

func (c *Console) rescan(x *reqCtx) {
	nav := x.repoNav("tags")
	tg := x.r.PathValue("tag")
	if err := x.call("POST", nav.API+"/tags/"+url.PathEscape(tg)+"/scan", nil, nil); err != nil {
		x.again(err, c.tagPage)
		return
	}
	x.done(nav.Base + "/tags/" + url.PathEscape(tg) + "#scan")
}

func (c *Console) deleteTag(x *reqCtx) {
	nav := x.repoNav("tags")
	tg := x.r.PathValue("tag")
	if err := x.call("DELETE", nav.API+"/tags/"+url.PathEscape(tg), nil, nil); err != nil {
		x.again(err, c.tagPage)
		return
	}
	x.done(nav.Base + "/tags")
}

func (c *Console) repoSecurity(x *reqCtx) {
	nav := x.repoNav("security")
	var pol securityPolicy
	if err := x.call("GET", nav.API+"/security-policy", nil, &pol); err != nil {
		x.fail(err)
		return
	}
	x.render("repo_security", nav.NS+"/"+nav.Name+" security", map[string]any{"Nav": nav, "Policy": pol})
}

func (c *Console) putRepoPolicy(x *reqCtx) {
	nav := x.repoNav("security")
	body, err := policyForm(x.r.PostForm)
	if err == nil {
		err = x.call("PUT", nav.API+"/security-policy", body, nil)
	}
	if err != nil {
		x.again(err, c.repoSecurity)
		return
	}
	x.notice = "The repository's own policy is saved; its images are judged by it now."
	c.repoSecurity(x)
}

func (c *Console) resetRepoPolicy(x *reqCtx) {
	nav := x.repoNav("security")
	if err := x.call("DELETE", nav.API+"/security-policy", nil, nil); err != nil {
		x.again(err, c.repoSecurity)
		return
	}
	x.notice = "The repository follows its namespace's policy again."
	c.repoSecurity(x)
}
