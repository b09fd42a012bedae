package policyhcl

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/weftmesh/weft/core/policy"
)

var update = flag.Bool("update", false, "rewrite the .golden files under testdata/valid")

// fixtures lists the *.hcl files and the directories in dir.
func fixtures(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if e.IsDir() || strings.HasSuffix(e.Name(), ".hcl") {
			out = append(out, filepath.Join(dir, e.Name()))
		}
	}
	if len(out) == 0 {
		t.Fatalf("no fixtures in %s", dir)
	}
	return out
}

func TestLoadValid(t *testing.T) {
	for _, path := range fixtures(t, "testdata/valid") {
		t.Run(filepath.Base(path), func(t *testing.T) {
			p, diags, files := Load(path)
			if len(diags) > 0 {
				var buf bytes.Buffer
				_ = WriteDiagnostics(&buf, diags, files, false)
				t.Fatalf("unexpected diagnostics:\n%s", buf.String())
			}
			if p == nil {
				t.Fatal("nil policy without error diagnostics")
			}
			got, err := json.MarshalIndent(p, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			golden := strings.TrimSuffix(path, ".hcl") + ".golden"
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("reading golden file (run with -update to create it): %v", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("compiled policy differs from %s (run with -update if the change is intended)\ngot:\n%s\nwant:\n%s", golden, got, want)
			}
		})
	}
}

// annotations reads the `# ERROR: <summary>` comments of the fixture at
// path (a file or a directory of files), keyed by "file:line".
func annotations(t *testing.T, path string) map[string][]string {
	t.Helper()
	names := []string{path}
	if info, err := os.Stat(path); err != nil {
		t.Fatal(err)
	} else if info.IsDir() {
		names = nil
		for _, f := range fixtures(t, path) {
			names = append(names, f)
		}
	}
	want := map[string][]string{}
	for _, name := range names {
		src, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		for i, line := range strings.Split(string(src), "\n") {
			parts := strings.Split(line, "# ERROR:")
			for _, summary := range parts[1:] {
				key := fmt.Sprintf("%s:%d", name, i+1)
				want[key] = append(want[key], strings.TrimSpace(summary))
			}
		}
	}
	return want
}

func TestLoadInvalid(t *testing.T) {
	for _, path := range fixtures(t, "testdata/invalid") {
		t.Run(filepath.Base(path), func(t *testing.T) {
			want := annotations(t, path)
			if len(want) == 0 {
				t.Fatalf("fixture %s has no # ERROR: annotations", path)
			}
			p, diags, files := Load(path)
			if p != nil {
				t.Error("got a policy despite errors")
			}
			got := map[string][]string{}
			for _, d := range diags {
				if d.Subject == nil {
					t.Errorf("diagnostic %q has no subject", d.Summary)
					continue
				}
				if files[d.Subject.Filename] == nil {
					t.Errorf("diagnostic %q names file %q, which is not in the files map", d.Summary, d.Subject.Filename)
				}
				if d.Detail == "" {
					t.Errorf("diagnostic %q has no detail", d.Summary)
				}
				if d.Severity != hcl.DiagError {
					t.Errorf("diagnostic %q: severity %v, want error", d.Summary, d.Severity)
				}
				key := fmt.Sprintf("%s:%d", d.Subject.Filename, d.Subject.Start.Line)
				got[key] = append(got[key], d.Summary)
			}
			for key, summaries := range want {
				for _, s := range missing(summaries, got[key]) {
					t.Errorf("%s: missing error %q", key, s)
				}
			}
			for key, summaries := range got {
				for _, s := range missing(summaries, want[key]) {
					t.Errorf("%s: unexpected error %q", key, s)
				}
			}
		})
	}
}

// missing returns the elements of want not in got, counting repeats.
func missing(want, got []string) []string {
	left := slices.Clone(got)
	var out []string
	for _, w := range want {
		if i := slices.Index(left, w); i >= 0 {
			left = slices.Delete(left, i, i+1)
			continue
		}
		out = append(out, w)
	}
	return out
}

func TestSyntaxError(t *testing.T) {
	const path = "testdata/syntax/broken.hcl"
	p, diags, files := Load("testdata/syntax")
	if p != nil {
		t.Error("got a policy from a file with a syntax error")
	}
	if !diags.HasErrors() {
		t.Fatal("no error diagnostics for a syntax error")
	}
	d := diags[0]
	if d.Subject == nil || d.Subject.Filename != path || d.Subject.Start.Line != 6 {
		t.Fatalf("first diagnostic %q points at %v, want %s line 6", d.Summary, d.Subject, path)
	}
	var buf bytes.Buffer
	if err := WriteDiagnostics(&buf, diags, files, false); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Error: ", "on " + path + ":6,", "6 |   protocol ="} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("rendered diagnostics lack %q:\n%s", want, buf.String())
		}
	}
}

