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

	pol := filepath.Join(dir, "policy")
	os.Mkdir(pol, 0o755)
	os.WriteFile(filepath.Join(pol, "web.hcl"), []byte("service \"web\" {\n  proxy_mode = \"node\"\n  binding \"nomad\" {\n    namespace = \"default\"\n    job       = \"web\"\n  }\n}\n"), 0o644)
	polInstance := filepath.Join(dir, "policy-instance")
	os.Mkdir(polInstance, 0o755)
	os.WriteFile(filepath.Join(polInstance, "mesh.hcl"), []byte("mesh {\n  default_proxy_mode = \"instance\"\n  identity_binding = \"permissive\"\n}\n"), 0o644)
	nodeJob := filepath.Join(dir, "node.nomad.hcl")
	os.WriteFile(nodeJob, []byte("job \"web\" {\n  group \"web\" {\n    network {\n      port \"app\" {}\n    }\n    weft {\n      proxy_mode = \"node\"\n    }\n  }\n}\n"), 0o644)

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
		{"the node proxy's system job", []string{"render", "--node-proxy", "--controller", "127.0.0.1:7410", "--trust-bundle", "/ca.crt", "--discover-interval", "1s"}, false,
			[]string{`job "weft-node-proxy"`, `type = "system"`, `weft_proxy = "node"`, `"--node", "${node.unique.name}"`, `"--controller", "127.0.0.1:7410"`, `"--discover-interval", "1s"`}, nil},
		{"the node proxy's job takes no job file", []string{"render", "--node-proxy", "--controller", "127.0.0.1:7410", "--trust-bundle", "/ca.crt", good}, true, nil, nil},
		{"the node proxy needs a controller", []string{"render", "--node-proxy", "--trust-bundle", "/ca.crt"}, true, nil, nil},
		{"a node-mode stanza: no sidecar task, the tag", []string{"render", nodeJob}, false,
			[]string{`tags     = ["weft_proxy_mode=node"]`, `port "mesh" {}`}, []string{"Isolation is off"}},
		{"the policy puts web in node mode", []string{"render", "--policy", pol, "--controller", "127.0.0.1:7400", "--trust-bundle", "/ca.crt", good}, false,
			[]string{`tags     = ["weft_proxy_mode=node"]`}, nil},
		{"the policy keeps web in instance mode: a node-mode stanza is refused", []string{"render", "--policy", polInstance, nodeJob}, true,
			nil, []string{nodeJob + ":7,20", "proxy_mode conflicts with the policy"}},
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
			if strings.Contains(out.String(), `["weft_proxy_mode=node"]`) && strings.Contains(out.String(), `task "weft-proxy"`) {
				t.Errorf("a node-mode job with a sidecar task:\n%s", out.String())
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
