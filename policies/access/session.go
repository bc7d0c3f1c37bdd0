package access

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"time"

	"github.com/berth-dev/berth/store"
)

// SessionStamp identifies what a signed-in session stands on: the user's creation time and a digest of its
// password hash. A session that keeps the stamp it was made with dies when the user is deleted (or re-created),
// or changes password.
func (s *Service) SessionStamp(ctx context.Context, name string) (string, error) {
	cu, err := s.loadUser(ctx, name)
	if err != nil {
		return "", err
	}
	return sessionStamp(cu.user), nil
}

func sessionStamp(u *store.User) string {
	sum := sha256.Sum256([]byte("berth-session\x00" + u.CreatedAt.UTC().Format(time.RFC3339Nano) + "\x00" + u.PasswordHash))
	return hex.EncodeToString(sum[:16])
}

// SessionPrincipal returns the principal of a session that user name signed in to at signedIn, with stamp
// (SessionStamp then). It answers ErrBadCredentials when the user is gone, re-created, disabled (now, or
// since the sign-in: disabling sets TokensNotBefore), or has changed password.
func (s *Service) SessionPrincipal(ctx context.Context, name string, signedIn time.Time, stamp string) (*Principal, error) {
	cu, err := s.loadUser(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		return nil, ErrBadCredentials
	}
	if err != nil {
		return nil, err
	}
	if !cu.user.Enabled || signedIn.Before(cu.user.TokensNotBefore) ||
		!hmac.Equal([]byte(stamp), []byte(sessionStamp(cu.user))) {
		return nil, ErrBadCredentials
	}
	return s.principal(cu, false), nil
}
