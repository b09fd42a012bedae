package main

import (
	"encoding/json"
	"testing"
)

// TestSplitInstances: where splitInstances answers, it answers what
// json.Unmarshal does; where it cannot tell, it says so.
func TestSplitInstances(t *testing.T) {
	tests := []struct {
		name string
		data string
		ok   bool // splitInstances answers
	}{
		{"two records", `{"instances": [{"id": "a"}, {"id": "b", "ports": {"mesh": 1}}]}`, true},
		{"empty", `{"instances": []}`, true},
		{"no space anywhere", `{"instances":[{"id":"a"},{"id":"b"}]}`, true},
		{"space everywhere", " \n{ \"instances\" :\t[ {\"id\": \"a\"} ,\r\n {\"id\": \"b\"} ] } \n", true},
		{"other keys first and last", `{"note": {"x": [1, "]"]}, "n": 3, "instances": [{"id": "a"}], "t": true}`, true},
		{"brackets and escapes in strings", `{"instances": [{"id": "a\"]}", "tags": ["[", "{\\"]}, {"id": "b"}]}`, true},
		{"records that are not objects", `{"instances": [1, "x", null, true, [2], -1.5e3]}`, true},
		{"an escaped key: json.Unmarshal decides", `{"\u0069nstances": [{"id": "a"}]}`, false},
		{"another case: json.Unmarshal decides", `{"Instances": [{"id": "a"}]}`, false},
		{"a key outside ASCII: json.Unmarshal decides", `{"ınstances": [{"id": "a"}]}`, false},
		{"twice: json.Unmarshal decides", `{"instances": [{"id": "a"}], "instances": [{"id": "b"}]}`, false},
		{"not an array: json.Unmarshal decides", `{"instances": {}}`, false},
		{"null: json.Unmarshal decides", `{"instances": null}`, false},
		{"missing: json.Unmarshal decides", `{"instance": []}`, false},
		{"not an object", `[{"id": "a"}]`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !json.Valid([]byte(tt.data)) {
				t.Fatalf("the test's document is not valid JSON")
			}
			spans, arr, ok := splitInstances([]byte(tt.data))
			if ok != tt.ok {
				t.Fatalf("splitInstances answered %v, want %v", ok, tt.ok)
			}
			if !ok {
				return
			}
			var f file
			if err := json.Unmarshal([]byte(tt.data), &f); err != nil || f.Instances == nil {
				t.Fatalf("json.Unmarshal: %v, instances %v", err, f.Instances)
			}
			if tt.data[arr.start] != '[' || tt.data[arr.end] != ']' {
				t.Errorf("array at %v: %q ... %q", arr, tt.data[arr.start], tt.data[arr.end])
			}
			var got []string
			for _, s := range spans {
				got = append(got, tt.data[s.start:s.end])
			}
			if len(got) != len(*f.Instances) {
				t.Fatalf("%d records, json.Unmarshal %d", len(got), len(*f.Instances))
			}
			for i, raw := range *f.Instances {
				if got[i] != string(raw) {
					t.Errorf("record %d = %s, json.Unmarshal %s", i+1, got[i], raw)
				}
			}
		})
	}
}