func TestLoadPaths(t *testing.T) {
	dir := t.TempDir()
	write := func(name, src string) string {
		t.Helper()
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	api := write("policy/api.hcl", "service \"api\" {\n  binding \"local\" { name = \"api\" }\n}\n")
	write("policy/.#api.hcl", `this is an editor lock file {`)
	write("policy/notes.txt", `not policy`)
	write("policy/sub/store.hcl", "service \"store\" {\n  binding \"local\" { name = \"store\" }\n}\n")
	web := write("web.hcl", "service \"web\" {\n  binding \"local\" { name = \"web\" }\n}\n")
	empty := filepath.Join(dir, "empty")
	if err := os.Mkdir(empty, 0o755); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name         string
		paths        []string
		wantServices []string // nil when an error is expected
		wantSummary  string
	}{
		{"directory skips hidden, non-hcl and subdirectories", []string{filepath.Join(dir, "policy")}, []string{"api"}, ""},
		{"file and directory merge", []string{filepath.Join(dir, "policy"), web}, []string{"api", "web"}, ""},
		{"same file twice is read once", []string{api, filepath.Join(dir, "policy")}, []string{"api"}, ""},
		{"empty directory", []string{empty}, nil, "No policy files"},
		{"no paths", nil, nil, "No policy files"},
		{"missing path", []string{filepath.Join(dir, "nope")}, nil, "Cannot read policy path"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, diags, _ := Load(tt.paths...)
			if tt.wantServices == nil {
				if p != nil {
					t.Error("got a policy, want none")
				}
				if len(diags) != 1 || diags[0].Summary != tt.wantSummary {
					t.Fatalf("diagnostics %v, want one %q", diags, tt.wantSummary)
				}
				return
			}
			if diags.HasErrors() || p == nil {
				t.Fatalf("unexpected diagnostics: %v", diags)
			}
			var got []string
			for name := range p.Services {
				got = append(got, name)
			}
			slices.Sort(got)
			if !slices.Equal(got, tt.wantServices) {
				t.Errorf("services %v, want %v", got, tt.wantServices)
			}
		})
	}
}

func TestIntentionOrder(t *testing.T) {
	p, diags, _ := LoadSources(map[string][]byte{
		"b.hcl": []byte(`
intention "*" "*" { action = "deny" }
intention "b" "*" { action = "allow" }
intention "*" "a" { action = "allow" }
intention "b" "a" { action = "deny" }
`),
		"a.hcl": []byte(`
service "a" {
  binding "local" { name = "a" }
}
service "b" {
  binding "local" { name = "b" }
}
intention "a" "b" { action = "allow" }
intention "a" "*" { action = "deny" }
intention "*" "b" { action = "deny" }
`),
	})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	var got []string
	for _, in := range p.Intentions {
		got = append(got, in.Source+">"+in.Destination)
	}
	want := []string{"a>b", "b>a", "a>*", "b>*", "*>a", "*>b", "*>*"}
	if !slices.Equal(got, want) {
		t.Errorf("intentions in order %v, want %v", got, want)
	}
}

// TestFullDecisions checks that the full example means what its comments
// say, through policy.Decide.
func TestFullDecisions(t *testing.T) {
	p, diags, _ := Load("testdata/valid/full")
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	tests := []struct {
		src, dst string
		want     policy.Action
	}{
		{"frontend", "api", policy.Allow},
		{"frontend", "auth", policy.Allow},
		{"frontend", "store", policy.Deny},
		{"api", "store", policy.Allow},
		{"api", "auth", policy.Allow},
		{"store", "api", policy.Deny},
	}
	for _, tt := range tests {
		t.Run(tt.src+"->"+tt.dst, func(t *testing.T) {
			if got, _ := p.Decide(tt.src, tt.dst); got != tt.want {
				t.Errorf("Decide(%q, %q) = %q, want %q", tt.src, tt.dst, got, tt.want)
			}
		})
	}
}

