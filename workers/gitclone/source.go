package gitclone

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"

	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
	"golang.org/x/crypto/ssh"
)

// Credentials authenticate against the Git server. For http(s) the
// Username/Password pair is sent as basic auth (Password may be an access
// token; an empty Username becomes DefaultTokenUser). For ssh, SSHKey (a PEM
// private key) is preferred; Password alone means ssh password auth.
type Credentials struct {
	Username string
	Password string // password or access token
	SSHKey   []byte // PEM-encoded private key
	// SSHKnownHosts holds known_hosts lines for the server. Empty means the
	// host key is not checked (and a warning is logged).
	SSHKnownHosts []byte
}

// DefaultTokenUser is the basic-auth user sent with a token when no username
// is configured. GitHub requires this name for app tokens; GitLab, Gitea and
// GitHub personal tokens accept any non-empty user.
const DefaultTokenUser = "x-access-token"

// source is a parsed remote: the URL handed to go-git (no password in it),
// the URL safe to show, the auth method and the secrets to scrub from errors.
type source struct {
	url     string
	display string
	auth    transport.AuthMethod
	secrets []string
	// host identifies the server, to decide whether credentials may be sent
	// to a submodule's remote too.
	host string
}

// newSource parses rawURL and builds the auth method for it. warn receives
// the host-key warning when ssh runs without known hosts.
func newSource(rawURL string, creds *Credentials, warn io.Writer) (*source, error) {
	var secrets []string
	if creds != nil && creds.Password != "" {
		secrets = append(secrets, creds.Password)
	}
	ep, err := transport.NewEndpoint(rawURL)
	if err != nil {
		// url.Parse errors quote the whole URL, password included.
		secrets = append(secrets, urlSecrets(rawURL)...)
		return nil, scrub(fmt.Errorf("%w: %v", ErrInvalidURL, err), secrets)
	}
	if ep.Password != "" {
		secrets = append(secrets, ep.Password, url.QueryEscape(ep.Password), url.PathEscape(ep.Password))
	}

	s := &source{host: ep.Host, secrets: secrets}
	// Credentials embedded in an http(s) URL are used unless explicit ones
	// were given, and never travel on inside the URL.
	urlUser, urlPassword := ep.User, ep.Password
	ep.Password = ""

	switch ep.Protocol {
	case "http", "https":
		ep.User = ""
		user, pass := urlUser, urlPassword
		if creds != nil && (creds.Username != "" || creds.Password != "") {
			user, pass = creds.Username, creds.Password
		}
		if pass != "" {
			if user == "" {
				user = DefaultTokenUser
			}
			s.auth = &githttp.BasicAuth{Username: user, Password: pass}
		} else if user != "" {
			s.auth = &githttp.BasicAuth{Username: user}
		}
		s.url = ep.String()
	case "ssh":
		user := urlUser
		if creds != nil && creds.Username != "" {
			user = creds.Username
		}
		if user == "" {
			user = "git"
		}
		ep.User = user
		s.auth, err = sshAuth(ep, user, urlPassword, creds, warn)
		if err != nil {
			return nil, scrub(err, secrets)
		}
		s.url = ep.String()
	case "file":
		s.url = ep.String()
	default:
		// git://: no authentication in the protocol.
		s.url = ep.String()
	}
	s.display = s.url
	return s, nil
}

func sshAuth(ep *transport.Endpoint, user, urlPassword string, creds *Credentials, warn io.Writer) (transport.AuthMethod, error) {
	var helper gitssh.HostKeyCallbackHelper
	hostPort := net.JoinHostPort(ep.Host, strconv.Itoa(sshPort(ep)))
	if creds != nil && len(creds.SSHKnownHosts) > 0 {
		cb, algos, err := knownHosts(creds.SSHKnownHosts, hostPort)
		if err != nil {
			return nil, err
		}
		helper = gitssh.HostKeyCallbackHelper{HostKeyCallback: cb, HostKeyAlgorithms: algos}
	} else {
		logWarn(warn, "no SSH known hosts configured for "+hostPort+"; the server's host key is not verified")
		helper = gitssh.HostKeyCallbackHelper{HostKeyCallback: ssh.InsecureIgnoreHostKey()} //nolint:gosec // documented opt-out: no known hosts configured
	}

	switch {
	case creds != nil && len(creds.SSHKey) > 0:
		keys, err := gitssh.NewPublicKeys(user, creds.SSHKey, creds.Password)
		if err != nil {
			return nil, fmt.Errorf("%w: ssh key: %v", ErrInvalidCredentials, err)
		}
		keys.HostKeyCallbackHelper = helper
		return keys, nil
	case creds != nil && creds.Password != "":
		return &gitssh.Password{User: user, Password: creds.Password, HostKeyCallbackHelper: helper}, nil
	case urlPassword != "":
		return &gitssh.Password{User: user, Password: urlPassword, HostKeyCallbackHelper: helper}, nil
	default:
		// No credentials: anonymous ssh is rare, but let the server decide.
		return &gitssh.Password{User: user, HostKeyCallbackHelper: helper}, nil
	}
}

func sshPort(ep *transport.Endpoint) int {
	if ep.Port > 0 {
		return ep.Port
	}
	return 22
}

// knownHosts builds a host key callback from known_hosts content. The
// knownhosts package reads files only, so the content goes through a
// temporary file that is removed once parsed.
func knownHosts(content []byte, hostPort string) (ssh.HostKeyCallback, []string, error) {
	f, err := os.CreateTemp("", "berth-known-hosts-*")
	if err != nil {
		return nil, nil, fmt.Errorf("known hosts: %w", err)
	}
	defer os.Remove(f.Name())
	_, err = f.Write(content)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, nil, fmt.Errorf("known hosts: %w", err)
	}
	db, err := gitssh.NewKnownHostsDb(f.Name())
	if err != nil {
		return nil, nil, fmt.Errorf("%w: known hosts: %v", ErrInvalidCredentials, err)
	}
	return db.HostKeyCallback(), db.HostKeyAlgorithms(hostPort), nil
}

// urlSecrets extracts a password from a URL that transport.NewEndpoint could
// not parse, best effort, so that it can be scrubbed from the error.
func urlSecrets(raw string) []string {
	rest := raw
	if i := strings.Index(rest, "://"); i >= 0 {
		rest = rest[i+3:]
	}
	at := strings.LastIndex(rest, "@")
	if at < 0 {
		return nil
	}
	userinfo := rest[:at]
	if i := strings.IndexByte(userinfo, ':'); i >= 0 && i+1 < len(userinfo) {
		p := userinfo[i+1:]
		out := []string{p}
		if u, err := url.PathUnescape(p); err == nil && u != p {
			out = append(out, u)
		}
		return out
	}
	return nil
}

func logWarn(w io.Writer, msg string) {
	if w != nil && w != io.Discard {
		fmt.Fprintln(w, "warning: "+msg)
		return
	}
	slog.Warn(msg)
}

// scrub returns err with every secret replaced by "***". The original error
// stays reachable through errors.Is/As so callers can still branch on it.
func scrub(err error, secrets []string) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	clean := msg
	for _, s := range secrets {
		if s != "" {
			clean = strings.ReplaceAll(clean, s, "***")
		}
	}
	if clean == msg {
		return err
	}
	return &scrubbedError{msg: clean, err: err}
}

type scrubbedError struct {
	msg string
	err error
}

func (e *scrubbedError) Error() string { return e.msg }

// Unwrap exposes the cause for errors.Is; its own message is not scrubbed,
// so code that logs must log this error, not the unwrapped one.
func (e *scrubbedError) Unwrap() error { return e.err }
