// Package reference validates the user-supplied strings the registry turns into
// storage paths: repository names, tags and digests.
//
// A Digest can only be obtained from Parse (or FromBytes), so code holding one
// knows its algorithm and hex are safe to put in a path. Only sha256 and sha512
// are accepted.
package reference

import (
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"hash"
	"strings"
)

// Algorithm is a supported digest algorithm.
type Algorithm string

const (
	SHA256 Algorithm = "sha256"
	SHA512 Algorithm = "sha512"
)

// Canonical is the algorithm used when the client does not choose one.
const Canonical = SHA256

// MaxNameLength bounds a repository name (as distribution does).
const MaxNameLength = 255

var (
	// ErrDigestInvalid is returned for a malformed digest.
	ErrDigestInvalid = errors.New("invalid digest")
	// ErrDigestUnsupported is returned for a well-formed digest of an unsupported algorithm.
	ErrDigestUnsupported = errors.New("unsupported digest algorithm")
)

// Available reports whether a is supported.
func (a Algorithm) Available() bool { return a == SHA256 || a == SHA512 }

// HexLen is the length of the hex part of a digest of this algorithm.
func (a Algorithm) HexLen() int {
	switch a {
	case SHA256:
		return 64
	case SHA512:
		return 128
	}
	return 0
}

// New returns a fresh hash for the algorithm; the hashes implement
// encoding.BinaryMarshaler so an upload's state can be persisted.
func (a Algorithm) New() hash.Hash {
	switch a {
	case SHA512:
		return sha512.New()
	default:
		return sha256.New()
	}
}

// Digest is a validated content digest "alg:hex".
type Digest struct {
	alg Algorithm
	hex string
}

// Parse validates s. Algorithm and hex length/charset are checked before
// anything else may use the value.
func Parse(s string) (Digest, error) {
	i := strings.IndexByte(s, ':')
	if i <= 0 || i == len(s)-1 {
		return Digest{}, ErrDigestInvalid
	}
	alg := Algorithm(s[:i])
	hx := s[i+1:]
	if !validAlgComponent(s[:i]) {
		return Digest{}, ErrDigestInvalid
	}
	if !alg.Available() {
		return Digest{}, ErrDigestUnsupported
	}
	if len(hx) != alg.HexLen() || !isLowerHex(hx) {
		return Digest{}, ErrDigestInvalid
	}
	return Digest{alg: alg, hex: hx}, nil
}

// MustParse is Parse for tests and constants.
func MustParse(s string) Digest {
	d, err := Parse(s)
	if err != nil {
		panic(err)
	}
	return d
}

// FromBytes digests b with alg.
func FromBytes(alg Algorithm, b []byte) Digest {
	h := alg.New()
	h.Write(b)
	return FromHash(alg, h)
}

// FromHash builds a digest from a finished hash of alg.
func FromHash(alg Algorithm, h hash.Hash) Digest {
	const hx = "0123456789abcdef"
	sum := h.Sum(nil)
	out := make([]byte, len(sum)*2)
	for i, c := range sum {
		out[i*2] = hx[c>>4]
		out[i*2+1] = hx[c&0xf]
	}
	return Digest{alg: alg, hex: string(out)}
}

// Algorithm of the digest.
func (d Digest) Algorithm() Algorithm { return d.alg }

// Hex part of the digest.
func (d Digest) Hex() string { return d.hex }

// String is "alg:hex".
func (d Digest) String() string {
	if d.alg == "" {
		return ""
	}
	return string(d.alg) + ":" + d.hex
}

// IsZero reports an unset digest.
func (d Digest) IsZero() bool { return d.alg == "" }

func validAlgComponent(s string) bool {
	// algorithm grammar: [a-z0-9]+(?:[+._-][a-z0-9]+)*
	if s == "" {
		return false
	}
	prevSep := true
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
			prevSep = false
		case c == '+' || c == '.' || c == '_' || c == '-':
			if prevSep {
				return false
			}
			prevSep = true
		default:
			return false
		}
	}
	return !prevSep
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// ValidName reports whether s matches the OCI distribution repository name grammar:
//
//	[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*
//
// and is at most MaxNameLength long. "..", "%2e", empty components and any other
// character are refused, so a valid name is safe as a sequence of path components.
func ValidName(s string) bool {
	if len(s) == 0 || len(s) > MaxNameLength {
		return false
	}
	for comp := range strings.SplitSeq(s, "/") {
		if !validNameComponent(comp) {
			return false
		}
	}
	return true
}

func validNameComponent(s string) bool {
	if s == "" {
		return false
	}
	i := 0
	alnum := func() bool {
		start := i
		for i < len(s) && (s[i] >= 'a' && s[i] <= 'z' || s[i] >= '0' && s[i] <= '9') {
			i++
		}
		return i > start
	}
	if !alnum() {
		return false
	}
	for i < len(s) {
		// separator: "." | "_" | "__" | "-"+
		switch s[i] {
		case '.':
			i++
		case '_':
			i++
			if i < len(s) && s[i] == '_' {
				i++
			}
		case '-':
			for i < len(s) && s[i] == '-' {
				i++
			}
		default:
			return false
		}
		if !alnum() {
			return false
		}
	}
	return true
}

// ValidTag reports whether s matches [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}.
func ValidTag(s string) bool {
	if len(s) == 0 || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_'
		if i > 0 {
			ok = ok || c == '.' || c == '-'
		}
		if !ok {
			return false
		}
	}
	return true
}
