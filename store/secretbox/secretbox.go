// Package secretbox keeps Berth's secrets at rest: Git credentials, trigger secrets and token keys are sealed
// with AES-256-GCM under one master key that lives outside the database (a file in the data dir, or the
// operator's own file). Keys for other purposes are derived from it with HMAC-SHA256, one label each.
package secretbox

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Box seals and opens secrets with one master key.
type Box struct {
	key  []byte
	aead cipher.AEAD
}

const prefix = "v1:"

// LoadOrCreate reads the hex master key at path, creating a random one (mode 0600) when the file is missing.
func LoadOrCreate(path string) (*Box, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		key := make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return nil, err
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, err
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, os.ErrExist) { // another process made it first
			return LoadOrCreate(path)
		}
		if err != nil {
			return nil, fmt.Errorf("create master key: %w", err)
		}
		if _, err := f.WriteString(hex.EncodeToString(key) + "\n"); err != nil {
			f.Close()
			return nil, err
		}
		if err := f.Close(); err != nil {
			return nil, err
		}
		return New(key)
	}
	if err != nil {
		return nil, fmt.Errorf("read master key %s: %w", path, err)
	}
	key, err := hex.DecodeString(strings.TrimSpace(string(data)))
	if err != nil || len(key) != 32 {
		return nil, fmt.Errorf("master key %s must hold 64 hex characters (32 bytes)", path)
	}
	return New(key)
}

// New makes a Box from a 32-byte key.
func New(key []byte) (*Box, error) {
	if len(key) != 32 {
		return nil, errors.New("secretbox: key must be 32 bytes")
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &Box{key: append([]byte(nil), key...), aead: aead}, nil
}

// Seal encrypts plaintext; the result is printable and safe to store.
func (b *Box) Seal(plaintext []byte) string {
	nonce := make([]byte, b.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	out := b.aead.Seal(nonce, nonce, plaintext, nil)
	return prefix + base64.RawStdEncoding.EncodeToString(out)
}

// Open decrypts what Seal produced.
func (b *Box) Open(sealed string) ([]byte, error) {
	if sealed == "" {
		return nil, nil
	}
	if !strings.HasPrefix(sealed, prefix) {
		return nil, errors.New("secretbox: unknown format")
	}
	raw, err := base64.RawStdEncoding.DecodeString(sealed[len(prefix):])
	if err != nil || len(raw) < b.aead.NonceSize() {
		return nil, errors.New("secretbox: corrupt sealed value")
	}
	n := b.aead.NonceSize()
	pt, err := b.aead.Open(nil, raw[:n], raw[n:], nil)
	if err != nil {
		return nil, errors.New("secretbox: cannot open sealed value (wrong master key?)")
	}
	return pt, nil
}

// Derive returns a 32-byte key for one purpose, named by label.
func (b *Box) Derive(label string) []byte {
	m := hmac.New(sha256.New, b.key)
	m.Write([]byte("berth/" + label))
	return m.Sum(nil)
}
