package access

import (
	"net/netip"
	"sync"
	"time"
)

// Failed-login limits. Every count is per instance, in memory, over a sliding window of failWindow. A client
// address is an IPv4 address, or an IPv6 /64 (clientKey). None of
// them ever refuses a client that has not failed: a correct password from elsewhere always gets through, so
// nobody can lock a user (the administrator included) out by guessing wrong.
//   - A client address that failed MaxPairFails times for one user name is refused for that name.
//   - A client address that failed MaxClientFails times, over any names, is refused for all of them.
//   - A user name that failed AttackFails times from all clients together is under attack: then a client
//     that failed for it even once is refused for it, which holds a guesser with many addresses to one guess
//     per address per window.
const (
	failWindow     = time.Minute
	MaxPairFails   = 10
	MaxClientFails = 30
	AttackFails    = 50
)

// Limiter keeps the failed-login counts. Ask Blocked before checking a secret, and report each wrong one
// with Fail; every login path (the API, /token, the console) goes through Service.Login, which does both.
// It is safe for concurrent use.
type Limiter struct {
	mu     sync.Mutex
	byPair map[[2]string][]time.Time
	byAddr map[string][]time.Time
	byUser map[string][]time.Time
	lastGC time.Time
}

// NewLimiter returns an empty Limiter.
func NewLimiter() *Limiter {
	return &Limiter{byPair: map[[2]string][]time.Time{}, byAddr: map[string][]time.Time{}, byUser: map[string][]time.Time{}}
}

func recent(ts []time.Time, now time.Time) []time.Time {
	i := 0
	for i < len(ts) && now.Sub(ts[i]) > failWindow {
		i++
	}
	return ts[i:]
}

// clientKey is what the limits count a client address as: an IPv4 address alone, an IPv6 address with its
// whole /64 (one host commonly holds a /64, and picks any address in it at will).
func clientKey(client string) string {
	a, err := netip.ParseAddr(client)
	if err != nil {
		return client
	}
	if a = a.Unmap(); a.Is4() {
		return a.String()
	}
	return netip.PrefixFrom(a.WithZone(""), 64).Masked().String()
}

// Blocked reports whether client (an address) may not try user's secret now.
func (l *Limiter) Blocked(user, client string) bool {
	client = clientKey(client)
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	pair := len(recent(l.byPair[[2]string{user, client}], now))
	if pair >= MaxPairFails || len(recent(l.byAddr[client], now)) >= MaxClientFails {
		return true
	}
	return pair > 0 && user != "" && len(recent(l.byUser[user], now)) >= AttackFails
}

// Fail records a wrong secret for user from client.
func (l *Limiter) Fail(user, client string) {
	client = clientKey(client)
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	pair := [2]string{user, client}
	l.byPair[pair] = append(recent(l.byPair[pair], now), now)
	if user != "" {
		l.byUser[user] = append(recent(l.byUser[user], now), now)
	}
	if client != "" {
		l.byAddr[client] = append(recent(l.byAddr[client], now), now)
	}
	if now.Sub(l.lastGC) > failWindow {
		l.lastGC = now
		gc(l.byPair, now)
		gc(l.byAddr, now)
		gc(l.byUser, now)
	}
}

func gc[K comparable](m map[K][]time.Time, now time.Time) {
	for k, v := range m {
		if len(recent(v, now)) == 0 {
			delete(m, k)
		}
	}
}
