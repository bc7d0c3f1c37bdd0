package console

import (
	"net/url"
	"strconv"
	"strings"

	"github.com/berth-dev/berth/server"
)

// auditFilters are the audit log's filters, as the page's form and the API name them.
var auditFilters = []string{"user", "action", "resource", "since", "until"}

// auditLogs shows the audit log, newest first, with the API's filters and a pager.
func (c *Console) auditLogs(x *reqCtx) {
	page := x.pageParam()
	q := url.Values{}
	for _, k := range auditFilters {
		if v := strings.TrimSpace(x.r.URL.Query().Get(k)); v != "" {
			q.Set(k, v)
		}
	}
	v := url.Values{"page": {strconv.Itoa(page)}, "page_size": {"50"}}
	for k, vs := range q {
		v[k] = vs
	}
	var l struct {
		list[server.AuditEntryView]
		TotalCapped bool `json:"total_capped"`
	}
	if err := x.call("GET", apiPath("audit-logs")+"?"+v.Encode(), nil, &l); err != nil && x.flash == nil {
		x.flash, x.status = err, statusOf(err)
	}
	x.render("audit_logs", "Audit log", map[string]any{"Items": l.Items, "Q": q, "Capped": l.TotalCapped,
		"Pager": newPager("/audit-logs", q, page, 50, l.Total)})
}
