package server

import (
	"mime"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/berth-dev/berth/server/forwarded"
)

// refuseCrossSite keeps browsers on other sites from using the API with the credentials they hold for it
// (SPEC §13): an unsafe method whose Origin names another site, or that the browser marks
// Sec-Fetch-Site: cross-site, is refused whatever credentials it carries; and a body must be JSON, which no
// HTML form can send (a form's text/plain or urlencoded POST needs no CORS preflight, JSON does).
// It guards the /api/v1 routes only: Git hosts POST /hooks/ without an Origin, in JSON or form encoding.
func refuseCrossSite(c *gin.Context) {
	r := c.Request
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return
	}
	if origin := r.Header.Get("Origin"); (origin != "" && !forwarded.SameOrigin(r, origin)) ||
		r.Header.Get("Sec-Fetch-Site") == "cross-site" {
		fail(c, errf(http.StatusForbidden, CodeForbidden,
			"%s %s came from a page of another site (Origin %q); the API takes changes only from this site's own pages and from clients that are not browsers",
			r.Method, r.URL.Path, origin))
		return
	}
	if r.ContentLength == 0 {
		return
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		fail(c, errf(http.StatusUnsupportedMediaType, CodeUnsupportedMediaType,
			"the request body must be JSON: send it with Content-Type: application/json (got %q)", r.Header.Get("Content-Type")))
	}
}
