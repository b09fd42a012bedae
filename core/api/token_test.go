package api_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/weftmesh/weft/core/api"
)

// TestLoadOrCreateToken: a new data directory gets a random token in a
// 0600 file, read back as it is (and as the CLI reads it); an empty file
// is refused, since it would admit anyone.
func TestLoadOrCreateToken(t *testing.T) {
	tests := []struct {
		name    string
		file    *string // the admin.token there before, nil for none
		want    string  // "" for a new random token
		wantErr string
	}{
		{name: "none yet", file: nil},
		{name: "one there", file: ptr("abc123\n"), want: "abc123"},
		{name: "an empty file", file: ptr(""), wantErr: "is empty; delete it and restart the controller"},
		{name: "only whitespace", file: ptr(" \n\t\n"), wantErr: "is empty"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			p := filepath.Join(dir, api.TokenFile)
			if tc.file != nil {
				if err := os.WriteFile(p, []byte(*tc.file), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			tok, err := api.LoadOrCreateToken(dir)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("token %q, error %v; want an error containing %q", tok, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.want != "" && tok != tc.want {
				t.Errorf("token = %q, want %q", tok, tc.want)
			}
			if tc.file == nil {
				if len(tok) != 48 {
					t.Errorf("new token %q: want 48 hex digits", tok)
				}
				if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o600 {
					t.Errorf("token file: %v, %v; want mode 0600", fi, err)
				}
				again, err := api.LoadOrCreateToken(dir)
				if err != nil || again != tok {
					t.Errorf("read again: %q, %v; want %q", again, err, tok)
				}
			}
			if read, err := api.ReadToken(dir); err != nil || read != tok {
				t.Errorf("ReadToken = %q, %v; want %q", read, err, tok)
			}
		})
	}
}
