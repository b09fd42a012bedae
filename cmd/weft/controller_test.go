package main

import (
	"strings"
	"testing"
)

func TestParseAdapters(t *testing.T) {
	tests := []struct {
		name    string
		specs   []string
		options []string
		want    string // name=source{k=v} joined by ;
		wantErr string
	}{
		{name: "one", specs: []string{"local=w.hcl"}, want: "local=w.hcl{}"},
		{name: "with option", specs: []string{"local=w.hcl"}, options: []string{"local.first_address=127.0.9.2"}, want: "local=w.hcl{first_address=127.0.9.2}"},
		{name: "no source", specs: []string{"local"}, wantErr: "want NAME=SOURCE"},
		{name: "twice", specs: []string{"local=a", "local=b"}, wantErr: "given twice"},
		{name: "option for an unknown adapter", specs: []string{"local=a"}, options: []string{"nomad.x=1"}, wantErr: "no --adapter nomad"},
		{name: "malformed option", specs: []string{"local=a"}, options: []string{"local=1"}, wantErr: "want NAME.KEY=VALUE"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseAdapters(tc.specs, tc.options)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var parts []string
			for _, a := range got {
				var kv []string
				for k, v := range a.options {
					kv = append(kv, k+"="+v)
				}
				parts = append(parts, a.name+"="+a.source+"{"+strings.Join(kv, ",")+"}")
			}
			if s := strings.Join(parts, ";"); s != tc.want {
				t.Errorf("got %s, want %s", s, tc.want)
			}
		})
	}
}

func TestParsePluginChecksums(t *testing.T) {
	const hex64 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
	specs := []adapterSpec{{name: "local"}, {name: "file"}}
	tests := []struct {
		name    string
		flags   []string
		wantErr string
	}{
		{name: "none"},
		{name: "one", flags: []string{"file=sha256:" + hex64}},
		{name: "bare hex", flags: []string{"file=" + hex64}},
		{name: "no name", flags: []string{"=sha256:" + hex64}, wantErr: "want NAME=sha256:HEX"},
		{name: "no value", flags: []string{"file"}, wantErr: "want NAME=sha256:HEX"},
		{name: "a built-in", flags: []string{"local=sha256:" + hex64}, wantErr: "built-in adapter"},
		{name: "no such adapter", flags: []string{"nomadx=sha256:" + hex64}, wantErr: "no --adapter nomadx"},
		{name: "twice", flags: []string{"file=sha256:" + hex64, "file=sha256:" + hex64}, wantErr: "pinned twice"},
		{name: "short", flags: []string{"file=sha256:abcd"}, wantErr: "64 hex digits"},
		{name: "another hash", flags: []string{"file=md5:" + hex64}, wantErr: "only sha256"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pins, err := parsePluginChecksums(tc.flags, specs)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || len(pins) != len(tc.flags) {
				t.Fatalf("pins %x, %v", pins, err)
			}
		})
	}
}

// The controller's certificate names both APIs' addresses, loopback and
// --server-name, never an unspecified address.
func TestCertHosts(t *testing.T) {
	for _, tc := range []struct {
		listen, admin string
		extra         []string
		want          string
	}{
		{"127.0.0.1", "127.0.0.1", nil, "127.0.0.1 ::1 localhost"},
		{"127.0.0.1", "127.0.77.1", nil, "127.0.0.1 127.0.77.1 ::1 localhost"},
		{"0.0.0.0", "::", []string{"weft-controller.internal"}, "127.0.0.1 ::1 localhost weft-controller.internal"},
		{"weft-controller", "", nil, "weft-controller 127.0.0.1 ::1 localhost"},
	} {
		if got := strings.Join(certHosts(tc.listen, tc.admin, tc.extra), " "); got != tc.want {
			t.Errorf("certHosts(%q, %q, %v) = %s, want %s", tc.listen, tc.admin, tc.extra, got, tc.want)
		}
	}
}
