package state

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"

	"github.com/weftmesh/weft/core/inputlimit"
)

// KeySize is the size of the state key: AES-256.
const KeySize = 32

// ReadKeyFile reads the state key: 32 bytes, written as base64 (44
// characters, `head -c 32 /dev/urandom | base64`) or hex (64 digits).
// Every replica of a cluster needs the same key. The file must not be
// readable by group or others.
func ReadKeyFile(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("reading the state key: %w (make one with: head -c 32 /dev/urandom | base64 > %s; chmod 600 %s)", err, path, path)
	}
	if !fi.Mode().IsRegular() {
		// A FIFO would block the controller's start for ever, a device
		// (/dev/zero) would make a key of nothing.
		return nil, fmt.Errorf("reading the state key: %s is not a regular file (%v): write the key to a file, chmod 600 it and name that file", path, fi.Mode().Type())
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("reading the state key: %s is readable by others (mode %v): chmod 600 %s", path, fi.Mode().Perm(), path)
	}
	b, err := inputlimit.ReadFile(path, 1024)
	if err != nil {
		return nil, fmt.Errorf("reading the state key: %w", err)
	}
	return ParseKey(b)
}

// ParseKey decodes a state key written as base64 or hex.
func ParseKey(b []byte) ([]byte, error) {
	s := string(bytes.TrimSpace(b))
	if k, err := base64.StdEncoding.DecodeString(s); err == nil && len(k) == KeySize {
		return k, nil
	}
	if k, err := hex.DecodeString(s); err == nil && len(k) == KeySize {
		return k, nil
	}
	return nil, errors.New("parsing the state key: want 32 bytes as base64 (44 characters) or hex (64 digits); make one with: head -c 32 /dev/urandom | base64")
}

// sealer encrypts what the replicated state holds secret (the CA's keys
// and join secret) with AES-256-GCM: a random 12-byte nonce, then the
// ciphertext and its tag. The additional data names what is sealed, so a
// sealed CA state cannot pass for something else.
type sealer struct{ aead cipher.AEAD }

func newSealer(key []byte) (*sealer, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("the state key must be %d bytes, not %d", KeySize, len(key))
	}
	blk, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("creating the state cipher: %w", err)
	}
	aead, err := cipher.NewGCM(blk)
	if err != nil {
		return nil, fmt.Errorf("creating the state cipher: %w", err)
	}
	return &sealer{aead: aead}, nil
}

func (s *sealer) seal(what string, plain []byte) ([]byte, error) {
	nonce := make([]byte, s.aead.NonceSize(), s.aead.NonceSize()+len(plain)+s.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("sealing %s: %w", what, err)
	}
	return s.aead.Seal(nonce, nonce, plain, []byte("weft state v1 "+what)), nil
}

// errWrongKey says what an unopenable sealed value most likely means.
var errWrongKey = errors.New("it does not decrypt with this replica's state key: every replica needs the same --state-key-file")

func (s *sealer) open(what string, sealed []byte) ([]byte, error) {
	n := s.aead.NonceSize()
	if len(sealed) < n+s.aead.Overhead() {
		return nil, fmt.Errorf("opening %s: too short to be sealed", what)
	}
	out, err := s.aead.Open(nil, sealed[:n], sealed[n:], []byte("weft state v1 "+what))
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", what, errWrongKey)
	}
	return out, nil
}
