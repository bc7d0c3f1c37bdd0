package console

import (
	"net/url"
	"strings"
)

func (c *Console) triggers(x *reqCtx) { c.showTriggers(x, nil) }

// showTriggers lists the repository's triggers; created, when not nil, is the trigger just made, whose
// secret is shown this once.
func (c *Console) showTriggers(x *reqCtx, created *trigger) {
	nav := x.repoNav("triggers")
	var l list[trigger]
	if err := x.call("GET", nav.API+"/triggers?page_size=100", nil, &l); err != nil {
		x.fail(err)
		return
	}
	data := map[string]any{"Nav": nav, "Items": l.Items, "Created": created}
	if x.can("POST", nav.API+"/triggers") { // the create form, and its version picker, only for who may create
		draft := triggerOfForm(x.r.PostForm)
		draft.Enabled = x.r.PostForm == nil || draft.Enabled
		data["Draft"] = c.triggerFormData(x, nav, draft)
	}
	x.render("triggers", nav.NS+"/"+nav.Name+" triggers", data)
}

// triggerOfForm is the trigger a trigger form sent.
func triggerOfForm(f url.Values) trigger {
	return trigger{Name: f.Get("name"), URL: f.Get("url"), FilterType: f.Get("filter_type"), Expression: f.Get("expression"),
		Tags: formTags(f), Enabled: checked(f.Get("enabled"))}
}

// triggerFormData is what the trigger form shows: the trigger, and for a TAGS filter the repository's newest
// versions to pick from (tags not among them stay in the typed field).
func (c *Console) triggerFormData(x *reqCtx, nav repoNav, t trigger) map[string]any {
	var versions list[tag]
	if x.can("GET", nav.API+"/tags") {
		_ = x.call("GET", nav.API+"/tags?page_size=100", nil, &versions) // the picker is a help: typed tags still work
	}
	chosen := map[string]bool{}
	for _, tg := range t.Tags {
		chosen[tg] = true
	}
	type choice struct {
		Tag      string
		Selected bool
	}
	var picks []choice
	seen := map[string]bool{}
	for _, v := range versions.Items {
		picks = append(picks, choice{v.Tag, chosen[v.Tag]})
		seen[v.Tag] = true
	}
	var typed []string
	for _, tg := range t.Tags {
		if !seen[tg] {
			typed = append(typed, tg)
		}
	}
	return map[string]any{"T": t, "Versions": picks, "Typed": strings.Join(typed, ", ")}
}

// formTags are a trigger form's tags: those picked from the versions, then those typed (comma-separated).
func formTags(f url.Values) []string {
	var tags []string
	seen := map[string]bool{}
	add := func(tg string) {
		if tg != "" && !seen[tg] {
			seen[tg] = true
			tags = append(tags, tg)
		}
	}
	for _, tg := range f["tag_pick"] {
		add(strings.TrimSpace(tg))
	}
	for _, tg := range strings.FieldsFunc(f.Get("tags"), func(r rune) bool { return r == ',' || r == ' ' || r == '\n' || r == '\r' }) {
		add(tg)
	}
	return tags
}

// triggerForm reads a trigger form into an API body.
func triggerForm(f url.Values) map[string]any {
	body := map[string]any{"name": strings.TrimSpace(f.Get("name")), "url": strings.TrimSpace(f.Get("url")),
		"filter_type": f.Get("filter_type"), "enabled": checked(f.Get("enabled"))}
	switch f.Get("filter_type") {
	case "EXPRESSION":
		body["expression"] = strings.TrimSpace(f.Get("expression"))
	case "TAGS":
		body["tags"] = formTags(f)
	}
	return body
}

func (c *Console) createTrigger(x *reqCtx) {
	nav := x.repoNav("triggers")
	var t trigger
	if err := x.call("POST", nav.API+"/triggers", triggerForm(x.r.PostForm), &t); err != nil {
		x.again(err, c.triggers)
		return
	}
	x.notice = "Trigger created."
	c.showTriggers(x, &t)
}

func (c *Console) triggerPage(x *reqCtx) { c.showTrigger(x, nil) }

// showTrigger shows a trigger, its form and its access records; tested is the record of a test delivery.
func (c *Console) showTrigger(x *reqCtx, tested *triggerRecord) {
	nav := x.repoNav("triggers")
	id := x.r.PathValue("id")
	p := nav.API + "/triggers/" + url.PathEscape(id)
	var t trigger
	if err := x.call("GET", p, nil, &t); err != nil {
		x.fail(err)
		return
	}
	page := x.pageParam()
	data := map[string]any{"Nav": nav, "Trigger": t, "Tested": tested, "Self": nav.Base + "/triggers/" + url.PathEscape(id),
		"API": p}
	if x.can("PATCH", p) {
		edited := t
		if f := x.r.PostForm; x.r.Method == "POST" && f.Get("name") != "" { // an edit the API refused: the form as sent
			edited = triggerOfForm(f)
			edited.ID = t.ID
		}
		data["Form"] = c.triggerFormData(x, nav, edited)
	}
	var recs list[triggerRecord]
	if err := x.call("GET", p+"/records?page_size=20&page="+itoa(page), nil, &recs); err != nil {
		data["RecordsError"] = err
	}
	data["Records"] = recs.Items
	data["Pager"] = newPager(nav.Base+"/triggers/"+url.PathEscape(id), nil, page, 20, recs.Total)
	x.render("trigger", t.Name, data)
}

func (c *Console) updateTrigger(x *reqCtx) {
	nav := x.repoNav("triggers")
	id := x.r.PathValue("id")
	if err := x.call("PATCH", nav.API+"/triggers/"+url.PathEscape(id), triggerForm(x.r.PostForm), nil); err != nil {
		x.again(err, c.triggerPage)
		return
	}
	x.done(nav.Base + "/triggers/" + url.PathEscape(id))
}

func (c *Console) testTrigger(x *reqCtx) {
	nav := x.repoNav("triggers")
	id := x.r.PathValue("id")
	var rec triggerRecord
	if err := x.call("POST", nav.API+"/triggers/"+url.PathEscape(id)+"/test", nil, &rec); err != nil {
		x.again(err, c.triggerPage)
		return
	}
	x.notice = "Test delivery sent: " + rec.Status + "."
	c.showTrigger(x, &rec)
}

func (c *Console) deleteTrigger(x *reqCtx) {
	nav := x.repoNav("triggers")
	if err := x.call("DELETE", nav.API+"/triggers/"+url.PathEscape(x.r.PathValue("id")), nil, nil); err != nil {
		x.again(err, c.triggerPage)
		return
	}
	x.done(nav.Base + "/triggers")
}
