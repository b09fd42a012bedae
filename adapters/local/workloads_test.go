package local

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
)

// decoded is what a test compares of a decoded service.
type decoded struct {
	Name      string
	Command   string
	Instances int
	Port      int
	Namespace string
	Meta      map[string]string
	Tags      []string
	// Args and Env as expanded for instance 0 at 127.0.0.9.
	Args []string
	Env  []string
}

func describe(t *testing.T, s *service) decoded {
	t.Helper()
	vars := map[string]string{"HOST": "127.0.0.9", "PORT": fmt.Sprint(s.Port), "WEFT_SERVICE": s.Name, "WEFT_INSTANCE": s.Name + "-0", "WEFT_NAMESPACE": "ns"}
	d := decoded{Name: s.Name, Command: s.Command, Instances: s.Instances, Port: s.Port, Namespace: s.Namespace, Meta: s.Meta, Tags: s.Tags}
	for _, e := range s.Args {
		v, diags := evalString(e, vars, "args")
		if diags.HasErrors() {
			t.Fatalf("expanding args of %s: %v", s.Name, diags)
		}
		d.Args = append(d.Args, v)
	}
	for _, e := range s.Env {
		v, diags := evalString(e.Value, vars, "env")
		if diags.HasErrors() {
			t.Fatalf("expanding env of %s: %v", s.Name, diags)
		}
		d.Env = append(d.Env, e.Name+"="+v)
	}
	return d
}

func TestParseWorkloadsValid(t *testing.T) {
	tests := []struct {
		file     string
		want     []decoded
		warnings []string
	}{
		{
			file: "minimal.hcl",
			want: []decoded{{Name: "api", Command: "./app", Instances: 1, Port: 8080}},
		},
		{
			file: "full.hcl",
			want: []decoded{
				{Name: "frontend", Command: "bin/frontend", Instances: 1, Port: 8080},
				{
					Name: "store", Command: "/usr/bin/env", Instances: 3, Port: 9000, Namespace: "shop",
					Meta: map[string]string{"version": "v2", "zone": "a"},
					Tags: []string{"demo", "db"},
					Args: []string{"--name", "store", "--listen", "127.0.0.9:9000"},
					Env:  []string{"STORE_DIR=/tmp/store-0", "MODE=fast", "LITERAL=${HOST}"},
				},
			},
		},
		{
			file:     "empty.hcl",
			warnings: []string{"No services"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			w, diags := loadWorkloads(filepath.Join("testdata", "valid", tt.file))
			if diags.HasErrors() {
				t.Fatalf("unexpected errors: %v", diags)
			}
			var warnings []string
			for _, d := range diags {
				warnings = append(warnings, d.Summary)
			}
			if !reflect.DeepEqual(warnings, tt.warnings) {
				t.Errorf("warnings = %q, want %q", warnings, tt.warnings)
			}
			var got []decoded
			for _, s := range w.Services {
				got = append(got, describe(t, s))
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("decoded\n %+v\nwant\n %+v", got, tt.want)
			}
			abs, _ := filepath.Abs(filepath.Join("testdata", "valid"))
			if w.Dir != abs {
				t.Errorf("Dir = %q, want %q", w.Dir, abs)
			}
		})
	}
}

var errorComment = regexp.MustCompile(`#\s*ERROR:\s*(.+?)\s*$`)

// expectedErrors reads the `# ERROR: <summary>` comments of a fixture as
// "line: summary" strings.
func expectedErrors(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		if m := errorComment.FindStringSubmatch(sc.Text()); m != nil {
			out = append(out, fmt.Sprintf("%d: %s", line, m[1]))
		}
	}
	if len(out) == 0 {
		t.Fatalf("%s has no # ERROR: comments", path)
	}
	sort.Strings(out)
	return out
}

