package console

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/berth-dev/berth/audit"
	"github.com/berth-dev/berth/server"
	"github.com/berth-dev/berth/server/forwarded"
	"github.com/berth-dev/berth/store"
)

const (
	loginCookie = "berth_login" // the sign-in form's double-submit CSRF token
	csrfField   = "csrf"
	touchEvery  = time.Minute // a session's last use is written at most this often
)

// secure reports whether r's cookies are Secure: its client reaches Berth at an https URL.
func secure(r *http.Request) bool { return strings.HasPrefix(forwarded.PublicURL(r), "https://") }

// sessionCookie is the name of the session cookie: __Host- prefixed when cookies are Secure, so no other
// host or path can set it.
func sessionCookie(r *http.Request) string {
	if secure(r) {
		return "__Host-berth_session"
	}
	return "berth_session"
}

// reqCtx is one console request: the signed-in user, and what the page shows besides its data.
type reqCtx struct {
	c    *Console
	w    http.ResponseWriter
	r    *http.Request
	sess *store.Session
	p    *server.Principal

	status int    // the answer's status (0: 200)
	flash  error  // an error shown at the top of the page
	notice string // a success message
}

func randomToken() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func sessionID(token string) string {
	sum := sha256.Sum256([]byte("berth-console-session\x00" + token))
	return hex.EncodeToString(sum[:])
}

// session returns the request's live session and its user's principal, or nil. An expired or revoked session
// is deleted.
func (c *Console) session(r *http.Request) (*store.Session, *server.Principal) {
	ck, err := r.Cookie(sessionCookie(r))
	if err != nil || ck.Value == "" || len(ck.Value) > 100 {
		return nil, nil
	}
	ctx := r.Context()
	id := sessionID(ck.Value)
	s, err := c.Store.GetSession(ctx, id)
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			c.Logger.Error("console: read session", "err", err)
		}
		return nil, nil
	}
	now := time.Now()
	if now.Sub(s.SeenAt) > c.IdleTimeout || now.Sub(s.CreatedAt) > c.AbsoluteTimeout {
		_ = c.Store.DeleteSession(ctx, id)
		return nil, nil
	}
	p, err := c.Auth.SessionPrincipal(ctx, s.User, s.CreatedAt, s.Stamp)
	if err != nil {
		if errors.Is(err, server.ErrBadCredentials) {
			_ = c.Store.DeleteSession(ctx, id) // the user is gone, disabled, or has a new password
		} else {
			c.Logger.Error("console: session user", "err", err)
		}
		return nil, nil
	}
	if now.Sub(s.SeenAt) > touchEvery {
		if err := c.Store.TouchSession(ctx, id, now); err != nil {
			c.Logger.Warn("console: touch session", "err", err)
		}
	}
	return s, p
}

// sameOrigin refuses what a browser says came from another site: Sec-Fetch-Site other than same-origin
// (or none: typed by the user), or an Origin (else Referer) that is not this console's.
func sameOrigin(r *http.Request) bool {
	if s := r.Header.Get("Sec-Fetch-Site"); s != "" && s != "same-origin" && s != "none" {
		return false
	}
	o := r.Header.Get("Origin")
	if o == "" {
		ref := r.Header.Get("Referer")
		if ref == "" {
			return true // not a browser; the CSRF token still has to match
		}
		u, err := url.Parse(ref)
		if err != nil {
			return false
		}
		o = u.Scheme + "://" + u.Host
	}
	return forwarded.SameOrigin(r, o)
}

