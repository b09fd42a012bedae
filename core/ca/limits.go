package ca

import (
	"fmt"

	"github.com/weftmesh/weft/core/inputlimit"
)

// The limits of the files of a CA directory, checked before they are
// parsed. A root certificate, its key and the join secret are a few hundred
// bytes; rotation.json holds a few kilobytes per root still trusted. A
// file past them was not written by Weft.
const (
	maxCAFileBytes = 1 << 20
	maxCAJSONDepth = 16
)

// readFile reads a file of the CA directory within maxCAFileBytes.
func readFile(path string) ([]byte, error) {
	return inputlimit.ReadFile(path, maxCAFileBytes)
}

// readJSONFile reads a JSON file of the CA directory within the limits.
func readJSONFile(path string) ([]byte, error) {
	b, err := readFile(path)
	if err != nil {
		return nil, err
	}
	if err := inputlimit.JSONDepth(b, maxCAJSONDepth); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return b, nil
}
