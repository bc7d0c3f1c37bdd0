package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

const (
	colSources         = "sources"
	colSourceHooks     = "source_hooks"
	colHookDeliveries  = "hook_deliveries"
	colBuildRules      = "build_rules"
	colBuilds          = "builds"
	colBuildLogs       = "build_logs"
	maxHookDeliveryKey = 512
)

// Source is the Git repository connected to a Berth repository (SPEC §4). Its _id is the repository's full
// name; the webhook finds it through SourceHook, keyed by the hook id, so both lookups are by _id.
type Source struct {
	ID         string `bson:"_id"`        // = Repository
	Repository string `bson:"repository"` // namespace/name
	HookID     string `bson:"hook_id"`
	Provider   string `bson:"provider"`
	URL        string `bson:"url"`
	// AdminURL: the administrator set URL. Clones of any other source are confined by the source guard
	// (--source-allow-cidr), which sources saved before this field existed are too.
	AdminURL bool   `bson:"admin_url"`
	Username string `bson:"username"`
	// Password (a password or a token) and SSHKey are sealed with the instance's secretbox; WebhookSecret too.
	// They never leave the store except to clone or to verify a delivery.
	Password      string `bson:"password"`
	SSHKey        string `bson:"ssh_key"`
	WebhookSecret string `bson:"webhook_secret"`
	AutoBuild     bool   `bson:"auto_build"`
	OverseasBuild bool   `bson:"overseas_build"`
	NoCache       bool   `bson:"no_cache"`
	// CodeAccount is the id of the code account the source was connected with (SPEC §16), "" for a URL and
	// credentials; GitRepository the repository on the host (owner/name; the API's "repository").
	CodeAccount   string `bson:"code_account,omitempty"`
	GitRepository string `bson:"git_repository,omitempty"`
	// HostHookID is the host's id of the webhook Berth registered there ("" when none is); WebhookRegistered
	// says it is in place with the current secret, WebhookError why not.
	HostHookID        string    `bson:"host_hook_id,omitempty"`
	WebhookRegistered bool      `bson:"webhook_registered"`
	WebhookError      string    `bson:"webhook_error,omitempty"`
	CreatedAt         time.Time `bson:"created_at"`
	UpdatedAt         time.Time `bson:"updated_at"`
}

// sourceHook maps a webhook id to its repository.
type sourceHook struct {
	ID         string `bson:"_id"`
	Repository string `bson:"repository"`
}

// hookDelivery remembers a webhook delivery so a redelivery (to any replica, or after a restart) starts nothing.
type hookDelivery struct {
	ID         string    `bson:"_id"` // repository + "\n" + delivery key
	Repository string    `bson:"repository"`
	At         time.Time `bson:"at"`
}

// NewHookID returns a fresh unguessable webhook id (it is part of the webhook URL).
func NewHookID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// PutSource creates or replaces the source of src.Repository. A new source gets a hook id unless one is set;
// a replaced one keeps its hook id and creation time. ErrNotFound when the repository does not exist,
// ErrNoCodeAccount when the code account it names does not. It holds the source's lease, so two puts at once
// agree on the hook id, and the code account's, so that the account is not deleted meanwhile.
func (s *Mongo) PutSource(ctx context.Context, src *Source) (created bool, err error) {
	ctx, unlock, err := s.lock(ctx, "source/"+src.Repository)
	if err != nil {
		return false, err
	}
	defer unlock()
	unlockAccount, err := s.codeAccountExists(ctx, src.CodeAccount)
	if err != nil {
		return false, err
	}
	defer unlockAccount()
	if _, err := findOne[Repository](ctx, s.c(colRepositories), bson.M{"_id": src.Repository}); err != nil {
		return false, err
	}
	src.ID = src.Repository
	old, err := findOne[Source](ctx, s.c(colSources), bson.M{"_id": src.Repository})
	switch {
	case errors.Is(err, ErrNotFound):
		created = true
		if src.HookID == "" {
			src.HookID = NewHookID()
		}
		src.CreatedAt = now()
	case err != nil:
		return false, err
	default:
		src.HookID, src.CreatedAt = old.HookID, old.CreatedAt
	}
	src.UpdatedAt = now()
	// The hook mapping first: a source is never reachable by a hook id that does not lead back to it.
	if _, err := s.c(colSourceHooks).ReplaceOne(ctx, bson.M{"_id": src.HookID},
		sourceHook{ID: src.HookID, Repository: src.Repository}, options.Replace().SetUpsert(true)); err != nil {
		return false, err
	}
	if _, err := s.c(colSources).ReplaceOne(ctx, bson.M{"_id": src.Repository}, src, options.Replace().SetUpsert(true)); err != nil {
		return false, err
	}
	if err := s.undoIfOrphan(ctx, src.Repository, colSources, src.ID); err != nil {
		return false, err // the hook mapping left behind leads nowhere (SourceByHook)
	}
	return created, nil
}

// GetSource returns the source of repo (namespace/name).
func (s *Mongo) GetSource(ctx context.Context, repo string) (*Source, error) {
	return findOne[Source](ctx, s.c(colSources), bson.M{"_id": repo})
}

