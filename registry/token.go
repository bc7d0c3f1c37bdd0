package registry

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
)

type tokenResponse struct {
	Token       string `json:"token"`
	AccessToken string `json:"access_token"`
	ExpiresIn   int    `json:"expires_in"`
	IssuedAt    string `json:"issued_at"`
	TokenType   string `json:"token_type,omitempty"`
	Scope       string `json:"scope,omitempty"`
}

// serveToken is the Docker Registry v2 token endpoint: GET with optional Basic
// credentials (none means anonymous) and any number of scope parameters, or
// an OAuth2-style POST form with grant_type=password. It returns the user name the request gave and whether it
// gave credentials (a sign-in, for the audit log).
func (r *Registry) serveToken(w http.ResponseWriter, req *http.Request) (username string, login bool) {
	var (
		user, pass string
		hasCreds   bool
		scopes     []string
		oauth      bool
	)
	switch req.Method {
	case http.MethodGet:
		q := req.URL.Query()
		scopes = q["scope"]
		user, pass, hasCreds = req.BasicAuth()
	case http.MethodPost:
		oauth = true
		req.Body = http.MaxBytesReader(w, req.Body, 64<<10)
		if err := req.ParseForm(); err != nil {
			writeTokenError(w, http.StatusBadRequest, "invalid_request", "cannot parse form")
			return
		}
		switch req.PostForm.Get("grant_type") {
		case "password":
			user, pass, hasCreds = req.PostForm.Get("username"), req.PostForm.Get("password"), true
		case "":
			user, pass, hasCreds = req.BasicAuth()
		default:
			writeTokenError(w, http.StatusBadRequest, "unsupported_grant_type", "only grant_type=password is supported")
			return
		}
		scopes = append(scopes, req.PostForm["scope"]...)
		scopes = append(scopes, req.URL.Query()["scope"]...)
	default:
		w.Header().Set("Allow", "GET, POST")
		writeTokenError(w, http.StatusMethodNotAllowed, "invalid_request", "use GET or POST")
		return
	}
	username, login = user, hasCreds
	ctx := withClientAddr(req)
	subj := Subject{Anonymous: true}
	if hasCreds {
		s, err := r.authz.Authenticate(ctx, user, pass)
		if err != nil {
			if errors.Is(err, ErrUnauthorized) {
				_, realm := r.challengeFor(req)
				w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Basic realm=%q`, realm))
				writeError(w, req, &Error{Code: CodeUnauthorized, Message: "invalid username or password", Status: http.StatusUnauthorized})
				return
			}
			r.log.Error("registry: authenticate failed", "err", err)
			writeError(w, req, toError(err))
			return
		}
		subj = s
	}
	requested := parseScopes(scopes)
	var granted []Access
	if len(requested) > 0 {
		g, err := r.authz.Grant(ctx, subj, requested)
		if err != nil {
			r.log.Error("registry: grant failed", "err", err)
			writeError(w, req, toError(err))
			return
		}
		granted = g
	}
	gs := newGrantSet(granted, nil)
	access := make([]Access, 0, len(requested))
	for _, a := range requested { // only what was both asked and granted
		var acts []string
		for _, act := range a.Actions {
			if gs.allows(Access{Type: a.Type, Name: a.Name, Actions: []string{act}}) {
				acts = append(acts, act)
			}
		}
		if len(acts) > 0 {
			access = append(access, Access{Type: a.Type, Name: a.Name, Actions: acts})
		}
	}
	refused := refusedOf(requested, gs)
	tok, issued, err := r.signer.issue(subj, access, refused, r.cfg.TokenTTL)
	if err != nil {
		r.log.Error("registry: signing token", "err", err)
		writeError(w, req, toError(err))
		return
	}
	resp := tokenResponse{
		Token:       tok,
		AccessToken: tok,
		ExpiresIn:   int(r.cfg.TokenTTL / time.Second),
		IssuedAt:    issued.UTC().Format(time.RFC3339),
	}
	if oauth {
		resp.TokenType = "Bearer"
		resp.Scope = strings.Join(scopes, " ")
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(resp)
	return username, login
}

func writeTokenError(w http.ResponseWriter, status int, code, desc string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": desc})
}
