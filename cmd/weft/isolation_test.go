package main

import "testing"

func TestIsolationCell(t *testing.T) {
	for iso, want := range map[string]string{
		"guard": "guard", "netns": "netns", "none": "NONE (app port open)", "": "NONE (app port open)", "bogus": "NONE (app port open)",
	} {
		if got := isolationCell(iso); got != want {
			t.Errorf("isolationCell(%q) = %q, want %q", iso, got, want)
		}
	}
}
