package access

import (
	"sync"
	"time"
)

// Failed-login limits: a user name, or a client address, that fails this often within the window is refused
// until the window passes. Both counts are per instance and in memory.
const (
	failWindow     = time.Minute
	maxUserFails   = 10
	maxClientFails = 30
)

type failLimiter struct {
	mu     sync.Mutex
	byUser map[string][]time.Time
	byAddr map[string][]time.Time
	lastGC time.Time
}

func newFailLimiter() *failLimiter {
	return &failLimiter{byUser: map[string][]time.Time{}, byAddr: map[string][]time.Time{}}
}

func recent(ts []time.Time, now time.Time) []time.Time {
	i := 0
	for i < len(ts) && now.Sub(ts[i]) > failWindow {
		i++
	}
	return ts[i:]
}

func (l *failLimiter) blocked(user, addr string) bool {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(recent(l.byUser[user], now)) >= maxUserFails || len(recent(l.byAddr[addr], now)) >= maxClientFails
}

func (l *failLimiter) fail(user, addr string) {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if user != "" {
		l.byUser[user] = append(recent(l.byUser[user], now), now)
	}
	if addr != "" {
		l.byAddr[addr] = append(recent(l.byAddr[addr], now), now)
	}
	if now.Sub(l.lastGC) > failWindow {
		l.lastGC = now
		for k, v := range l.byUser {
			if len(recent(v, now)) == 0 {
				delete(l.byUser, k)
			}
		}
		for k, v := range l.byAddr {
			if len(recent(v, now)) == 0 {
				delete(l.byAddr, k)
			}
		}
	}
}
