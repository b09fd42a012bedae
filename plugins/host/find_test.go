package host_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/weftmesh/weft/plugins/host"
)

func TestFind(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, mode os.FileMode) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("#!/bin/sh\n"), mode); err != nil {
			t.Fatal(err)
		}
	}
	write("weft-adapter-file", 0o755)
	write("weft-adapter-noexec", 0o644)
	if err := os.Mkdir(filepath.Join(dir, "weft-adapter-adir"), 0o755); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name, dir, adapter string
		want               string   // the path, when found
		wantErr            []string // in the error otherwise
	}{
		{name: "found", dir: dir, adapter: "file", want: filepath.Join(dir, "weft-adapter-file")},
		{name: "missing", dir: dir, adapter: "nomadx", wantErr: []string{"not found", filepath.Join(dir, "weft-adapter-nomadx"), "go build -o", "--plugin-dir"}},
		{name: "not executable", dir: dir, adapter: "noexec", wantErr: []string{"not executable", "chmod +x"}},
		{name: "a directory", dir: dir, adapter: "adir", wantErr: []string{"is a directory"}},
		{name: "no dir", dir: "", adapter: "file", wantErr: []string{"--plugin-dir"}},
		{name: "path in name", dir: dir, adapter: "../file", wantErr: []string{"not an adapter name"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := host.Find(tt.dir, tt.adapter)
			if tt.wantErr == nil {
				if err != nil || got != tt.want {
					t.Fatalf("Find = %q, %v; want %q", got, err, tt.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("Find = %q, want an error", got)
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}
