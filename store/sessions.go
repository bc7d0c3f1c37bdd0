package store

import (
	"context"
	"errors"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
)

const colSessions = "console_sessions"

// Session is a signed-in console session. Its _id is a digest of the cookie's token, never the token itself,
// so what the store holds does not sign anyone in.
type Session struct {
	ID   string `bson:"_id"`
	User string `bson:"user"`
	// Stamp is access.SessionStamp of the user at sign-in: a changed password or a re-created user ends it.
	Stamp string `bson:"stamp"`
	// CSRF is the synchronizer token every state-changing form of the session carries.
	CSRF      string    `bson:"csrf"`
	CreatedAt time.Time `bson:"created_at"`
	SeenAt    time.Time `bson:"seen_at"`
}

// CreateSession stores a new session.
func (s *Mongo) CreateSession(ctx context.Context, sess *Session) error {
	_, err := s.c(colSessions).InsertOne(ctx, sess)
	return alreadyExists(err)
}

// GetSession returns the session with id.
func (s *Mongo) GetSession(ctx context.Context, id string) (*Session, error) {
	return findOne[Session](ctx, s.c(colSessions), bson.M{"_id": id})
}

// TouchSession records that the session was used at t.
func (s *Mongo) TouchSession(ctx context.Context, id string, t time.Time) error {
	_, err := s.c(colSessions).UpdateOne(ctx, bson.M{"_id": id}, bson.M{"$set": bson.M{"seen_at": t}})
	return err
}

// DeleteSession ends a session; ending one that is gone already is no error.
func (s *Mongo) DeleteSession(ctx context.Context, id string) error {
	_, err := s.c(colSessions).DeleteOne(ctx, bson.M{"_id": id})
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil
	}
	return err
}

// DeleteExpiredSessions removes the sessions idle since before idleBefore or made before createdBefore.
func (s *Mongo) DeleteExpiredSessions(ctx context.Context, idleBefore, createdBefore time.Time) (int64, error) {
	res, err := s.c(colSessions).DeleteMany(ctx, bson.M{"$or": bson.A{
		bson.M{"seen_at": bson.M{"$lt": idleBefore}},
		bson.M{"created_at": bson.M{"$lt": createdBefore}},
	}})
	if err != nil {
		return 0, err
	}
	return res.DeletedCount, nil
}