func tokensEqual(a, b string) bool {
	return a != "" && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// page wraps a handler that needs a signed-in user. A state-changing request must also come from this origin
// and carry the session's CSRF token; else it gets a 403 page and nothing is done.
func (c *Console) page(fn func(*reqCtx)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		x := &reqCtx{c: c, w: w, r: r}
		x.sess, x.p = c.session(r)
		post := r.Method != http.MethodGet && r.Method != http.MethodHead
		if x.sess == nil {
			if post {
				c.auditRefusedForm(r, "", http.StatusForbidden)
				x.fail(&apiError{Status: http.StatusForbidden, Code: "UNAUTHORIZED", Message: "you are not signed in (or your session has ended); sign in and try again"})
				return
			}
			http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
			return
		}
		if post {
			r.Body = http.MaxBytesReader(w, r.Body, server.MaxBodyBytes)
			if err := r.ParseForm(); err != nil {
				c.auditRefusedForm(r, x.sess.User, http.StatusBadRequest)
				x.fail(&apiError{Status: http.StatusBadRequest, Message: "the form could not be read: " + err.Error()})
				return
			}
			if !sameOrigin(r) || !tokensEqual(r.PostForm.Get(csrfField), x.sess.CSRF) {
				c.auditRefusedForm(r, x.sess.User, http.StatusForbidden)
				x.fail(&apiError{Status: http.StatusForbidden, Code: "CSRF",
					Message: "this form did not come from a page of this console (or the page is from an earlier session); reload the page and try again"})
				return
			}
		}
		fn(x)
	}
}

// auditRefusedForm records a console form refused before it reached the API (no session, an unreadable form,
// a CSRF failure); the forms that reach it are recorded by the API under their RAM action.
func (c *Console) auditRefusedForm(r *http.Request, user string, status int) {
	c.audit(r, time.Time{}, user, audit.ActionConsoleForm, status)
}

// audit records a console action of user in the audit log, when there is one (at = zero: now).
func (c *Console) audit(r *http.Request, at time.Time, user, action string, status int) {
	if c.Audit != nil {
		c.Audit.Record(r.Context(), store.AuditEntry{Time: at, User: user, Client: server.ClientAddr(r), Action: action,
			Resource: "*", Status: status, RequestID: server.RequestID(r)})
	}
}

func (c *Console) loginPage(w http.ResponseWriter, r *http.Request) {
	c.renderLogin(w, r, http.StatusOK, "")
}

func (c *Console) renderLogin(w http.ResponseWriter, r *http.Request, status int, msg string) {
	w.Header().Set("Cache-Control", "no-store")
	// One token per browser while it signs in: a second sign-in page (another tab, or a request for a missing
	// favicon sent here) must not invalidate the form already shown.
	tok := randomToken()
	if ck, err := r.Cookie(loginCookie); err == nil && len(ck.Value) == len(tok) {
		tok = ck.Value
	}
	http.SetCookie(w, &http.Cookie{Name: loginCookie, Value: tok, Path: "/login", HttpOnly: true, Secure: secure(r),
		SameSite: http.SameSiteStrictMode, MaxAge: 3600})
	next := r.FormValue("next")
	if !localPath(next) {
		next = "/"
	}
	x := &reqCtx{c: c, w: w, r: r, status: status}
	if msg != "" {
		x.flash = errors.New(msg)
	}
	x.render("login", "Sign in", map[string]any{"Token": tok, "Next": next, "User": r.PostFormValue("username")})
}

// localPath reports whether p, as a redirect's Location, keeps a browser on this site: an absolute path of
// printable ASCII without backslashes, which does not begin like a //host reference, not even decoded once or
// twice more (%2F, %5C, %09) by whatever reads it next. Browsers drop tabs and newlines from URLs and read a
// backslash as a slash, so "/\t/evil" and "/\evil" would leave the site.
func localPath(p string) bool {
	if !strings.HasPrefix(p, "/") || len(p) > 4096 ||
		strings.ContainsFunc(p, func(r rune) bool { return r <= ' ' || r >= 0x7f || r == '\\' }) {
		return false
	}
	if u, err := url.Parse(p); err != nil || u.Scheme != "" || u.Host != "" || u.User != nil {
		return false
	}
	for range 3 {
		lead := strings.Map(func(r rune) rune {
			switch r {
			case '\t', '\n', '\r':
				return -1
			case '\\':
				return '/'
			}
			return r
		}, p)
		if strings.HasPrefix(lead, "//") {
			return false
		}
		d, err := url.PathUnescape(p)
		if err != nil {
			return false
		}
		if d == p {
			return true
		}
		p = d
	}
	return false // encoded three times over: no console link is
}

