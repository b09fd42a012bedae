package api

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/weftmesh/weft/core/inputlimit"
)

// maxTokenFile bounds the admin token file (a token is 48 hex digits).
const maxTokenFile = 4096

// LoadOrCreateToken returns the controller's admin token, DATA_DIR/
// admin.token (TokenFile), creating it (24 random bytes, hex, mode 0600)
// when there is none. An empty file is refused: it would let in anyone.
func LoadOrCreateToken(dataDir string) (string, error) {
	p := filepath.Join(dataDir, TokenFile)
	if fi, err := os.Stat(p); err == nil && !fi.Mode().IsRegular() {
		// A FIFO would hold the start for ever, a device read without end.
		return "", fmt.Errorf("reading admin token: %s is not a regular file (%v); remove it and restart the controller to get a new one", p, fi.Mode().Type())
	}
	b, err := inputlimit.ReadFile(p, maxTokenFile)
	if err == nil {
		tok := strings.TrimSpace(string(b))
		if tok == "" {
			return "", fmt.Errorf("reading admin token: %s is empty; delete it and restart the controller to get a new one", p)
		}
		return tok, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("reading admin token: %w", err)
	}
	var raw [24]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", fmt.Errorf("generating admin token: %w", err)
	}
	tok := hex.EncodeToString(raw[:])
	if err := os.WriteFile(p, []byte(tok+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("writing admin token: %w", err)
	}
	return tok, nil
}
