package main

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
)

// TestParserWindow: a file that is the last one with one stretch of its
// array rewritten is read from that stretch alone; anything else takes the
// full parse. Either way the result is parse's.
func TestParserWindow(t *testing.T) {
	const (
		a = `{"id": "a", "service": "web", "address": "127.0.0.1", "ports": {"mesh": 1}}`
		b = `{"id": "b", "service": "web", "address": "127.0.0.2", "ports": {"mesh": 2}}`
		c = `{"id": "c", "service": "api", "address": "127.0.0.3", "ports": {"mesh": 3}}`
	)
	base := "{\"instances\": [\n  " + a + ",\n  " + b + ",\n  " + c + "\n]}\n"
	tests := []struct {
		name   string
		next   string
		window bool
	}{
		{"the same file", base, true},
		{"a port in the middle record", strings.Replace(base, `"mesh": 2`, `"mesh": 22`, 1), true},
		{"a port in the first record", strings.Replace(base, `"mesh": 1`, `"mesh": 11`, 1), true},
		{"a port in the last record", strings.Replace(base, `"mesh": 3`, `"mesh": 33`, 1), true},
		{"a record inserted", strings.Replace(base, b+",", b+", "+strings.ReplaceAll(c, `"c"`, `"d"`)+",", 1), true},
		{"a record appended", strings.Replace(base, c+"\n]", c+", "+strings.ReplaceAll(c, `"c"`, `"d"`)+"\n]", 1), true},
		{"the first record removed", strings.Replace(base, a+",\n  ", "", 1), true},
		{"the last record removed", strings.Replace(base, ",\n  "+c, "", 1), true},
		{"every record removed", "{\"instances\": [\n]}\n", true},
		{"a record broken: skipped", strings.Replace(base, `"mesh": 2`, `"mesh": "two"`, 1), true},
		{"a record made a number", strings.Replace(base, b, "2", 1), true},
		{"two commas: full parse, its error", strings.Replace(base, b+",", b+",,", 1), false},
		{"a comma lost: full parse, its error", strings.Replace(base, b+",", b, 1), false},
		{"a trailing comma: full parse, its error", strings.Replace(base, c+"\n]", c+",\n]", 1), false},
		{"a comma after the last record, spaces after it: full parse, its error", strings.Replace(base, c+"\n]", c+"\n,  ]", 1), false},
		{"a quote opened: full parse, its error", strings.Replace(base, `"mesh": 2}`, `"mesh": 2, "x}`, 1), false},
		{"a key before the array: full parse", strings.Replace(base, `{"instances"`, `{"note": 1, "instances"`, 1), false},
		{"a key after the array: full parse", strings.Replace(base, "]}", "], \"note\": 1}", 1), false},
		{"nested too deep: full parse, its error", strings.Replace(base, `"mesh": 2`, `"mesh": `+strings.Repeat("[", 40)+strings.Repeat("]", 40), 1), false},
		{"the array renamed: full parse, its error", strings.Replace(base, `"instances"`, `"instancez"`, 1), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var p parser
			if _, _, err := p.parse([]byte(base)); err != nil {
				t.Fatal(err)
			}
			gotIns, gotDiags, gotErr := p.parse([]byte(tt.next))
			if (p.windows == 1) != tt.window {
				t.Errorf("read from the stretch alone: %v, want %v", p.windows == 1, tt.window)
			}
			wantIns, wantDiags, wantErr := parse([]byte(tt.next))
			if fmt.Sprint(gotErr) != fmt.Sprint(wantErr) || !reflect.DeepEqual(gotIns, wantIns) || !reflect.DeepEqual(gotDiags, wantDiags) {
				t.Errorf("parser: %+v %+v %v\nparse:  %+v %+v %v", gotIns, gotDiags, gotErr, wantIns, wantDiags, wantErr)
			}
		})
	}
}

// TestParserMatchesParse: over random files and random edits to them (of
// records, of the punctuation between them, of anything at all), a
// parser fed one after another always says what parse says of each.
func TestParserMatchesParse(t *testing.T) {
	for seed := range uint64(20) {
		r := rand.New(rand.NewPCG(seed, 7))
		record := func() string {
			switch r.IntN(8) {
			case 0:
				return `{"id": "x", "service": "Bad!", "address": "127.0.0.1", "ports": {"mesh": 1}}`
			case 1:
				return fmt.Sprint(r.IntN(100))
			default:
				return fmt.Sprintf(`{"id": "i-%d", "service": "web", "address": "127.0.0.%d", "ports": {"mesh": %d}, "tags": ["a,b", "]"]}`,
					r.IntN(30), 1+r.IntN(200), 1+r.IntN(60000))
			}
		}
		var recs []string
		for range 1 + r.IntN(20) {
			recs = append(recs, record())
		}
		space := []string{"", " ", "\n  ", "\t"}
		file := func() string {
			var b strings.Builder
			b.WriteString(`{"instances": [`)
			for i, rec := range recs {
				if i > 0 {
					b.WriteString(space[r.IntN(len(space))] + ",")
				}
				b.WriteString(space[r.IntN(len(space))] + rec)
			}
			b.WriteString(space[r.IntN(len(space))] + "]}")
			return b.String()
		}
		var p parser
		data := file()
		for step := range 200 {
			switch k := r.IntN(10); {
			case k < 3 && len(recs) > 0: // change a record
				recs[r.IntN(len(recs))] = record()
				data = file()
			case k < 5: // insert one
				i := r.IntN(len(recs) + 1)
				recs = append(recs[:i], append([]string{record()}, recs[i:]...)...)
				data = file()
			case k < 6 && len(recs) > 0: // remove one
				i := r.IntN(len(recs))
				recs = append(recs[:i], recs[i+1:]...)
				data = file()
			case k < 9 && len(data) > 0: // any byte of the last file changed, added or removed
				i := r.IntN(len(data))
				const chars = `{}[],": 1ax\`
				c := string(chars[r.IntN(len(chars))])
				switch r.IntN(3) {
				case 0:
					data = data[:i] + c + data[i+1:]
				case 1:
					data = data[:i] + c + data[i:]
				default:
					data = data[:i] + data[i+1:]
				}
			default: // the same records, spaced anew
				data = file()
			}
			gotIns, gotDiags, gotErr := p.parse([]byte(data))
			wantIns, wantDiags, wantErr := parse([]byte(data))
			if fmt.Sprint(gotErr) != fmt.Sprint(wantErr) || !reflect.DeepEqual(gotIns, wantIns) || !reflect.DeepEqual(gotDiags, wantDiags) {
				t.Fatalf("seed %d step %d, file %q:\nparser: %+v %+v %v\nparse:  %+v %+v %v", seed, step, data, gotIns, gotDiags, gotErr, wantIns, wantDiags, wantErr)
			}
		}
		if p.windows == 0 {
			t.Errorf("seed %d: no parse read the stretch alone; the test does not test it", seed)
		}
	}
}
