package access

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/berth-dev/berth/registry"
	"github.com/berth-dev/berth/store"
	"github.com/berth-dev/berth/store/storetest"
)

func TestMain(m *testing.M) { os.Exit(storetest.Main(m)) }

func newService(t *testing.T) (*Service, store.Store) {
	t.Helper()
	st := storetest.New(t)
	return New(st, "1234567890123456", []byte("test-key"), nil), st
}

func addUser(t *testing.T, st store.Store, name, pw string, policies ...string) {
	t.Helper()
	u := &store.User{Name: name, AccountID: "1234567890123456", Enabled: true, Policies: policies}
	if pw != "" {
		h, err := HashPassword(pw)
		if err != nil {
			t.Fatal(err)
		}
		u.PasswordHash = h
	}
	if err := st.CreateUser(context.Background(), u); err != nil {
		t.Fatal(err)
	}
}

// TestParallelGuessesAreLimited: a burst of parallel wrong passwords for one user from one client cannot get
// past the limit before the first failures are counted: exactly MaxPairFails are checked, the rest are
// refused unchecked. The right password from another client still logs in.
func TestParallelGuessesAreLimited(t *testing.T) {
	s, st := newService(t)
	addUser(t, st, "alice", "right-password")
	var wg sync.WaitGroup
	var mu sync.Mutex
	counts := map[error]int{}
	for range 3 * MaxPairFails {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.Login(context.Background(), "alice", "wrong-password", "10.0.0.1")
			mu.Lock()
			counts[err]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	if counts[ErrBadCredentials] != MaxPairFails || counts[ErrRateLimited] != 2*MaxPairFails {
		t.Fatalf("outcomes %v; want %d bad credentials and %d rate limited", counts, MaxPairFails, 2*MaxPairFails)
	}
	if _, err := s.Login(context.Background(), "alice", "right-password", "10.0.0.1"); !errors.Is(err, ErrRateLimited) {
		t.Fatalf("right password from the client that failed: %v", err)
	}
	if _, err := s.Login(context.Background(), "alice", "right-password", "10.0.0.99"); err != nil {
		t.Fatalf("right password from another client: %v", err)
	}
}

// TestLimiterUnderAttack: guesses for one name from many addresses (each under the per-pair limit) put the
// name under attack: an address that failed once is then refused for it, one that never failed is not, and
// other names are untouched.
func TestLimiterUnderAttack(t *testing.T) {
	l := NewLimiter()
	for i := range AttackFails {
		client := fmt.Sprintf("10.0.%d.%d", i/200, i%200)
		if l.Blocked("admin", client) {
			t.Fatalf("guess %d from a fresh address refused before the attack threshold", i)
		}
		l.Fail("admin", client)
	}
	if !l.Blocked("admin", "10.0.0.1") {
		t.Fatal("an address that failed once is not refused while the name is under attack")
	}
	if l.Blocked("admin", "192.0.2.7") {
		t.Fatal("an address that never failed is refused")
	}
	if l.Blocked("alice", "10.0.0.1") {
		t.Fatal("another name is refused for an attack on admin")
	}
	for range MaxClientFails {
		l.Fail("", "198.51.100.1")
	}
	if !l.Blocked("alice", "198.51.100.1") {
		t.Fatalf("an address with %d failures is not refused", MaxClientFails)
	}
}

// TestLimiterGroupsIPv6By64: an IPv6 client is its /64 (a host picks any address in its /64), an IPv4 client
// its own address.
func TestLimiterGroupsIPv6By64(t *testing.T) {
	l := NewLimiter()
	for i := range MaxPairFails {
		l.Fail("admin", fmt.Sprintf("2001:db8:aa:bb::%x", i+1))
		l.Fail("admin", fmt.Sprintf("192.0.2.%d", i+1))
	}
	for _, c := range []struct {
		client  string
		blocked bool
	}{
		{"2001:db8:aa:bb::ffff", true},
		{"2001:db8:aa:bb:1234:5678:9abc:def0", true},
		{"2001:db8:aa:bb::1%eth0", true},
		{"2001:db8:aa:bc::1", false},
		{"2001:db8:aa::1", false},
		{"192.0.2.11", false},
		{"::ffff:192.0.2.11", false},
	} {
		if got := l.Blocked("admin", c.client); got != c.blocked {
			t.Errorf("%s: blocked %v, want %v", c.client, got, c.blocked)
		}
	}
}

// TestPasswordlessUserCostsABcrypt: a user without a password (access keys only) is refused after a bcrypt
// comparison like anyone else, and never logs in with an empty password.
func TestPasswordlessUserCostsABcrypt(t *testing.T) {
	s, st := newService(t)
	addUser(t, st, "bot", "")
	for _, pw := range []string{"", "anything-at-all"} {
		start := time.Now()
		if _, err := s.Login(context.Background(), "bot", pw, "10.0.0.1"); !errors.Is(err, ErrBadCredentials) {
			t.Fatalf("login %q: %v", pw, err)
		}
		if time.Since(start) < 5*time.Millisecond {
			t.Fatalf("refused in %v: no bcrypt comparison was made", time.Since(start))
		}
	}
}

// TestTemporaryTokenLifecycle: a token logs in as its user only, expires, and dies when the user is disabled
// (for good), deleted, or deleted and re-created; the registry's SubjectActive follows the same rules.
func TestTemporaryTokenLifecycle(t *testing.T) {
	ctx := context.Background()
	s, st := newService(t)
	addUser(t, st, "ci", "ci-password")
	addUser(t, st, "other", "other-password")
	ra := &RegistryAuthorizer{Service: s, Region: "cn-hangzhou"}
	subj, err := ra.Authenticate(ctx, "ci", "ci-password")
	if err != nil || subj.Credential == "" {
		t.Fatalf("registry login: %+v %v", subj, err)
	}
	if ra.SubjectActive(ctx, registry.Subject{Name: "ci"}, time.Now()) {
		t.Fatal("a subject that names no credential reported active")
	}

	tok, exp, err := s.IssueTemporary(ctx, "ci", 0)
	if err != nil || time.Until(exp) < 59*time.Minute {
		t.Fatalf("issue: %v %v", exp, err)
	}
	if _, _, err := s.IssueTemporary(ctx, "ci", MaxTokenTTL+time.Second); err == nil {
		t.Fatal("a token longer than 12 h was issued")
	}
	p, err := s.Login(ctx, "ci", tok, "")
	if err != nil || p.Name != "ci" || !p.Temporary {
		t.Fatalf("login with the token: %+v %v", p, err)
	}
	if _, err := s.Login(ctx, "other", tok, ""); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("token under another name: %v", err)
	}
	short, _, _ := s.IssueTemporary(ctx, "ci", time.Second)
	time.Sleep(1100 * time.Millisecond)
	if _, err := s.Login(ctx, "ci", short, ""); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("expired token: %v", err)
	}
	issued := time.Now().Add(-time.Second)
	if !ra.SubjectActive(ctx, subj, issued) {
		t.Fatal("active user reported inactive")
	}

	off, on := false, true
	if _, err := st.ChangeUser(ctx, "ci", store.UserUpdate{Enabled: &off, RevokeTokens: true}); err != nil {
		t.Fatal(err)
	}
	s.Invalidate("ci")
	if _, err := s.Login(ctx, "ci", tok, ""); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("token of a disabled user: %v", err)
	}
	if ra.SubjectActive(ctx, subj, issued) {
		t.Fatal("disabled user reported active")
	}
	if _, err := st.ChangeUser(ctx, "ci", store.UserUpdate{Enabled: &on}); err != nil {
		t.Fatal(err)
	}
	s.Invalidate("ci")
	if _, err := s.Login(ctx, "ci", tok, ""); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("token issued before the disable, after re-enabling: %v", err)
	}
	if ra.SubjectActive(ctx, subj, issued) {
		t.Fatal("registry token issued before the disable accepted after re-enabling")
	}
	time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(time.Second)))
	fresh, _, _ := s.IssueTemporary(ctx, "ci", 0)
	if _, err := s.Login(ctx, "ci", fresh, ""); err != nil {
		t.Fatalf("new token after re-enabling: %v", err)
	}

	if err := st.DeleteUser(ctx, "ci"); err != nil {
		t.Fatal(err)
	}
	s.Invalidate("ci")
	if ra.SubjectActive(ctx, subj, time.Now()) {
		t.Fatal("deleted user reported active")
	}
	time.Sleep(5 * time.Millisecond)
	addUser(t, st, "ci", "ci-password")
	s.Invalidate("ci")
	if _, err := s.Login(ctx, "ci", fresh, ""); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("token of a deleted and re-created user: %v", err)
	}
}
