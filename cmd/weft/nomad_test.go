package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestNomadRenderCommand(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "web.nomad.hcl")
	os.WriteFile(good, []byte("job \"web\" {\n  group \"web\" {\n    network {\n      port \"app\" {}\n    }\n    weft {}\n  }\n}\n"), 0o644)
	bad := filepath.Join(dir, "bad.nomad.hcl")
	os.WriteFile(bad, []byte("job \"web\" {\n  group \"web\" {\n    network {\n      port \"app\" {}\n    }\n    weft {\n      upstream \"db\" {\n        local_port = \"x\"\n      }\n    }\n  }\n}\n"), 0o644)

	tests := []struct {
		name       string
		args       []string
		wantErr    bool
		wantOut    []string
		wantStderr []string
	}{
		{"expands the stanza", []string{"render", "--controller", "127.0.0.1:7400", "--trust-bundle", "/ca.crt", good}, false,
			[]string{`task "weft-proxy"`, `"--instance", "${NOMAD_ALLOC_ID}/web"`, `provider = "nomad"`}, nil},
		{"a malformed stanza names file:line", []string{"render", "--controller", "127.0.0.1:7400", "--trust-bundle", "/ca.crt", bad}, true,
			nil, []string{bad + ":8,22", "Wrong type", "local_port must be a whole number"}},
		{"no controller", []string{"render", good}, true, nil, []string{good + ":6,5", "No controller address"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := newNomadCmd()
			var out, errb bytes.Buffer
			cmd.SetOut(&out)
			cmd.SetErr(&errb)
			cmd.SetArgs(append(tt.args, "--no-color"))
			err := cmd.Execute()
			if (err != nil) != tt.wantErr {
				t.Fatalf("error %v, want error %v; stderr:\n%s", err, tt.wantErr, errb.String())
			}
			for _, w := range tt.wantOut {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, out.String())
				}
			}
			for _, w := range tt.wantStderr {
				if !strings.Contains(errb.String(), w) {
					t.Errorf("stderr lacks %q:\n%s", w, errb.String())
				}
			}
		})
	}
}