// SourceByHook returns the source whose webhook id is hookID.
func (s *Mongo) SourceByHook(ctx context.Context, hookID string) (*Source, error) {
	h, err := findOne[sourceHook](ctx, s.c(colSourceHooks), bson.M{"_id": hookID})
	if err != nil {
		return nil, err
	}
	src, err := s.GetSource(ctx, h.Repository)
	if err != nil {
		return nil, err
	}
	if src.HookID != hookID { // a stale mapping left by an interrupted delete
		return nil, ErrNotFound
	}
	return src, nil
}

// DeleteSource disconnects repo from its Git repository; its webhook URL stops working. Build rules stay.
func (s *Mongo) DeleteSource(ctx context.Context, repo string) error {
	ctx, unlock, err := s.lock(ctx, "source/"+repo)
	if err != nil {
		return err
	}
	defer unlock()
	src, err := findOne[Source](ctx, s.c(colSources), bson.M{"_id": repo})
	if err != nil {
		return err
	}
	if _, err := s.c(colSources).DeleteOne(ctx, bson.M{"_id": repo}); err != nil {
		return err
	}
	if _, err := s.c(colSourceHooks).DeleteOne(ctx, bson.M{"_id": src.HookID}); err != nil {
		return err
	}
	_, err = s.c(colHookDeliveries).DeleteMany(ctx, bson.M{"repository": repo})
	return err
}

// RecordDelivery remembers a webhook delivery of repo by key (the provider's delivery id, with the ref when one
// delivery carries several). It returns ErrAlreadyExists when the delivery was recorded before: a redelivery.
func (s *Mongo) RecordDelivery(ctx context.Context, repo, key string) error {
	if len(key) > maxHookDeliveryKey {
		return fmt.Errorf("delivery key is longer than %d bytes", maxHookDeliveryKey)
	}
	// The unique _id decides between concurrent inserts, across replicas too; concurrent deliveries are inserted
	// together, in one transaction (insertOne).
	doc, err := bson.Marshal(hookDelivery{ID: repo + "\n" + key, Repository: repo, At: now()})
	if err != nil {
		return err
	}
	return s.insertOne(ctx, colHookDeliveries, doc)
}

// deliveryTakeover suffixes a delivery's key in the record of one takeover of its claim.
const deliveryTakeover = "\ntakeover\n"

// TakeOverDelivery is for a delivery RecordDelivery found recorded: it reports whether this caller now handles
// it. That is so when the record is gone (ForgetDelivery), or when the record is older than staleAfter and no
// build carries the delivery's key (Build.Deliveries): its handler died, or its store writes failed, before its
// builds existed. Then one caller, whichever inserts the takeover record of that claim first, takes it over
// and renews the claim. A recent delivery, or one with builds, is a redelivery: false. (A push that matched no
// rule has no builds: taking it over starts none again.)
func (s *Mongo) TakeOverDelivery(ctx context.Context, repo, key string, staleAfter time.Duration) (bool, error) {
	id := repo + "\n" + key
	rec, err := findOne[hookDelivery](ctx, s.c(colHookDeliveries), bson.M{"_id": id})
	if errors.Is(err, ErrNotFound) {
		err = s.RecordDelivery(ctx, repo, key)
		if errors.Is(err, ErrAlreadyExists) {
			return false, nil
		}
		return err == nil, err
	}
	if err != nil {
		return false, err
	}
	if now().Sub(rec.At) < staleAfter {
		return false, nil
	}
	if _, err := findOne[Build](ctx, s.c(colBuilds), bson.M{"repository": repo, "deliveries": key}); err == nil {
		return false, nil
	} else if !errors.Is(err, ErrNotFound) {
		return false, err
	}
	doc, err := bson.Marshal(hookDelivery{ID: id + deliveryTakeover + strconv.FormatInt(rec.At.UnixNano(), 10), Repository: repo, At: now()})
	if err != nil {
		return false, err
	}
	if err := s.insertOne(ctx, colHookDeliveries, doc); errors.Is(err, ErrAlreadyExists) {
		return false, nil // another caller took it over
	} else if err != nil {
		return false, err
	}
	// The renewed claim: a taker that dies too leaves it to be taken over again after staleAfter.
	_, err = s.c(colHookDeliveries).UpdateOne(ctx, bson.M{"_id": id}, bson.M{"$set": bson.M{"at": now()}})
	return true, err
}

// ForgetDelivery drops the claim of a delivery whose handler failed, so that the Git host's retry handles it.
func (s *Mongo) ForgetDelivery(ctx context.Context, repo, key string) error {
	_, err := s.c(colHookDeliveries).DeleteOne(ctx, bson.M{"_id": repo + "\n" + key})
	return err
}

// DeleteDeliveriesBefore forgets deliveries recorded before t (FerretDB has no TTL indexes).
func (s *Mongo) DeleteDeliveriesBefore(ctx context.Context, t time.Time) (int64, error) {
	res, err := s.c(colHookDeliveries).DeleteMany(ctx, bson.M{"at": bson.M{"$lt": t}})
	if err != nil {
		return 0, err
	}
	return res.DeletedCount, nil
}
