package policyhcl

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"

	"github.com/weftmesh/weft/core/inputlimit"
	"github.com/weftmesh/weft/core/policy"
	"github.com/weftmesh/weft/hcl/hcllimit"
)

// Load reads the policy in paths, each a file or a directory whose *.hcl
// files (sorted by name, not recursive) are all read, and compiles it.
//
// It returns every diagnostic found, a nil policy when any of them is an
// error, and the parsed files by name so that the caller can render the
// diagnostics with WriteDiagnostics.
func Load(paths ...string) (*policy.Policy, hcl.Diagnostics, map[string]*hcl.File) {
	names, diags := policyFiles(paths)
	if len(names) > MaxFiles {
		return nil, append(diags, tooManyFiles(len(names), paths)), map[string]*hcl.File{}
	}
	sources := make([]source, 0, len(names))
	var total int64
	for _, name := range names {
		src, err := inputlimit.ReadFile(name, min(MaxFileBytes, MaxTotalBytes-total))
		if err != nil {
			if _, ok := err.(*inputlimit.TooLargeError); ok && total > 0 && !fileTooLarge(name) {
				diags = append(diags, tooMuchPolicy(name))
			} else {
				diags = append(diags, hcllimit.Diagnostic(name, fileLimits, reason(err)))
			}
			continue
		}
		total += int64(len(src))
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
		fileStart := len(diags)
		// Nothing is parsed that could exhaust the parser: a file nested
		// too deeply (or too large, from LoadSources) is only reported.
		if limitDiags := hcllimit.Check(s.name, s.src, fileLimits); limitDiags.HasErrors() {
			diags = append(diags, limitDiags...)
			files[s.name] = &hcl.File{Bytes: s.src}
			parsedAll = false
			continue
		}
		f, parseDiags := hclsyntax.ParseConfig(s.src, s.name, hcl.InitialPos)
		diags = append(diags, detach(parseDiags)...)
		files[s.name] = f
		if parseDiags.HasErrors() {
			parsedAll = false
		}
		if f == nil || f.Body == nil {
			continue
		}
		diags = append(diags, detach(cfg.decodeFile(f.Body))...)
		// Only the source is needed from here on (to render diagnostics);
		// the syntax tree of a large file is not kept alive.
		files[s.name] = &hcl.File{Bytes: f.Bytes}
		diags = capDiagnostics(diags, fileStart, s.name)
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

// maxFileDiagnostics is the most diagnostics kept for one file: a user
// fixes the first ones first, and a generated file can have millions.
const maxFileDiagnostics = 100

// capDiagnostics keeps at most maxFileDiagnostics of the diagnostics from
// diags[from:], which are about the file name, and says how many it left
// out.
func capDiagnostics(diags hcl.Diagnostics, from int, name string) hcl.Diagnostics {
	n := len(diags) - from
	if n <= maxFileDiagnostics {
		return diags
	}
	kept := slices.Clip(diags[:from+maxFileDiagnostics])
	return append(kept, &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  "Too many problems",
		Detail: fmt.Sprintf("%s has %d more problems than the %d shown. Fix those first, or check that this is a policy file.",
			name, n-maxFileDiagnostics, maxFileDiagnostics),
	})
}

// detach gives each diagnostic ranges of its own. HCL points some at
// ranges inside its token slice, which would keep every token of the file
// (a hundred bytes or more per word and symbol) alive as long as the
// diagnostic.
func detach(diags hcl.Diagnostics) hcl.Diagnostics {
	for _, d := range diags {
		if d.Subject != nil {
			r := *d.Subject
			d.Subject = &r
		}
		if d.Context != nil {
			r := *d.Context
			d.Context = &r
		}
		d.Expression, d.EvalContext = nil, nil
	}
	return diags
}

// fileTooLarge reports whether the file at name is over MaxFileBytes on
// its own (rather than over what is left of MaxTotalBytes).
func fileTooLarge(name string) bool {
	info, err := os.Stat(name)
	return err == nil && info.Size() > MaxFileBytes
}

// reason is err without the operation and path a *fs.PathError repeats.
func reason(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
