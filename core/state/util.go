package state

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"io"
)

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }

// requestID names one write (a spend, a policy apply), so that its
// command applied twice, as a retry after a lost leadership can, is
// recognised as the same request.
func requestID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
