package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadServeFile(t *testing.T) {
	dir := t.TempDir()
	for _, tt := range []struct {
		name, body string
		want       string // a part of the error, "" for none
		n          int    // instances read
	}{
		{"two instances", `{"token":"t","instances":[{"id":"web-0","admin":"127.0.0.4:15000","identity":"default/web"},{"id":"api-0","admin":"127.0.0.2:15000"}]}`, "", 2},
		{"none (the last one left)", `{"token":"t","instances":[]}`, "", 0},
		{"not JSON", `web-0=127.0.0.4:15000`, "parsing the serve file", 0},
		{"no id", `{"instances":[{"admin":"127.0.0.4:15000"}]}`, "without an id", 0},
		{"a bad admin address", `{"instances":[{"id":"web-0","admin":"127.0.0.4"}]}`, `the admin address "127.0.0.4"`, 0},
		{"twice", `{"instances":[{"id":"web-0","admin":"127.0.0.4:15000"},{"id":"web-0","admin":"127.0.0.5:15000"}]}`, "twice", 0},
		{"too large", `{"token":"` + strings.Repeat("x", maxServeFileBytes) + `"}`, "larger than", 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "_")+".json")
			if err := os.WriteFile(path, []byte(tt.body), 0o600); err != nil {
				t.Fatal(err)
			}
			sf, _, err := readServeFile(path)
			switch {
			case tt.want == "" && err != nil:
				t.Fatal(err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("error %v, want one containing %q", err, tt.want)
			case tt.want == "" && len(sf.Instances) != tt.n:
				t.Fatalf("%d instances, want %d", len(sf.Instances), tt.n)
			}
		})
	}
	if _, _, err := readServeFile(filepath.Join(dir, "missing.json")); err == nil || !strings.Contains(err.Error(), "reading the serve file") {
		t.Fatalf("a missing file: %v", err)
	}
}