func TestParseWorkloadsInvalid(t *testing.T) {
	paths, err := filepath.Glob(filepath.Join("testdata", "invalid", "*.hcl"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	for _, path := range paths {
		t.Run(filepath.Base(path), func(t *testing.T) {
			want := expectedErrors(t, path)
			_, diags := loadWorkloads(path)
			var got []string
			for _, d := range diags {
				if d.Severity != hcl.DiagError {
					continue
				}
				if d.Subject == nil {
					t.Errorf("diagnostic %q has no source range", d.Summary)
					continue
				}
				if d.Subject.Filename != path {
					t.Errorf("diagnostic %q names file %q, want %q", d.Summary, d.Subject.Filename, path)
				}
				if strings.TrimSpace(d.Detail) == "" {
					t.Errorf("diagnostic %q has no detail", d.Summary)
				}
				got = append(got, fmt.Sprintf("%d: %s", d.Subject.Start.Line, d.Summary))
			}
			sort.Strings(got)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("errors (line: summary)\n got: %q\nwant: %q\nall: %v", got, want, diags)
			}
		})
	}
}

// A service with errors is left out; the others still decode, so every
// problem is reported at once and nothing half-checked runs.
func TestParseWorkloadsSkipsBadServices(t *testing.T) {
	w, diags := loadWorkloads(filepath.Join("testdata", "invalid", "duplicate.hcl"))
	if !diags.HasErrors() {
		t.Fatal("want errors")
	}
	var names []string
	for _, s := range w.Services {
		names = append(names, s.Name)
	}
	if !reflect.DeepEqual(names, []string{"api", "web"}) {
		t.Errorf("services = %q, want [api web]", names)
	}
	if !strings.Contains(diags[0].Detail, "duplicate.hcl:1:1") {
		t.Errorf("duplicate detail %q does not point at the first declaration", diags[0].Detail)
	}
}

func TestParseWorkloadsMissingFile(t *testing.T) {
	_, diags := loadWorkloads(filepath.Join(t.TempDir(), "nope.hcl"))
	if len(diags) != 1 || diags[0].Summary != "Cannot read workloads file" {
		t.Fatalf("diags = %v, want one Cannot read workloads file", diags)
	}
}

func TestExampleWorkloadsDecode(t *testing.T) {
	path := filepath.Join("..", "..", "examples", "local", "workloads.hcl")
	w, diags := loadWorkloads(path)
	if len(diags) > 0 {
		t.Fatalf("examples/local/workloads.hcl: %v", diags)
	}
	got := map[string]int{}
	for _, s := range w.Services {
		got[s.Name] = s.Instances
	}
	want := map[string]int{"frontend": 1, "api": 2, "store": 1}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("services and instance counts = %v, want %v", got, want)
	}
}

// A check block decodes into the service's checkSpec, with its defaults.
func TestParseWorkloadsChecks(t *testing.T) {
	for _, tc := range []struct {
		name, block string
		want        *checkSpec
	}{
		{"none", "", nil},
		{"http with defaults", `check { http = "/healthz" }`, &checkSpec{HTTP: "/healthz", Interval: time.Second, Timeout: time.Second}},
		{"tcp, short interval: the timeout is at most the interval", `check {
  tcp      = true
  interval = "200ms"
}`, &checkSpec{TCP: true, Interval: 200 * time.Millisecond, Timeout: 200 * time.Millisecond}},
		{"http with a query, interval and timeout", `check {
  http     = "/health?full=1"
  interval = "5s"
  timeout  = "2s"
}`, &checkSpec{HTTP: "/health?full=1", Interval: 5 * time.Second, Timeout: 2 * time.Second}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := fmt.Sprintf("service \"api\" {\n  command = \"./app\"\n  port    = 8080\n  %s\n}\n", tc.block)
			w, diags := parseWorkloads([]byte(src), "w.hcl")
			if diags.HasErrors() || len(w.Services) != 1 {
				t.Fatalf("decoding %q: %v", src, diags)
			}
			if got := w.Services[0].Check; !reflect.DeepEqual(got, tc.want) {
				t.Errorf("check %+v, want %+v", got, tc.want)
			}
		})
	}
}
