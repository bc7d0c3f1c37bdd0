package outbound

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Delivery limits.
const (
	// DefaultTimeout bounds a whole delivery: resolving, connecting, sending
	// and reading the answer.
	DefaultTimeout = 10 * time.Second
	// MaxExcerpt is the most response body bytes kept (and read).
	MaxExcerpt = 1024
	// maxResponseHeaderBytes bounds the receiver's response headers.
	maxResponseHeaderBytes = 64 << 10
)

// ErrStatus is wrapped when the receiver answered, but not with 2xx.
var ErrStatus = errors.New("receiver did not answer 2xx")

// Resolver looks up a host's addresses; *net.Resolver implements it. Tests
// inject their own.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Dialer opens connections; *net.Dialer implements it. Deliver passes it an
// "ip:port" address only, never a host name.
type Dialer interface {
	DialContext(ctx context.Context, network, address string) (net.Conn, error)
}

// Deliverer sends trigger deliveries without letting a trigger URL reach
// internal addresses (SSRF). The zero value is ready to use. It is safe for
// concurrent use as long as its fields are not changed.
type Deliverer struct {
	// AllowCIDRs lists non-public addresses that may nevertheless receive
	// deliveries (--trigger-allow-cidr); see ParseAllowCIDRs.
	AllowCIDRs []netip.Prefix
	// Timeout bounds one delivery; 0 means DefaultTimeout.
	Timeout time.Duration
	// Resolver resolves trigger hosts; nil means net.DefaultResolver.
	Resolver Resolver
	// Dialer connects to the vetted address; nil means a net.Dialer.
	Dialer Dialer
	// TLSConfig, when set, is cloned for https deliveries (e.g. to add the
	// root CA of an internal receiver). ServerName is always the URL's host.
	TLSConfig *tls.Config
}

// Result is the outcome of one delivery attempt, as the history records it.
type Result struct {
	// StatusCode is the receiver's HTTP status; 0 when none was received.
	StatusCode int
	// ResponseExcerpt is the start of the response body: at most MaxExcerpt
	// bytes of valid UTF-8 without control characters (newlines and tabs
	// kept).
	ResponseExcerpt string
	// Latency is the time from the start of Deliver to its end.
	Latency time.Duration
	// Err is nil exactly when the receiver answered 2xx.
	Err error
	// Refused is true when the delivery was not attempted because the URL
	// breaks a trigger URL rule or leads to a non-public address: retrying
	// will not help until the trigger or the allowlist changes.
	Refused bool
}

// OK reports whether the receiver answered 2xx.
func (r Result) OK() bool { return r.Err == nil }

// Deliver POSTs body to rawURL, signed with secret (no signature header when
// secret is empty). It resolves the host once, refuses non-public addresses
// not in AllowCIDRs, connects to the vetted address itself, does not follow
// redirects, and reads at most MaxExcerpt bytes of the answer.
func (d *Deliverer) Deliver(ctx context.Context, rawURL string, body []byte, secret string) Result {
	start := time.Now()
	res := d.deliver(ctx, rawURL, body, secret)
	res.Latency = time.Since(start)
	return res
}

func (d *Deliverer) deliver(ctx context.Context, rawURL string, body []byte, secret string) Result {
	u, err := parseTriggerURL(rawURL)
	if err != nil {
		return Result{Err: err, Refused: true}
	}
	timeout := d.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	addrs, err := resolve(ctx, d.Resolver, u.Hostname())
	if err != nil {
		return Result{Err: timeoutErr(ctx, timeout, err)}
	}
	if err := (&Guard{Allow: d.AllowCIDRs}).vet(u.Hostname(), addrs); err != nil {
		return Result{Err: err, Refused: true}
	}

	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(body))
	if err != nil {
		return Result{Err: fmt.Errorf("building the request: %w", err), Refused: true}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", UserAgent)
	req.Header.Set(EventHeader, "push")
	if secret != "" {
		req.Header.Set(SignatureHeader, Sign([]byte(secret), body))
	}

	transport := d.transport(addrs, u.port)
	defer transport.CloseIdleConnections()
	client := &http.Client{
		Transport: transport,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
	resp, err := client.Do(req)
	if err != nil {
		return Result{Err: timeoutErr(ctx, timeout, err)}
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, MaxExcerpt))
	res := Result{StatusCode: resp.StatusCode, ResponseExcerpt: Excerpt(raw)}
	switch {
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		res.Err = fmt.Errorf("%w: receiver answered %s; redirects are not followed (Location: %q)",
			ErrStatus, resp.Status, Excerpt([]byte(resp.Header.Get("Location"))))
	case resp.StatusCode < 200 || resp.StatusCode > 299:
		res.Err = fmt.Errorf("%w: receiver answered %s", ErrStatus, resp.Status)
	}
	// A body that breaks off after a 2xx status does not undo the 2xx.
	return res
}

// transport dials only the vetted addresses, whatever host the request
// names, and never goes through a proxy.
func (d *Deliverer) transport(addrs []netip.Addr, port uint16) *http.Transport {
	dialer := d.Dialer
	if dialer == nil {
		dialer = &net.Dialer{}
	}
	var tlsConfig *tls.Config
	if d.TLSConfig != nil {
		tlsConfig = d.TLSConfig.Clone()
		tlsConfig.ServerName = "" // taken from the URL for each request
	}
	return &http.Transport{
		Proxy: nil,
		DialContext: func(ctx context.Context, network, address string) (net.Conn, error) {
			if _, p, err := net.SplitHostPort(address); err != nil || p != strconv.Itoa(int(port)) {
				return nil, fmt.Errorf("refusing to dial %q: not the trigger URL's port %d", address, port)
			}
			var errs []error
			for _, a := range addrs {
				conn, err := dialer.DialContext(ctx, network, netip.AddrPortFrom(a.Unmap().WithZone(""), port).String())
				if err == nil {
					return conn, nil
				}
				errs = append(errs, err)
				if ctx.Err() != nil {
					break
				}
			}
			return nil, errors.Join(errs...)
		},
		TLSClientConfig:        tlsConfig,
		ForceAttemptHTTP2:      true,
		DisableKeepAlives:      true,
		MaxResponseHeaderBytes: maxResponseHeaderBytes,
	}
}

// timeoutErr says "timed out" plainly when the delivery's deadline passed.
func timeoutErr(ctx context.Context, timeout time.Duration, err error) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("no answer within %s (timeout): %w", timeout, err)
	}
	return err
}

// Excerpt makes up to MaxExcerpt bytes of a response safe to store and show:
// valid UTF-8 (a rune cut at the end is dropped, other invalid bytes become
// U+FFFD), no control or bidi-format characters except newline and tab.
func Excerpt(b []byte) string {
	if len(b) > MaxExcerpt {
		b = b[:MaxExcerpt]
	}
	// Drop a multi-byte rune cut by the read limit.
	for i := 1; i <= utf8.UTFMax && i <= len(b); i++ {
		if c := b[len(b)-i]; utf8.RuneStart(c) {
			if !utf8.FullRune(b[len(b)-i:]) {
				b = b[:len(b)-i]
			}
			break
		}
	}
	s := strings.ToValidUTF8(string(b), "\uFFFD")
	s = strings.Map(func(r rune) rune {
		if r == '\n' || r == '\t' {
			return r
		}
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			return -1
		}
		return r
	}, s)
	// Replacement characters may have grown it; cut on a rune boundary.
	for len(s) > MaxExcerpt {
		_, size := utf8.DecodeLastRuneInString(s)
		s = s[:len(s)-size]
	}
	return s
}
