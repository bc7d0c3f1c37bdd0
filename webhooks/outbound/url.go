package outbound

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// MaxURLLength is the longest trigger URL accepted.
const MaxURLLength = 2048

// ErrInvalidURL is wrapped by every error ValidateURL returns.
var ErrInvalidURL = errors.New("trigger URL is not allowed")

// URLError is a refused trigger URL. Rule names the rule that refused it
// ("length", "syntax", "scheme", "host", "userinfo", "port"); Error says what
// is wrong and what is allowed, for showing to the user as is.
type URLError struct {
	Rule   string
	Reason string
}

func (e *URLError) Error() string { return e.Reason }

// Is makes errors.Is(err, ErrInvalidURL) true.
func (e *URLError) Is(target error) bool { return target == ErrInvalidURL }

func urlErr(rule, format string, args ...any) error {
	return &URLError{Rule: rule, Reason: fmt.Sprintf(format, args...)}
}

// httpPorts are the explicit ports an http trigger may use besides
// 1025–65535 (ACR's rule: well-known web ports only, no other system ports).
var httpPorts = []int{80, 21, 443, 70, 210, 280, 488, 591, 777}

const httpPortRule = "http triggers must use port 80, 21, 443, 70, 210, 280, 488, 591, 777 or 1025-65535"

// ValidateURL applies the save-time rules to a trigger URL: http or https
// only; a host; no user name or password; http on port 80 by default or on
// 80, 21, 443, 70, 210, 280, 488, 591, 777 or 1025–65535; https only on 443;
// at most MaxURLLength characters. It does not resolve the host: addresses
// are checked at delivery time, when they are used.
func ValidateURL(raw string) error {
	_, err := parseTriggerURL(raw)
	return err
}

// parseTriggerURL validates raw and returns it parsed, with the port it
// will be dialled on.
func parseTriggerURL(raw string) (*triggerURL, error) {
	if len(raw) > MaxURLLength {
		return nil, urlErr("length", "URL is %d characters long: trigger URLs must be at most %d characters", len(raw), MaxURLLength)
	}
	if raw == "" {
		return nil, urlErr("syntax", "URL is empty: give an absolute http or https URL, like https://hooks.example.com/berth")
	}
	if strings.TrimSpace(raw) != raw {
		return nil, urlErr("syntax", "URL starts or ends with spaces: remove them")
	}
	u, err := url.Parse(raw)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, urlErr("syntax", "URL cannot be parsed: %v", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		if u.Scheme == "" {
			return nil, urlErr("scheme", "URL has no scheme: trigger URLs must start with http:// or https://")
		}
		return nil, urlErr("scheme", "scheme %q is not allowed: trigger URLs must use http or https", u.Scheme)
	}
	if u.Opaque != "" || u.Host == "" || u.Hostname() == "" {
		return nil, urlErr("host", "URL has no host: trigger URLs must be absolute, like %s://hooks.example.com/berth", u.Scheme)
	}
	if u.User != nil {
		return nil, urlErr("userinfo", "URL contains a user name or password: trigger URLs must not carry credentials (receivers authenticate deliveries by their X-Berth-Signature)")
	}
	if strings.Contains(u.Hostname(), "%") {
		return nil, urlErr("host", "host %q has an IPv6 zone: trigger URLs must name a routable host", u.Hostname())
	}
	port := 80
	if u.Scheme == "https" {
		port = 443
	}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || len(p) > 5 || (len(p) > 1 && p[0] == '0') {
			return nil, urlErr("port", "port %q is not a decimal port number", p)
		}
		port = n
	}
	switch u.Scheme {
	case "http":
		if !(port >= 1025 && port <= 65535) && !slices.Contains(httpPorts, port) {
			return nil, urlErr("port", "port %d is not allowed for http: %s", port, httpPortRule)
		}
	case "https":
		if port != 443 {
			return nil, urlErr("port", "port %d is not allowed for https: https triggers must use port 443", port)
		}
	}
	return &triggerURL{URL: u, port: uint16(port)}, nil
}

type triggerURL struct {
	*url.URL
	port uint16
}
