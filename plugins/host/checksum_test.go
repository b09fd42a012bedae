package host_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/weftmesh/weft/plugins/host"
)

func TestParseChecksum(t *testing.T) {
	sum := sha256.Sum256([]byte("x"))
	h := hex.EncodeToString(sum[:])
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{h, true},
		{"sha256:" + h, true},
		{"SHA256:" + strings.ToUpper(h), true},
		{"  sha256:" + h + "\n", true},
		{"md5:" + h, false},
		{"sha256:" + h[:62], false},
		{"sha256:" + h + "00", false},
		{"sha256:" + h[:63] + "g", false},
		{"", false},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := host.ParseChecksum(tc.in)
			if tc.ok && (err != nil || !bytes.Equal(got, sum[:])) {
				t.Fatalf("ParseChecksum = %x, %v; want %x", got, err, sum)
			}
			if !tc.ok && err == nil {
				t.Fatalf("ParseChecksum(%q) = %x, want an error", tc.in, got)
			}
		})
	}
}

func TestPin(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "weft-adapter-file")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	actual, err := host.FileChecksum(bin)
	if err != nil {
		t.Fatal(err)
	}
	h := hex.EncodeToString(actual)
	flagPin := sha256.Sum256([]byte("from the flag"))
	tests := []struct {
		name    string
		pinFile *string // content of weft-adapter-file.sha256; nil: none
		flag    []byte
		want    []byte
		wantErr []string
	}{
		{name: "unpinned", wantErr: []string{`adapter plugin "file" is not pinned`, h, "sha256sum weft-adapter-file > weft-adapter-file.sha256", "--plugin-checksum file=sha256:" + h}},
		{name: "sha256sum output", pinFile: ptr(h + "  weft-adapter-file\n"), want: actual},
		{name: "binary mode and a path", pinFile: ptr(h + " *" + bin + "\n"), want: actual},
		{name: "bare hex", pinFile: ptr(h), want: actual},
		{name: "sha256: prefix", pinFile: ptr("sha256:" + h + "\n"), want: actual},
		{name: "the flag wins over the file", pinFile: ptr(h), flag: flagPin[:], want: flagPin[:]},
		{name: "the flag without a file", flag: flagPin[:], want: flagPin[:]},
		{name: "another binary's line", pinFile: ptr(h + "  weft-adapter-other\n"), wantErr: []string{"is for weft-adapter-other, not weft-adapter-file"}},
		{name: "empty", pinFile: ptr("\n"), wantErr: []string{"is empty", "sha256sum weft-adapter-file"}},
		{name: "not hex", pinFile: ptr("hello world\n"), wantErr: []string{"64 hex digits"}},
		{name: "too large", pinFile: ptr(h + strings.Repeat(" ", 5000)), wantErr: []string{"larger than"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pinPath := bin + host.ChecksumSuffix
			os.Remove(pinPath)
			if tc.pinFile != nil {
				if err := os.WriteFile(pinPath, []byte(*tc.pinFile), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			got, err := host.Pin(bin, tc.flag)
			if tc.wantErr == nil {
				if err != nil || !bytes.Equal(got, tc.want) {
					t.Fatalf("Pin = %x, %v; want %x", got, err, tc.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("Pin = %x, want an error", got)
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

func ptr(s string) *string { return &s }