func TestDetails(t *testing.T) {
	tests := []struct {
		name       string
		src        string
		summary    string
		wantDetail []string
	}{
		{
			name: "unknown upstream lists services and suggests",
			src: `service "api" {
  upstream "stor" { local_port = 9101 }
}
service "store" {}
service "web" {}`,
			summary:    "Unknown upstream service",
			wantDetail: []string{`"api", "store" and "web"`, `Did you mean "store"?`, `service "stor" { ... }`},
		},
		{
			name:       "unknown intention source with no services",
			src:        `intention "web" "*" { action = "allow" }`,
			summary:    "Unknown intention source",
			wantDetail: []string{"No services are declared", `Use "*"`},
		},
		{
			name: "duplicate service names the first declaration",
			src: `service "api" {}
service "api" {}`,
			summary:    "Duplicate service",
			wantDetail: []string{"declared at p.hcl:1"},
		},
		{
			name:       "invalid protocol lists the choices",
			src:        `service "api" { protocol = "grcp" }`,
			summary:    "Invalid protocol",
			wantDetail: []string{`"tcp", "http", "http2" or "grpc"`, `Did you mean "grpc"?`},
		},
		{
			name:       "a proxy mode of the workloads file's words says what policy calls it",
			src:        `service "api" { proxy_mode = "sidecar" }`,
			summary:    "Invalid proxy mode",
			wantDetail: []string{`"instance" (a proxy per instance: the sidecar)`, `Policy calls a sidecar "instance".`},
		},
		{
			name:       "a misspelt mesh default proxy mode gets a suggestion",
			src:        `mesh { default_proxy_mode = "applicaton" }`,
			summary:    "Invalid proxy mode",
			wantDetail: []string{`"application" (one proxy per application on a node)`, `Did you mean "application"?`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, diags, _ := LoadSources(map[string][]byte{"p.hcl": []byte(tt.src)})
			if len(diags) != 1 || diags[0].Summary != tt.summary {
				t.Fatalf("diagnostics %v, want one %q", diags, tt.summary)
			}
			for _, want := range tt.wantDetail {
				if !strings.Contains(diags[0].Detail, want) {
					t.Errorf("detail %q lacks %q", diags[0].Detail, want)
				}
			}
		})
	}
}

// TestNoCascadeAfterSyntaxError checks that a block lost to a syntax error
// does not produce unknown-service errors elsewhere.
func TestNoCascadeAfterSyntaxError(t *testing.T) {
	_, diags, _ := LoadSources(map[string][]byte{
		"a.hcl": []byte(`service "store" {` + "\n" + `  protocol = ` + "\n}\n"),
		"b.hcl": []byte(`service "api" {` + "\n" + `  upstream "store" { local_port = 1 }` + "\n}\n"),
	})
	for _, d := range diags {
		if d.Summary == "Unknown upstream service" {
			t.Errorf("cascading diagnostic %q at %v", d.Summary, d.Subject)
		}
	}
	if !diags.HasErrors() {
		t.Error("no error for the syntax error")
	}
}

func TestSummary(t *testing.T) {
	tests := []struct {
		path string
		want string
	}{
		{"testdata/valid/full", "4 services, 6 intentions, trust domain weft.local, default deny"},
		{"testdata/valid/minimal.hcl", "1 service, 0 intentions, trust domain weft.local, default deny"},
		{"testdata/valid/self_upstream.hcl", "1 service, 1 intention, trust domain weft.local, default deny"},
		{"testdata/valid/mesh_only.hcl", "0 services, 0 intentions, trust domain prod.example.com, default allow"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			p, diags, _ := Load(tt.path)
			if diags.HasErrors() {
				t.Fatal(diags)
			}
			if got := Summary(p); got != tt.want {
				t.Errorf("Summary = %q, want %q", got, tt.want)
			}
		})
	}
}