// login signs a user in with the API's own authenticator (and so its failed-login limits). Every attempt is
// an audit entry (audit.ActionLogin) with the status it was answered with.
func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	if c.Audit != nil {
		start, rec := time.Now(), &statusWriter{ResponseWriter: w, status: http.StatusOK}
		w = rec
		defer func() {
			c.audit(r, start, strings.TrimSpace(r.PostForm.Get("username")), audit.ActionLogin, rec.status)
		}()
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		c.renderLogin(w, r, http.StatusBadRequest, "the form could not be read")
		return
	}
	ck, _ := r.Cookie(loginCookie)
	if !sameOrigin(r) || ck == nil || !tokensEqual(r.PostForm.Get(csrfField), ck.Value) {
		c.renderLogin(w, r, http.StatusForbidden, "this sign-in form did not come from this console, or it expired; try again")
		return
	}
	user, pw := strings.TrimSpace(r.PostForm.Get("username")), r.PostForm.Get("password")
	if user == "" || pw == "" {
		c.renderLogin(w, r, http.StatusBadRequest, "enter your user name and password")
		return
	}
	areq := r.Clone(r.Context())
	areq.Body, areq.ContentLength = http.NoBody, 0
	areq.Header = r.Header.Clone()
	areq.Header.Del("Cookie")
	areq.SetBasicAuth(user, pw)
	p, err := c.Auth.Authenticate(r.Context(), areq)
	switch {
	case errors.Is(err, server.ErrRateLimited):
		w.Header().Set("Retry-After", "60")
		c.renderLogin(w, r, http.StatusTooManyRequests, "too many failed sign-ins; wait a minute and try again")
		return
	case errors.Is(err, server.ErrBadCredentials), errors.Is(err, server.ErrNoCredentials):
		c.renderLogin(w, r, http.StatusUnauthorized, "wrong user name or password, or the user is disabled")
		return
	case err != nil:
		c.Logger.Error("console: sign in", "err", err)
		c.renderLogin(w, r, http.StatusInternalServerError, "sign-in failed; try again")
		return
	case p.Temporary || p.Name != user:
		c.renderLogin(w, r, http.StatusUnauthorized, "sign in with a user name and its password (not an access key or a temporary token)")
		return
	}
	stamp, err := c.Auth.SessionStamp(r.Context(), p.Name)
	if err != nil {
		c.Logger.Error("console: sign in", "err", err)
		c.renderLogin(w, r, http.StatusInternalServerError, "sign-in failed; try again")
		return
	}
	now := time.Now()
	if n, err := c.Store.DeleteExpiredSessions(r.Context(), now.Add(-c.IdleTimeout), now.Add(-c.AbsoluteTimeout)); err != nil {
		c.Logger.Warn("console: delete expired sessions", "err", err)
	} else if n > 0 {
		c.Logger.Debug("console: expired sessions deleted", "n", n)
	}
	tok := randomToken()
	// A session is made at the sign-in instant; time is kept to the millisecond, like the user's revocation time.
	s := &store.Session{ID: sessionID(tok), User: p.Name, Stamp: stamp, CSRF: randomToken(),
		CreatedAt: now.Truncate(time.Millisecond), SeenAt: now}
	if err := c.Store.CreateSession(r.Context(), s); err != nil {
		c.Logger.Error("console: create session", "err", err)
		c.renderLogin(w, r, http.StatusInternalServerError, "sign-in failed; try again")
		return
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie(r), Value: tok, Path: "/", HttpOnly: true, Secure: secure(r),
		SameSite: http.SameSiteLaxMode, MaxAge: int(c.AbsoluteTimeout / time.Second)})
	http.SetCookie(w, &http.Cookie{Name: loginCookie, Value: "", Path: "/login", MaxAge: -1})
	next := r.PostForm.Get("next")
	if !localPath(next) {
		next = "/"
	}
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (c *Console) logout(x *reqCtx) {
	if err := c.Store.DeleteSession(x.r.Context(), x.sess.ID); err != nil {
		c.Logger.Error("console: sign out", "err", err)
	}
	c.audit(x.r, time.Time{}, x.sess.User, audit.ActionLogout, http.StatusSeeOther)
	http.SetCookie(x.w, &http.Cookie{Name: sessionCookie(x.r), Value: "", Path: "/", HttpOnly: true, Secure: secure(x.r),
		SameSite: http.SameSiteLaxMode, MaxAge: -1})
	http.Redirect(x.w, x.r, "/login", http.StatusSeeOther)
}

// statusWriter remembers the status a handler answered with.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}
