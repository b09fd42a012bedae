package jobspec

import (
	"bufio"
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

var defaults = Defaults{Controllers: []string{"10.0.0.5:7400"}, TrustBundle: "/etc/weft/default-ca.crt"}

func TestRenderGolden(t *testing.T) {
	for _, name := range []string{"stanza", "bridge", "plain", "node"} {
		t.Run(name, func(t *testing.T) {
			in := filepath.Join("testdata", name+".nomad")
			src, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			out, _, diags := Render(in, src, defaults)
			if diags.HasErrors() {
				t.Fatalf("Render: %v", diags)
			}
			if _, d := hclsyntax.ParseConfig(out, "out", hcl.InitialPos); d.HasErrors() {
				t.Fatalf("the rendered job does not parse: %v\n%s", d, out)
			}
			golden := filepath.Join("testdata", name+".golden")
			if *update {
				if err := os.WriteFile(golden, out, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to write it)", err)
			}
			if !bytes.Equal(out, want) {
				t.Errorf("Render(%s) differs from %s (go test -update rewrites it):\n%s", in, golden, out)
			}
		})
	}
}

func TestRenderPlainJobUnchanged(t *testing.T) {
	src, err := os.ReadFile(filepath.Join("testdata", "plain.nomad"))
	if err != nil {
		t.Fatal(err)
	}
	out, _, diags := Render("plain.nomad", src, Defaults{})
	if len(diags) != 0 || !bytes.Equal(out, src) {
		t.Errorf("a job without a weft block changed (diags %v):\n%s", diags, out)
	}
}

func TestRenderStanza(t *testing.T) {
	src, _ := os.ReadFile(filepath.Join("testdata", "stanza.nomad"))
	out, _, diags := Render("stanza.nomad", src, defaults)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	s := string(out)
	for _, want := range []string{
		`port "mesh" {}`, `port "weft_admin" {}`, `port "upstream_store" {}`, "port \"upstream_user_db\" {\n", "static = 9003",
		`name     = "api"`, `provider = "nomad"`, `port     = "http"`,
		`task "weft-proxy"`, `hook    = "prestart"`, `sidecar = true`, `env = true`,
		`"--instance", "${NOMAD_ALLOC_ID}/api"`, `"--controller", "127.0.0.1:7400"`, `"--trust-bundle", "/etc/weft/ca.crt"`,
		`"--admin", "${NOMAD_ADDR_weft_admin}"`, `"--credential-adapter", "nomad", "--credential-env", "NOMAD_TOKEN"`,
		`command = "/usr/local/bin/weft-proxy"`, `memory = 48`, `shutdown_delay = "2s"`,
	} {
		if !strings.Contains(s, want) {
			t.Errorf("rendered job lacks %q:\n%s", want, s)
		}
	}
	if strings.Contains(s, "weft {") || strings.Contains(s, "10.0.0.5") {
		t.Errorf("rendered job keeps the stanza or ignores its own controller:\n%s", s)
	}
}

var errorComment = regexp.MustCompile(`# ERROR: (.+)$`)

// errors.nomad carries the expected error summary on each offending line.
func TestRenderDiagnostics(t *testing.T) {
	path := filepath.Join("testdata", "errors.nomad")
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want := map[int]string{}
	sc := bufio.NewScanner(bytes.NewReader(src))
	for line := 1; sc.Scan(); line++ {
		if m := errorComment.FindStringSubmatch(sc.Text()); m != nil {
			want[line] = m[1]
		}
	}
	out, _, diags := Render(path, src, Defaults{})
	if out != nil {
		t.Errorf("Render returned output despite errors")
	}
	got := map[int]string{}
	for _, d := range diags {
		if d.Severity == hcl.DiagWarning && d.Subject != nil {
			continue // "Isolation is off" beside an error in the same group
		}
		if d.Severity != hcl.DiagError || d.Subject == nil {
			t.Errorf("diagnostic without a source range: %v", d)
			continue
		}
		if d.Subject.Filename != path || d.Detail == "" {
			t.Errorf("diagnostic %v: want file %s and a detail", d, path)
		}
		got[d.Subject.Start.Line] = d.Summary
	}
	for line, s := range want {
		if !strings.HasPrefix(got[line], s) {
			t.Errorf("line %d: got %q, want %q", line, got[line], s)
		}
	}
	for line, s := range got {
		if _, ok := want[line]; !ok {
			t.Errorf("unexpected error on line %d: %s", line, s)
		}
	}
}

func TestRenderNeedsController(t *testing.T) {
	src := []byte("job \"x\" {\n  group \"web\" {\n    network {\n      port \"app\" {}\n    }\n    weft {}\n  }\n}\n")
	_, _, diags := Render("x.nomad", src, Defaults{TrustBundle: "/ca.crt"})
	if !diags.HasErrors() || diags[0].Summary != "No controller address" || diags[0].Subject.Start.Line != 6 {
		t.Errorf("diagnostics %v: want No controller address at line 6", diags)
	}
}
