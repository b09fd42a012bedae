package sdk_test

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/plugins/sdk"
)

var schema = []sdk.OptionSpec{
	{Name: "name", Type: sdk.OptionString, Default: "web"},
	{Name: "on", Type: sdk.OptionBool, Default: "true"},
	{Name: "n", Type: sdk.OptionInt, Default: "3"},
	{Name: "every", Type: sdk.OptionDuration, Default: "30s"},
	{Name: "mode", Type: sdk.OptionEnum, Values: []string{"json", "protobuf"}, Default: "json"},
}

// TestParseOptions: typed values, defaults for what is not given, an
// "Invalid NAME" error (and the default) for a value of the wrong type,
// and the undeclared names for the adapter to judge.
func TestParseOptions(t *testing.T) {
	tests := []struct {
		name        string
		given       map[string]string
		wantName    string
		wantOn      bool
		wantN       int
		wantEvery   time.Duration
		wantMode    string
		wantDiags   []string // summaries
		wantUnknown []string
	}{
		{name: "defaults", wantName: "web", wantOn: true, wantN: 3, wantEvery: 30 * time.Second, wantMode: "json"},
		{name: "given", given: map[string]string{"name": "", "on": "false", "n": "-7", "every": "250ms", "mode": "protobuf"},
			wantName: "", wantOn: false, wantN: -7, wantEvery: 250 * time.Millisecond, wantMode: "protobuf"},
		{name: "wrong types keep the defaults", given: map[string]string{"on": "maybe", "n": "3.5", "every": "soon", "mode": "xml"},
			wantName: "web", wantOn: true, wantN: 3, wantEvery: 30 * time.Second, wantMode: "json",
			wantDiags: []string{"Invalid on", "Invalid n", "Invalid every", "Invalid mode"}},
		{name: "unknown", given: map[string]string{"nme": "x", "Name": "y"}, wantName: "web", wantOn: true, wantN: 3, wantEvery: 30 * time.Second, wantMode: "json",
			wantUnknown: []string{"Name", "nme"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, diags := sdk.ParseOptions(schema, tt.given)
			if o.String("name") != tt.wantName || o.Bool("on") != tt.wantOn || o.Int("n") != tt.wantN ||
				o.Duration("every") != tt.wantEvery || o.String("mode") != tt.wantMode {
				t.Errorf("got %q %v %d %v %q, want %q %v %d %v %q", o.String("name"), o.Bool("on"), o.Int("n"), o.Duration("every"), o.String("mode"),
					tt.wantName, tt.wantOn, tt.wantN, tt.wantEvery, tt.wantMode)
			}
			var got []string
			for _, d := range diags {
				if d.Severity != sdk.SeverityError {
					t.Errorf("diagnostic %+v is not an error", d)
				}
				got = append(got, d.Summary)
			}
			if !sameSet(got, tt.wantDiags) {
				t.Errorf("diagnostics %q, want %q", got, tt.wantDiags)
			}
			if !reflect.DeepEqual(o.Unknown(), tt.wantUnknown) {
				t.Errorf("Unknown() = %q, want %q", o.Unknown(), tt.wantUnknown)
			}
		})
	}
	o, diags := sdk.ParseOptions([]sdk.OptionSpec{{Name: "key", Required: true, Description: "the key"}}, nil)
	if len(diags) != 1 || !strings.Contains(diags[0].Detail, "required") || o.Given("key") {
		t.Errorf("a missing required option: %+v, want one error saying it is required", diags)
	}
}

func sameSet(a, b []string) bool {
	m := map[string]int{}
	for _, x := range a {
		m[x]++
	}
	for _, x := range b {
		m[x]--
	}
	for _, n := range m {
		if n != 0 {
			return false
		}
	}
	return true
}
