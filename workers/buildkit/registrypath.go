package buildkit

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/berth-dev/berth/workers/buildkit/netns"
)

// registryPath is the one way from buildkitd's network namespace to Berth's registry: a listener inside the
// namespace at the registry's own address and port (buildkitd resolves and dials the registry's name as
// usual, and finds the listener there), whose connections Berth carries to the registry from the host's
// namespace. Plain HTTP carries only the registry API (/v2/ and the token service /token): an ADD of any
// other path of Berth's listener is answered 403 here and never reaches Berth. TLS is carried as it is
// (Berth cannot read it), to the registry's port only.
type registryPath struct {
	hostport string // the registry as builds name it, host:port
	upstream string // where Berth dials it
	lns      []net.Listener
	srv      *http.Server
	conns    chan net.Conn // plain HTTP connections, for srv
	done     chan struct{} // closed by close

	mu     sync.Mutex
	closed bool
	open   map[net.Conn]struct{}
	wg     sync.WaitGroup
}

// registryAPI reports whether a plain-HTTP request path is the registry API: /v2, /v2/…, or /token, written
// plainly (no dot segments, no escaped characters that could mean something else to Berth's router).
func registryAPI(r *http.Request) bool {
	p := r.URL.Path
	if r.URL.RawPath != "" || strings.Contains(p, "//") {
		return false
	}
	clean := path.Clean(p)
	if strings.HasSuffix(p, "/") && clean != "/" {
		clean += "/"
	}
	if clean != p {
		return false
	}
	return p == "/v2" || strings.HasPrefix(p, "/v2/") || p == "/token"
}

// registryAddrs returns the IPv4 addresses buildkitd reaches host at: loopback for localhost, the literal
// address, or what host resolves to here.
func registryAddrs(ctx context.Context, host string) ([]netip.Addr, error) {
	if strings.EqualFold(host, "localhost") {
		return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
	}
	if a, err := netip.ParseAddr(host); err == nil {
		if !a.Unmap().Is4() {
			return nil, fmt.Errorf("registry %s: builds have IPv4 only; name Berth's registry by an IPv4 address or a host name", host)
		}
		return []netip.Addr{a.Unmap()}, nil
	}
	ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip4", host)
	if err != nil {
		return nil, fmt.Errorf("build sandbox: Berth's registry %s does not resolve here, so builds could not reach it (%w); "+
			"make the host of --public-url resolvable on this machine", host, err)
	}
	return ips, nil
}

// openRegistryPath listens in the namespace at nsPath at every address of hostport's host (addresses that
// are not loopback are added to the namespace's lo first, as /32) and carries what arrives to hostport.
func openRegistryPath(ctx context.Context, nsName, nsPath, hostport string) (*registryPath, error) {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return nil, fmt.Errorf("registry %q: want host:port: %w", hostport, err)
	}
	addrs, err := registryAddrs(ctx, host)
	if err != nil {
		return nil, err
	}
	rp := &registryPath{hostport: hostport, upstream: hostport, conns: make(chan net.Conn), done: make(chan struct{}), open: map[net.Conn]struct{}{}}
	for _, a := range addrs {
		if !a.IsLoopback() {
			if err := ipNS(ctx, nsName, "addr", "replace", a.String()+"/32", "dev", "lo"); err != nil {
				rp.close()
				return nil, err
			}
		}
		ln, err := netns.Listen(nsPath, "tcp4", net.JoinHostPort(a.String(), port))
		if err != nil {
			rp.close()
			return nil, fmt.Errorf("build sandbox: the path to registry %s: %w", hostport, err)
		}
		rp.lns = append(rp.lns, ln)
	}
	rp.srv = &http.Server{Handler: rp.proxy(), ReadHeaderTimeout: time.Minute}
	go rp.srv.Serve(chanListener{rp})
	for _, ln := range rp.lns {
		rp.wg.Add(1)
		go rp.accept(ln)
	}
	return rp, nil
}

func (rp *registryPath) proxy() http.Handler {
	rev := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.Out.URL.Scheme = "http"
			r.Out.URL.Host = rp.upstream
			r.Out.Host = r.In.Host
		},
		// Keep the registry's answers (redirects included) as they are: buildkitd follows them itself.
		FlushInterval: -1,
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !registryAPI(r) {
			http.Error(w, fmt.Sprintf("refused by Berth's build sandbox: builds reach %s only for the registry API (/v2/, /token), not %s",
				rp.hostport, r.URL.EscapedPath()), http.StatusForbidden)
			return
		}
		rev.ServeHTTP(w, r)
	})
}

func (rp *registryPath) accept(ln net.Listener) {
	defer rp.wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(50 * time.Millisecond)
			continue
		}
		if !rp.track(c, true) {
			c.Close()
			return
		}
		go rp.handle(c)
	}
}

// track adds (or removes) an open connection; it reports false once the path is closed.
func (rp *registryPath) track(c net.Conn, add bool) bool {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	if add {
		if rp.closed {
			return false
		}
		rp.open[c] = struct{}{}
	} else {
		delete(rp.open, c)
	}
	return true
}

// handle sends a TLS connection on as it is, and a plain one to the HTTP filter.
func (rp *registryPath) handle(c net.Conn) {
	br := bufio.NewReader(c)
	_ = c.SetReadDeadline(time.Now().Add(time.Minute))
	first, err := br.Peek(1)
	_ = c.SetReadDeadline(time.Time{})
	if err != nil {
		rp.track(c, false)
		c.Close()
		return
	}
	pc := &peekedConn{Conn: c, r: br}
	if first[0] != 0x16 { // not a TLS handshake record
		select {
		case rp.conns <- pc:
		case <-rp.done:
			rp.track(c, false)
			c.Close()
		}
		return
	}
	defer func() { rp.track(c, false); c.Close() }()
	up, err := (&net.Dialer{Timeout: 30 * time.Second}).Dial("tcp", rp.upstream)
	if err != nil {
		return
	}
	defer up.Close()
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(up, pc); closeWrite(up); done <- struct{}{} }()
	go func() { _, _ = io.Copy(c, up); closeWrite(c); done <- struct{}{} }()
	<-done
	<-done
}

func closeWrite(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
}

// close stops listening and ends every connection.
func (rp *registryPath) close() {
	rp.mu.Lock()
	if !rp.closed {
		close(rp.done)
	}
	rp.closed = true
	for c := range rp.open {
		c.Close()
	}
	rp.mu.Unlock()
	for _, ln := range rp.lns {
		ln.Close()
	}
	if rp.srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = rp.srv.Shutdown(ctx)
		cancel()
		rp.srv.Close()
	}
	rp.wg.Wait()
}

type peekedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *peekedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// chanListener hands the HTTP server the plain connections handle passes it.
type chanListener struct{ rp *registryPath }

func (l chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.rp.conns:
		return &untrackOnClose{Conn: c, rp: l.rp}, nil
	case <-l.rp.done:
		return nil, net.ErrClosed
	}
}

func (l chanListener) Close() error   { return nil }
func (l chanListener) Addr() net.Addr { return l.rp.lns[0].Addr() }

type untrackOnClose struct {
	net.Conn
	rp   *registryPath
	once sync.Once
}

func (c *untrackOnClose) Close() error {
	c.once.Do(func() {
		if pc, ok := c.Conn.(*peekedConn); ok {
			c.rp.track(pc.Conn, false)
		}
	})
	return c.Conn.Close()
}
