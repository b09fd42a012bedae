package main

import (
	"io/fs"
	"strings"
	"testing"
)

// TestMemoryLimit: the sidecar's soft memory limit is 90% of its
// cgroup's (v2, else v1), none without a limit or with GOMEMLIMIT set,
// and none for a file it cannot read as a number.
func TestMemoryLimit(t *testing.T) {
	for _, tc := range []struct {
		name   string
		env    string
		v2, v1 string // "" for no such file
		want   int64
	}{
		{name: "no cgroup files", want: 0},
		{name: "v2 limit", v2: "536870912\n", want: 483183820},
		{name: "v2 max", v2: "max\n", v1: "1073741824\n", want: 0},
		{name: "v1 limit", v1: "1073741824\n", want: 966367641},
		{name: "v1 unlimited", v1: "9223372036854771712\n", want: 0},
		{name: "GOMEMLIMIT set", env: "100MiB", v2: "536870912\n", want: 0},
		{name: "not a number", v2: "lots\n", want: 0},
		{name: "negative", v2: "-1\n", want: 0},
		{name: "oversized file", v2: strings.Repeat("9", 64), v1: "1073741824\n", want: 966367641},
	} {
		t.Run(tc.name, func(t *testing.T) {
			files := map[string]string{cgroupMemoryFiles[0]: tc.v2, cgroupMemoryFiles[1]: tc.v1}
			read := func(name string) ([]byte, error) {
				if s := files[name]; s != "" {
					return []byte(s), nil
				}
				return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
			}
			getenv := func(k string) string {
				if k == "GOMEMLIMIT" {
					return tc.env
				}
				return ""
			}
			if got := memoryLimit(getenv, read); got != tc.want {
				t.Errorf("memoryLimit = %d, want %d", got, tc.want)
			}
		})
	}
}
