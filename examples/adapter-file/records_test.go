package main

import (
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/weftmesh/weft/plugins/sdk"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name      string
		data      string
		wantIDs   []string
		wantDiags []string // one substring per warning, in order
		// wantDropped, if set, is each warning's "instance reason".
		wantDropped []string
		wantErr     string
	}{
		{
			name:    "two instances",
			data:    `{"instances": [{"id": "a", "service": "web", "address": "127.0.0.1", "ports": {"mesh": 1}}, {"id": "b", "service": "web", "address": "::1", "ports": {"mesh": 2}, "health": "critical"}]}`,
			wantIDs: []string{"a", "b"},
		},
		{
			name:    "no instances",
			data:    `{"instances": []}`,
			wantIDs: nil,
		},
		{
			name: "one malformed record is skipped, the rest reported",
			data: `{"instances": [
				{"id": "a", "service": "web", "address": "127.0.0.1", "ports": {"mesh": 1}},
				{"id": "b", "service": "web", "address": "127.0.0.1", "ports": "all of them"},
				{"id": "c", "service": "web", "address": "127.0.0.1", "ports": {"mesh": 3}}]}`,
			wantIDs:   []string{"a", "c"},
			wantDiags: []string{"record 2: json: cannot unmarshal string"},
		},
		{
			name: "invalid records are skipped",
			data: `{"instances": [
				{"id": "a", "service": "Web!", "address": "127.0.0.1", "ports": {"mesh": 1}},
				{"id": "b", "service": "web", "address": "localhost", "ports": {"mesh": 1}},
				{"id": "c", "service": "web", "address": "127.0.0.1", "ports": {"app": 1}},
				{"id": "d", "service": "web", "address": "127.0.0.1", "ports": {"mesh": 1}, "health": "fine"},
				{"id": "e", "service": "web", "adress": "127.0.0.1", "ports": {"mesh": 1}},
				{"id": "f", "service": "web", "address": "127.0.0.1", "ports": {"mesh": 1}},
				{"id": "f", "service": "web", "address": "127.0.0.1", "ports": {"mesh": 2}}]}`,
			wantIDs: []string{"f"},
			wantDiags: []string{
				"record 1: instance a: service name",
				"record 2: instance b: address",
				`record 3: instance c: no "mesh" port`,
				`record 4: instance d: health "fine"`,
				`record 5: json: unknown field "adress"`,
				`record 7: instance ID "f" is already used by record 6`,
			},
			wantDropped: []string{
				"a " + sdk.ReasonNoServiceName, "b " + sdk.ReasonInvalidRecord, "c " + sdk.ReasonNoMeshPort,
				"d " + sdk.ReasonInvalidRecord, "record 5 " + sdk.ReasonInvalidRecord, "f " + sdk.ReasonDuplicateID,
			},
		},
		{name: "not JSON", data: "{\n  \"instances\": [,]\n}", wantErr: "line 2, column 17"},
		{name: "no instances key", data: `{"instance": []}`, wantErr: `no "instances" array`},
		{name: "nested too deep", data: "{\n\"instances\": " + strings.Repeat("[", 240<<10), wantErr: "line 2 nests arrays and objects more than 32 deep"},
		{name: "brackets in strings do not count", data: `{"instances": [], "note": "` + strings.Repeat("[", 100) + `\"` + strings.Repeat("{", 100) + `"}`, wantIDs: nil},
		{name: "too large", data: `{"instances": []}` + strings.Repeat(" ", maxFileBytes), wantErr: "larger than 16 MiB"},
		{name: "instances not an array", data: `{"instances": {}}`, wantErr: "cannot unmarshal object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ins, diags, err := parse([]byte(tt.data))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parse error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			var ids []string
			for _, in := range ins {
				ids = append(ids, in.ID)
			}
			if !slices.Equal(ids, tt.wantIDs) {
				t.Errorf("IDs = %v, want %v", ids, tt.wantIDs)
			}
			if len(diags) != len(tt.wantDiags) {
				t.Fatalf("diagnostics = %+v, want %d", diags, len(tt.wantDiags))
			}
			for i, d := range diags {
				if d.Severity != sdk.SeverityWarning || !strings.Contains(d.Detail, tt.wantDiags[i]) {
					t.Errorf("diagnostic %d = %+v, want a warning containing %q", i, d, tt.wantDiags[i])
				}
				if tt.wantDropped != nil && d.Instance+" "+d.Reason != tt.wantDropped[i] {
					t.Errorf("diagnostic %d drops %q, want %q", i, d.Instance+" "+d.Reason, tt.wantDropped[i])
				}
			}
		})
	}
}

// TestExampleFile: the instances.json shipped with the example parses
// cleanly.
func TestExampleFile(t *testing.T) {
	data, err := os.ReadFile("instances.json")
	if err != nil {
		t.Fatal(err)
	}
	ins, diags, err := parse(data)
	if err != nil || len(diags) != 0 || len(ins) != 3 {
		t.Errorf("instances.json: %d instances, diagnostics %v, error %v; want 3, none, nil", len(ins), diags, err)
	}
}

// TestParserDecodesOnlyChangedRecords: a parser fed one file after another
// returns what parse returns for each, having decoded only the records
// whose bytes it had not seen in the file before.
func TestParserDecodesOnlyChangedRecords(t *testing.T) {
	const (
		a  = `{"id": "a", "service": "web", "address": "127.0.0.1", "ports": {"mesh": 1}}`
		a2 = `{"id": "a", "service": "web", "address": "127.0.0.1", "ports": {"mesh": 9}}`
		b  = `{"id": "b", "service": "web", "address": "127.0.0.2", "ports": {"mesh": 2}}`
		c  = `{"id": "c", "service": "api", "address": "127.0.0.3", "ports": {"mesh": 3}}`
		// bad is skipped every time it is seen, cached or not.
		bad = `{"id": "x", "service": "web", "address": "localhost", "ports": {"mesh": 4}}`
	)
	file := func(recs ...string) string { return `{"instances": [` + strings.Join(recs, ", ") + `]}` }
	steps := []struct {
		name        string
		data        string
		wantDecodes int // records decoded by this step
	}{
		{"first file: every record", file(a, b, bad), 3},
		{"the same file: none", file(a, b, bad), 0},
		{"one record changed: that one", file(a2, b, bad), 1},
		{"one added, order changed: the new one", file(c, bad, b, a2), 1},
		{"one removed: none", file(c, b, a2), 0},
		{"a duplicate ID: none, and it is skipped", file(c, b, a2, a2), 0},
		{"malformed file: none, the memory kept", `{"instances": [`, 0},
		{"back to a record seen two files ago: decoded again", file(a, b), 1},
		{"the bad record back: decoded again, skipped", file(a, b, bad), 1},
	}
	var p parser
	for _, st := range steps {
		before := p.decodes
		gotIns, gotDiags, gotErr := p.parse([]byte(st.data))
		wantIns, wantDiags, wantErr := parse([]byte(st.data))
		if (gotErr == nil) != (wantErr == nil) || (gotErr != nil && gotErr.Error() != wantErr.Error()) {
			t.Errorf("%s: error %v, want %v", st.name, gotErr, wantErr)
		}
		if !reflect.DeepEqual(gotIns, wantIns) || !reflect.DeepEqual(gotDiags, wantDiags) {
			t.Errorf("%s: got %+v %+v, want %+v %+v", st.name, gotIns, gotDiags, wantIns, wantDiags)
		}
		if n := p.decodes - before; n != st.wantDecodes {
			t.Errorf("%s: decoded %d records, want %d", st.name, n, st.wantDecodes)
		}
	}
}
