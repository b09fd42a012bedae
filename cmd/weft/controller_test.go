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
