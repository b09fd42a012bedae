package policyhcl

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/weftmesh/weft/core/policy"
)

// Load reads the policy in paths, each a file or a directory whose *.hcl
// files (sorted by name, not recursive) are all read, and compiles it.
//
// It returns every diagnostic found, a nil policy when any of them is an
// error, and the parsed files by name so that the caller can render the
// diagnostics with WriteDiagnostics.
func Load(paths ...string) (*policy.Policy, hcl.Diagnostics, map[string]*hcl.File) {
	names, diags := policyFiles(paths)
	sources := make([]source, 0, len(names))
	for _, name := range names {
		src, err := os.ReadFile(name)
		if err != nil {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Cannot read policy file",
				Detail:   fmt.Sprintf("Cannot read %s: %s. Check that the file exists and is readable.", name, reason(err)),
			})
			continue
		}
		sources = append(sources, source{name, src})
	}
	if len(names) == 0 && !diags.HasErrors() {
		where := strings.Join(paths, ", ")
		if where == "" {
			where = "no path at all (none was given)"
		}
		diags = append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "No policy files",
			Detail: fmt.Sprintf("No *.hcl file was found in %s. An empty policy would deny every connection; "+
				"give a policy file or a directory that holds some.", where),
		})
	}
	if diags.HasErrors() {
		// Compile what could be read anyway, for its diagnostics.
		_, moreDiags, files := compile(sources)
		return nil, append(diags, moreDiags...), files
	}
	return compile(sources)
}

// LoadSources compiles a policy from in-memory files, by file name, in name
// order. It is Load without the file system, for tests and for callers that
// fetch policy from elsewhere.
func LoadSources(files map[string][]byte) (*policy.Policy, hcl.Diagnostics, map[string]*hcl.File) {
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)
	sources := make([]source, 0, len(names))
	for _, name := range names {
		sources = append(sources, source{name, files[name]})
	}
	return compile(sources)
}

type source struct {
	name string
	src  []byte
}

func compile(sources []source) (*policy.Policy, hcl.Diagnostics, map[string]*hcl.File) {
	var diags hcl.Diagnostics
	files := make(map[string]*hcl.File, len(sources))
	var cfg config
	parsedAll := true
	for _, s := range sources {
		f, parseDiags := hclsyntax.ParseConfig(s.src, s.name, hcl.InitialPos)
		diags = append(diags, parseDiags...)
		files[s.name] = f
		if parseDiags.HasErrors() {
			parsedAll = false
		}
		if f == nil || f.Body == nil {
			continue
		}
		diags = append(diags, cfg.decodeFile(f.Body)...)
	}
	if parsedAll {
		diags = append(diags, cfg.check()...)
		if !diags.HasErrors() {
			diags = append(diags, checkBindings(cfg.Services, cfg.Mesh != nil && cfg.Mesh.IdentityBinding == policy.BindingPermissive)...)
		}
	}
	sortDiagnostics(diags, sources)
	if diags.HasErrors() {
		return nil, diags, files
	}
	return cfg.toPolicy(), diags, files
}

// policyFiles expands paths into the policy files to read, each once.
func policyFiles(paths []string) ([]string, hcl.Diagnostics) {
	var diags hcl.Diagnostics
	var names []string
	seen := map[string]bool{}
	add := func(name string) {
		if key := filepath.Clean(name); !seen[key] {
			seen[key] = true
			names = append(names, name)
		}
	}
	for _, p := range paths {
		info, err := os.Stat(p)
		if err != nil {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Cannot read policy path",
				Detail:   fmt.Sprintf("Cannot read %s: %s. Give a policy file or a directory of *.hcl files.", p, reason(err)),
			})
			continue
		}
		if !info.IsDir() {
			add(p)
			continue
		}
		entries, err := os.ReadDir(p)
		if err != nil {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Cannot read policy directory",
				Detail:   fmt.Sprintf("Cannot list the directory %s: %s. Check that it is readable.", p, reason(err)),
			})
			continue
		}
		for _, e := range entries { // ReadDir sorts by name
			n := e.Name()
			if e.IsDir() || !strings.HasSuffix(n, ".hcl") || strings.HasPrefix(n, ".") || strings.HasPrefix(n, "#") {
				continue
			}
			add(filepath.Join(p, n))
		}
	}
	return names, diags
}

// sortDiagnostics puts diags in reading order: those without a source range
// first, then by file (in the order the files were read) and position.
func sortDiagnostics(diags hcl.Diagnostics, sources []source) {
	order := make(map[string]int, len(sources))
	for i, s := range sources {
		order[s.name] = i + 1
	}
	key := func(d *hcl.Diagnostic) (int, int) {
		if d.Subject == nil {
			return 0, 0
		}
		f, ok := order[d.Subject.Filename]
		if !ok {
			f = len(sources) + 1
		}
		return f, d.Subject.Start.Byte
	}
	sort.SliceStable(diags, func(i, j int) bool {
		fi, bi := key(diags[i])
		fj, bj := key(diags[j])
		if fi != fj {
			return fi < fj
		}
		return bi < bj
	})
}

// reason is err without the operation and path a *fs.PathError repeats.
func reason(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
