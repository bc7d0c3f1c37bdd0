package console

import (
	"bytes"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"
)

// view is what every page template gets: the page's own data in Data, and what the layout shows.
type view struct {
	Title     string
	User      string
	CSRF      string
	Static    string // asset version
	Error     string
	ErrorCode string
	Notice    string
	Status    int
	Data      any
	x         *reqCtx
}

// Can reports whether the signed-in user may make the API call method path: the page offers an action only
// when it does.
func (v *view) Can(method, path string) bool { return v.x != nil && v.x.can(method, path) }

var funcs = template.FuncMap{
	"api":      apiPath,
	"time":     timeTag,
	"size":     humanSize,
	"short":    shortDigest,
	"markdown": renderMarkdown,
	"lower":    strings.ToLower,
	"join":     strings.Join,
	"split":    strings.Fields,
	"status":   statusClass,
	"add":      func(a, b int) int { return a + b },
	"sub":      func(a, b int) int { return a - b },
	"ms":       func(d time.Duration) string { return d.Round(time.Millisecond).String() },
	"dict": func(kv ...any) map[string]any {
		m := make(map[string]any, len(kv)/2)
		for i := 0; i+1 < len(kv); i += 2 {
			m[fmt.Sprint(kv[i])] = kv[i+1]
		}
		return m
	},
}

func parseTemplates() (map[string]*template.Template, error) {
	base, err := template.New("").Funcs(funcs).ParseFS(files, "templates/layout.tmpl", "templates/partials/*.tmpl")
	if err != nil {
		return nil, err
	}
	names, err := fs.Glob(files, "templates/pages/*.tmpl")
	if err != nil {
		return nil, err
	}
	pages := map[string]*template.Template{}
	for _, n := range names {
		t, err := base.Clone()
		if err != nil {
			return nil, err
		}
		if t, err = t.ParseFS(files, n); err != nil {
			return nil, err
		}
		pages[strings.TrimSuffix(path.Base(n), ".tmpl")] = t
	}
	return pages, nil
}

// render writes page name with data.
func (x *reqCtx) render(name, title string, data any) {
	v := &view{Title: title, Static: x.c.staticTag, Data: data, Notice: x.notice, Status: x.status, x: x}
	if x.sess != nil {
		v.User, v.CSRF = x.sess.User, x.sess.CSRF
	}
	if x.flash != nil {
		v.Error = x.flash.Error()
		if ae, ok := x.flash.(*apiError); ok {
			v.ErrorCode = ae.Code
		} else if x.status == 0 || x.status == http.StatusInternalServerError {
			x.c.Logger.Error("console", "path", x.r.URL.Path, "err", x.flash)
			v.Error = "something went wrong; retry, and tell the operator if it goes on"
		}
	}
	t := x.c.pages[name]
	var buf bytes.Buffer
	if t == nil {
		x.c.Logger.Error("console: no template", "page", name)
		http.Error(x.w, "internal error", http.StatusInternalServerError)
		return
	}
	if err := t.ExecuteTemplate(&buf, "layout", v); err != nil {
		x.c.Logger.Error("console: render", "page", name, "err", err)
		http.Error(x.w, "internal error", http.StatusInternalServerError)
		return
	}
	x.w.Header().Set("Content-Type", "text/html; charset=utf-8")
	status := x.status
	if status == 0 {
		status = http.StatusOK
	}
	x.w.WriteHeader(status)
	_, _ = x.w.Write(buf.Bytes())
}

// fail shows an error page (an API error with its status and message).
func (x *reqCtx) fail(err error) {
	x.status = statusOf(err)
	x.flash = err
	title := http.StatusText(x.status)
	if x.status == http.StatusForbidden {
		title = "Not allowed"
	}
	x.render("error", title, nil)
}

// again shows a page once more after a form's API call failed: the error on top, with the API's status.
func (x *reqCtx) again(err error, show func(*reqCtx)) {
	x.status = statusOf(err)
	x.flash = err
	show(x)
}

// done ends a successful form: back to a page (303, so a reload does not post again).
func (x *reqCtx) done(to string) { http.Redirect(x.w, x.r, to, http.StatusSeeOther) }

// timeTag shows a time in UTC; console.js rewrites it in the browser's time zone.
func timeTag(t any) template.HTML {
	var tt time.Time
	switch v := t.(type) {
	case time.Time:
		tt = v
	case *time.Time:
		if v == nil {
			return ""
		}
		tt = *v
	}
	if tt.IsZero() {
		return ""
	}
	u := tt.UTC()
	return template.HTML(fmt.Sprintf(`<time datetime="%s">%s</time>`, u.Format(time.RFC3339), u.Format("2006-01-02 15:04:05 UTC")))
}

func humanSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func shortDigest(d string) string {
	if _, hex, ok := strings.Cut(d, ":"); ok && len(hex) > 12 {
		return hex[:12]
	}
	return d
}

// statusClass is the CSS class of a status; the same status has the same colour on every page.
func statusClass(s string) string {
	switch s {
	case "SUCCESS", "DONE", "TRIGGERED", "REGISTERED":
		return "st-ok"
	case "FAILED", "BLOCKED":
		return "st-bad"
	case "CANCELED", "NOT_TRIGGERED", "NOT_SCANNED":
		return "st-off"
	default:
		return "st-run"
	}
}
