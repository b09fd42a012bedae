package host

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/weftmesh/weft/core/model"
)

// BinaryPrefix starts the file name of every third-party adapter plugin:
// the adapter "file" is the binary weft-adapter-file.
const BinaryPrefix = "weft-adapter-"

// Find resolves a third-party adapter binary "weft-adapter-<name>" in dir,
// with a clear error saying where it looked and how to install one. The
// path it returns is absolute.
func Find(dir, name string) (string, error) {
	if !model.ValidName(name) {
		return "", fmt.Errorf("finding adapter plugin: %q is not an adapter name; use lower-case letters, digits and dashes", name)
	}
	if dir == "" {
		return "", fmt.Errorf("finding adapter plugin %q: no plugin directory given; pass --plugin-dir DIR, the directory that holds %s%s", name, BinaryPrefix, name)
	}
	path, err := filepath.Abs(filepath.Join(dir, BinaryPrefix+name))
	if err != nil {
		return "", fmt.Errorf("finding adapter plugin %q: %w", name, err)
	}
	howto := fmt.Sprintf("build it there (for example: go build -o %s ./examples/adapter-file for the example adapter), copy a release binary there, or point --plugin-dir at the directory that holds it; then pin it (sha256sum %s > %s%s, in %s)", path, BinaryPrefix+name, BinaryPrefix+name, ChecksumSuffix, filepath.Dir(path))
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "", fmt.Errorf("adapter plugin %q not found: looked for %s; %s", name, path, howto)
	case err != nil:
		return "", fmt.Errorf("finding adapter plugin %q: %w", name, err)
	case fi.IsDir():
		return "", fmt.Errorf("adapter plugin %q: %s is a directory, not a plugin binary; %s", name, path, howto)
	case fi.Mode()&0o111 == 0:
		return "", fmt.Errorf("adapter plugin %q: %s is not executable; make it so (chmod +x %s)", name, path, path)
	}
	return path, nil
}
