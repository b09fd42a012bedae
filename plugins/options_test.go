package plugins

import (
	"strings"
	"testing"
)

// TestCheckOptions: every type refuses what does not fit it, with an
// error naming the option, its type and the value; required options must
// be given; undeclared options are the adapter's business.
func TestCheckOptions(t *testing.T) {
	specs := []OptionSpec{
		{Name: "s", Type: OptionString},
		{Name: "b", Type: OptionBool},
		{Name: "i", Type: OptionInt},
		{Name: "d", Type: OptionDuration},
		{Name: "e", Type: OptionEnum, Values: []string{"guard", "none"}},
		{Name: "r", Type: OptionString, Required: true, Description: "the thing to read"},
	}
	req := map[string]string{"r": "x"}
	with := func(k, v string) map[string]string { return map[string]string{"r": "x", k: v} }
	tests := []struct {
		name  string
		given map[string]string
		want  []string // substrings of the error; none: no error
	}{
		{name: "all good", given: map[string]string{"r": "", "s": "anything at all", "b": "false", "i": "-3", "d": "1m30s", "e": "none"}},
		{name: "only the required one", given: req},
		{name: "undeclared is left to the adapter", given: with("pasword", "x")},
		{name: "required missing", given: map[string]string{}, want: []string{"option r (string) is required", "the thing to read"}},
		{name: "bool", given: with("b", "yes"), want: []string{`option b (bool) = "yes"`, "true or false"}},
		{name: "bool empty", given: with("b", ""), want: []string{`option b (bool) = ""`}},
		{name: "int", given: with("i", "1.5"), want: []string{`option i (int) = "1.5"`, "whole number"}},
		{name: "int with spaces", given: with("i", " 1"), want: []string{`option i (int)`}},
		{name: "int overflow", given: with("i", "99999999999999999999999"), want: []string{`option i (int)`}},
		{name: "duration without unit", given: with("d", "30"), want: []string{`option d (duration) = "30"`, "such as 500ms"}},
		{name: "enum", given: with("e", "netns"), want: []string{`option e (enum: guard or none) = "netns"`, "give guard or none"}},
		{name: "enum is case-sensitive", given: with("e", "GUARD"), want: []string{`option e (enum: guard or none) = "GUARD"`}},
		{name: "enum empty", given: with("e", ""), want: []string{`option e (enum: guard or none) = ""`}},
		{name: "every problem at once", given: map[string]string{"b": "2", "e": "x"}, want: []string{"option b", "option e", "option r"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckOptions(specs, tt.given)
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("CheckOptions = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("CheckOptions = nil, want an error with %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

func TestOrList(t *testing.T) {
	for _, tt := range []struct {
		in   []string
		want string
	}{{nil, ""}, {[]string{"a"}, "a"}, {[]string{"a", "b"}, "a or b"}, {[]string{"a", "b", "c"}, "a, b or c"}} {
		if got := OrList(tt.in); got != tt.want {
			t.Errorf("OrList(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
