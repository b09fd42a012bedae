package host

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	plugin "github.com/hashicorp/go-plugin"
)

// ChecksumSuffix ends the name of the file that pins a third-party plugin's
// SHA-256, beside the binary: weft-adapter-file.sha256 for
// weft-adapter-file, in the format `sha256sum` writes (see Pin).
const ChecksumSuffix = ".sha256"

// maxPinFile bounds the pin file: one line of sha256sum output.
const maxPinFile = 4 << 10

// FileChecksum is the SHA-256 of the file at path.
func FileChecksum(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("checksumming %s: %w", path, err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return nil, fmt.Errorf("checksumming %s: %w", path, err)
	}
	return h.Sum(nil), nil
}

// ParseChecksum reads a SHA-256 written as "sha256:HEX" or "HEX" (64 hex
// digits, either case).
func ParseChecksum(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if algo, rest, ok := strings.Cut(s, ":"); ok {
		if !strings.EqualFold(algo, "sha256") {
			return nil, fmt.Errorf("checksum %q: only sha256 is supported; write sha256:HEX", s)
		}
		s = rest
	}
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != sha256.Size {
		return nil, fmt.Errorf("checksum %q: want sha256: and %d hex digits, as `sha256sum` prints them", s, 2*sha256.Size)
	}
	return b, nil
}

// Pin is the checksum a third-party plugin binary at path must have.
// pinned, when not nil, is the operator's pin from the controller's
// command line (--plugin-checksum) and wins. Otherwise the pin is the file
// path+".sha256" beside the binary, written by the operator the way
// `sha256sum weft-adapter-NAME > weft-adapter-NAME.sha256` writes it (the
// first field of its first line; a file name after it must be the
// binary's). With neither, the plugin is refused with an error that gives
// its actual SHA-256 and both ways to pin it.
//
// Like Packer's SHA256SUM files, the pin beside the binary guards against a
// binary changed by mistake or half-copied; a pin on the command line is
// kept where the controller is configured, out of reach of whoever can
// write the plugin directory.
func Pin(path string, pinned []byte) ([]byte, error) {
	if pinned != nil {
		return pinned, nil
	}
	name := filepath.Base(path)
	adapter := strings.TrimPrefix(name, BinaryPrefix)
	pinFile := path + ChecksumSuffix
	f, err := os.Open(pinFile)
	if errors.Is(err, fs.ErrNotExist) {
		actual, sumErr := FileChecksum(path)
		if sumErr != nil {
			return nil, fmt.Errorf("adapter plugin %q is not pinned (no %s): %w", adapter, pinFile, sumErr)
		}
		h := hex.EncodeToString(actual)
		return nil, fmt.Errorf("adapter plugin %q is not pinned: the controller runs a third-party plugin only if its SHA-256 is known. "+
			"%s has the SHA-256 %s; if that is the binary you installed, pin it with either\n"+
			"  (cd %s && sha256sum %s > %s%s)\n"+
			"or the controller flag --plugin-checksum %s=sha256:%s",
			adapter, path, h, filepath.Dir(path), name, name, ChecksumSuffix, adapter, h)
	}
	if err != nil {
		return nil, fmt.Errorf("reading the checksum pin of adapter plugin %q: %w", adapter, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxPinFile+1))
	if err != nil {
		return nil, fmt.Errorf("reading the checksum pin %s: %w", pinFile, err)
	}
	if len(b) > maxPinFile {
		return nil, fmt.Errorf("the checksum pin %s is larger than %d bytes; it should hold one line, as `sha256sum %s` prints it", pinFile, maxPinFile, name)
	}
	line, _, _ := bufio.NewReader(bytes.NewReader(b)).ReadLine()
	fields := strings.Fields(string(line))
	if len(fields) == 0 {
		return nil, fmt.Errorf("the checksum pin %s is empty; write it with `sha256sum %s > %s%s` in %s", pinFile, name, name, ChecksumSuffix, filepath.Dir(path))
	}
	sum, err := ParseChecksum(fields[0])
	if err != nil {
		return nil, fmt.Errorf("reading the checksum pin %s: %w", pinFile, err)
	}
	if len(fields) > 1 {
		// sha256sum marks binary mode with a '*' before the name.
		if got := filepath.Base(strings.TrimPrefix(fields[1], "*")); got != name {
			return nil, fmt.Errorf("the checksum pin %s is for %s, not %s; write it with `sha256sum %s > %s%s` in %s", pinFile, got, name, name, name, ChecksumSuffix, filepath.Dir(path))
		}
	}
	return sum, nil
}

// checksumMismatch explains a plugin binary that is not the one pinned.
func checksumMismatch(adapter, path string, want []byte) error {
	msg := fmt.Sprintf("adapter plugin %q refused: %s is not the binary that was pinned (pinned SHA-256 %x", adapter, path, want)
	if got, err := FileChecksum(path); err == nil {
		msg += fmt.Sprintf(", this one has %x", got)
	}
	return fmt.Errorf("%s); if you replaced it on purpose, pin the new binary (its .sha256 file or --plugin-checksum) or, for a built-in adapter, restart the controller; otherwise it was changed behind your back: do not run it: %w",
		msg, plugin.ErrChecksumsDoNotMatch)
}
