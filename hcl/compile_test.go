package policyhcl

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"

	meshcompile "github.com/weftmesh/weft/core/compile"
	"github.com/weftmesh/weft/core/registry"
)

// TestCompileGolden compiles the valid policy testdata/valid/<name>.hcl
// against the instances in testdata/compile/<name>.instances.json and
// compares every instance's proxy config with testdata/compile/<name>.golden
// (run with -update to rewrite it).
func TestCompileGolden(t *testing.T) {
	paths, err := filepath.Glob("testdata/compile/*.instances.json")
	if err != nil || len(paths) == 0 {
		t.Fatalf("no fixtures in testdata/compile: %v", err)
	}
	for _, path := range paths {
		base := strings.TrimSuffix(path, ".instances.json")
		t.Run(filepath.Base(base), func(t *testing.T) {
			p, diags, _ := Load(filepath.Join("testdata", "valid", filepath.Base(base)+".hcl"))
			if diags.HasErrors() {
				t.Fatal(diags)
			}
			raw, err := os.ReadFile(base + ".instances.json")
			if err != nil {
				t.Fatal(err)
			}
			var entries []registry.Entry
			if err := json.Unmarshal(raw, &entries); err != nil {
				t.Fatalf("reading instances: %v", err)
			}
			cfgs := meshcompile.Compile(p, entries)
			ids := make([]string, 0, len(cfgs))
			for id := range cfgs {
				ids = append(ids, id)
			}
			sort.Strings(ids)
			var got bytes.Buffer
			for _, id := range ids {
				b, err := protojson.Marshal(cfgs[id])
				if err != nil {
					t.Fatal(err)
				}
				var compact bytes.Buffer
				if err := json.Compact(&compact, b); err != nil {
					t.Fatal(err)
				}
				if err := json.Indent(&got, compact.Bytes(), "", "  "); err != nil {
					t.Fatal(err)
				}
				got.WriteString("\n")
			}
			golden := base + ".golden"
			if *update {
				if err := os.WriteFile(golden, got.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("reading golden file (run with -update to create it): %v", err)
			}
			if !bytes.Equal(got.Bytes(), want) {
				t.Errorf("compiled configs differ from %s (run with -update if the change is intended)\ngot:\n%s", golden, got.Bytes())
			}
		})
	}
}
