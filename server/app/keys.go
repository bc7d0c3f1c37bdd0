package app

import (
	"context"
	"crypto"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/berth-dev/berth/pipeline"
	"github.com/berth-dev/berth/policies/signature"
	"github.com/berth-dev/berth/registry"
	"github.com/berth-dev/berth/store"
	"github.com/berth-dev/berth/store/secretbox"
)

// Every process of one instance (serve replicas, workers) must hold the same master key, since each opens what
// the others sealed, and must sign registry tokens with the same key, since a client may take its token from one
// replica and push through another. The master key is given to each process (a file or BERTH_MASTER_KEY); the
// store keeps proof of which master key the instance uses and the token signing key, sealed with it.

// masterKeyCheck is what KeyMasterCheck holds, sealed.
const masterKeyCheck = "berth master key check v1"

// openMasterKey returns the secretbox of --master-key (BERTH_MASTER_KEY) or --master-key-file (created when
// missing), and a description of where the key came from for messages.
func (c *Config) openMasterKey() (*secretbox.Box, string, error) {
	if c.MasterKey != "" {
		if c.MasterKeyFile != "" {
			return nil, "", errors.New("give the master key once: BERTH_MASTER_KEY (--master-key) or --master-key-file, not both")
		}
		key, err := hex.DecodeString(strings.TrimSpace(c.MasterKey))
		if err != nil || len(key) != 32 {
			return nil, "", errors.New("BERTH_MASTER_KEY must hold 64 hex characters (32 bytes), e.g. the output of `openssl rand -hex 32`")
		}
		b, err := secretbox.New(key)
		return b, "BERTH_MASTER_KEY", err
	}
	file := c.MasterKeyFile
	if file == "" {
		file = filepath.Join(c.DataDir, "keys", "master.key")
	}
	b, err := secretbox.LoadOrCreate(file)
	return b, file, err
}

// checkMasterKey refuses to run with a master key other than the one the store's secrets are sealed with.
// The first process on a store records which key that is.
func (a *App) checkMasterKey(ctx context.Context, source string) error {
	err := a.Store.InsertInstanceKey(ctx, store.KeyMasterCheck, a.Box.Seal([]byte(masterKeyCheck)))
	if err == nil || !errors.Is(err, store.ErrAlreadyExists) {
		if err != nil {
			return fmt.Errorf("record the master key check in the store: %w", err)
		}
		return nil
	}
	k, err := a.Store.GetInstanceKey(ctx, store.KeyMasterCheck)
	if err != nil {
		return fmt.Errorf("read the master key check from the store: %w", err)
	}
	if pt, err := a.Box.Open(k.Sealed); err != nil || string(pt) != masterKeyCheck {
		return fmt.Errorf("the master key from %s is not the one this store's secrets are sealed with (that of the first "+
			"Berth process started on it, %s): give every replica and worker the same master key: copy that "+
			"process's master key file (DATA/keys/master.key by default) and point --master-key-file at the copy, "+
			"or set BERTH_MASTER_KEY to its 64 hex characters", source, k.CreatedAt.Format(time.RFC3339))
	}
	return nil
}

// registrySigningKey returns the instance's registry token signing key from the store, storing one first when
// there is none: the key of an existing DATA/keys/registry-token.pem (a single instance from before keys were
// shared), else a new one. Replicas starting together store theirs at most once; the others load the winner's.
func (a *App) registrySigningKey(ctx context.Context) (crypto.Signer, error) {
	file := filepath.Join(a.Cfg.DataDir, "keys", "registry-token.pem")
	local, err := os.ReadFile(file)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("read %s: %w", file, err)
	}
	pemBytes, err := a.sharedKey(ctx, store.KeyRegistryToken, "registry token signing key", func() ([]byte, string, error) {
		if local != nil {
			if _, err := registry.ParseSigningKey(local); err != nil {
				return nil, "", fmt.Errorf("%s: %w", file, err)
			}
			return local, file, nil
		}
		k, err := registry.NewSigningKeyPEM()
		return k, "new", err
	})
	if err != nil {
		return nil, err
	}
	key, err := registry.ParseSigningKey(pemBytes)
	if err != nil {
		return nil, fmt.Errorf("the registry token signing key kept in the store: %w", err)
	}
	if local != nil {
		if lk, err := registry.ParseSigningKey(local); err != nil || !samePublicKey(lk, key) {
			a.Logger.Warn("the registry token signing key in the data dir differs from the instance's, kept in the store; "+
				"the file is not used", "file", file)
		}
	}
	return key, nil
}

// imageSigningKey returns the instance's image signing key (SPEC §15: ECDSA P-256, made at first start), kept
// in the store sealed with the master key, so that every replica and worker signs with the same key.
func (a *App) imageSigningKey(ctx context.Context) (*pipeline.SigningKey, error) {
	der, err := a.sharedKey(ctx, store.KeyImageSigning, "image signing key", func() ([]byte, string, error) {
		k, err := signature.GenerateKey()
		if err != nil {
			return nil, "", err
		}
		der, err := signature.MarshalPrivateKey(k)
		return der, "new", err
	})
	if err != nil {
		return nil, err
	}
	key, err := signature.ParsePrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("the image signing key kept in the store: %w", err)
	}
	return pipeline.NewSigningKey(key)
}

// sharedKey returns the plaintext of the instance key id (what names it in messages), storing the one initial
// makes (and says where it came from) when the store has none. Processes starting together store at most one:
// the unique id decides, and the others load the winner's.
func (a *App) sharedKey(ctx context.Context, id, what string, initial func() (key []byte, from string, err error)) ([]byte, error) {
	for range 2 {
		k, err := a.Store.GetInstanceKey(ctx, id)
		if err == nil {
			pt, err := a.Box.Open(k.Sealed)
			if err != nil {
				return nil, fmt.Errorf("open the %s kept in the store: %w", what, err)
			}
			return pt, nil
		}
		if !errors.Is(err, store.ErrNotFound) {
			return nil, fmt.Errorf("read the %s from the store: %w", what, err)
		}
		key, from, err := initial()
		if err != nil {
			return nil, err
		}
		err = a.Store.InsertInstanceKey(ctx, id, a.Box.Seal(key))
		if err == nil {
			a.Logger.Info(what+" stored, sealed, in the store: every replica uses it", "from", from)
			return key, nil
		}
		if !errors.Is(err, store.ErrAlreadyExists) {
			return nil, fmt.Errorf("store the %s: %w", what, err)
		}
		// Another process stored its key first: load that one.
	}
	return nil, fmt.Errorf("the %s was stored by another process but cannot be read back", what)
}

func samePublicKey(a, b crypto.Signer) bool {
	pa, ok := a.Public().(interface{ Equal(crypto.PublicKey) bool })
	return ok && pa.Equal(b.Public())
}
