package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestAdapterHelpPrintsOptions: `weft adapter NAME --help` prints every
// option the built-in adapter declares, with its type and default.
func TestAdapterHelpPrintsOptions(t *testing.T) {
	for name, newAdapter := range builtinAdapters {
		t.Run(name, func(t *testing.T) {
			info, err := newAdapter().Info(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if len(info.Options) == 0 {
				t.Fatalf("the %s adapter declares no options", name)
			}
			cmd := newAdapterCmd()
			var out bytes.Buffer
			cmd.SetOut(&out)
			cmd.SetErr(&out)
			cmd.SetArgs([]string{name, "--help"})
			if err := cmd.Execute(); err != nil {
				t.Fatal(err)
			}
			help := out.String()
			if !strings.Contains(help, "--adapter-option "+name+".NAME=VALUE") {
				t.Errorf("help does not say how to give the options:\n%s", help)
			}
			for _, o := range info.Options {
				def := o.Default
				if def == "" {
					def = "-"
				}
				line := ""
				for _, l := range strings.Split(help, "\n") {
					if f := strings.Fields(l); len(f) > 0 && f[0] == o.Name {
						line = l
					}
				}
				if line == "" || !strings.Contains(line, o.TypeText()) || !strings.Contains(line, " "+def+" ") || !strings.Contains(line, o.Description) {
					t.Errorf("option %s: line %q lacks its type %q, default %q or description", o.Name, line, o.TypeText(), def)
				}
			}
		})
	}
}
