package store

import (
	"context"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
)

const colKeys = "keys"

// Names of the instance keys kept in the store.
const (
	// KeyMasterCheck is a known value sealed with the master key of the first process that started on the
	// store: a process whose master key cannot open it has been given another key.
	KeyMasterCheck = "master-key-check"
	// KeyRegistryToken is the registry token signing key (PEM), sealed with the master key, shared by every
	// replica so that a token one issues is accepted by the others.
	KeyRegistryToken = "registry-token-signing-key"
	// KeyImageSigning is the image signing key (PKCS#8 DER of an ECDSA P-256 key), sealed with the master key:
	// every replica and worker signs builds and their attestations with it (SPEC §15).
	KeyImageSigning = "image-signing-key"
)

// InstanceKey is one key of the instance, sealed with the master key. It is written once and never changed:
// every process of the instance reads the same value.
type InstanceKey struct {
	ID        string    `bson:"_id"`
	Sealed    string    `bson:"sealed"`
	CreatedAt time.Time `bson:"created_at"`
}

// InsertInstanceKey stores a key under id unless one is there: the unique _id decides between processes
// starting together, and the loser gets ErrAlreadyExists (and reads the winner's with GetInstanceKey).
func (s *Mongo) InsertInstanceKey(ctx context.Context, id, sealed string) error {
	doc, err := bson.Marshal(InstanceKey{ID: id, Sealed: sealed, CreatedAt: now()})
	if err != nil {
		return err
	}
	return s.insertOne(ctx, colKeys, doc)
}

// GetInstanceKey reads the key stored under id; ErrNotFound when there is none yet.
func (s *Mongo) GetInstanceKey(ctx context.Context, id string) (*InstanceKey, error) {
	return findOne[InstanceKey](ctx, s.c(colKeys), bson.M{"_id": id})
}
