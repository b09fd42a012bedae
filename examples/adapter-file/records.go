package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/weftmesh/weft/plugins/sdk"
)

// record is one instance in the file, in the file's own spelling.
type record struct {
	ID        string            `json:"id"`
	Service   string            `json:"service"`
	Namespace string            `json:"namespace"`
	Address   string            `json:"address"`
	Ports     map[string]int    `json:"ports"`
	Meta      map[string]string `json:"meta"`
	Tags      []string          `json:"tags"`
	Health    string            `json:"health"`
	Labels    map[string]string `json:"labels"`
}

// file is the whole file: {"instances": [record, ...]}.
type file struct {
	Instances *[]json.RawMessage `json:"instances"`
}

// An adapter bounds every file it reads before it parses it: a huge or
// deeply nested file must not exhaust the plugin. 16 MiB is tens of
// thousands of records; a record nests three levels.
const (
	maxFileBytes = 16 << 20
	maxDepth     = 32
)

// readFile reads the file at path, never more than maxFileBytes+1 bytes of
// it: parse refuses anything longer. The buffer is sized from the file's
// stat, so a large file is read in one allocation.
func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var b bytes.Buffer
	if info, err := f.Stat(); err == nil && info.Size() > 0 {
		b.Grow(int(min(info.Size(), maxFileBytes)) + bytes.MinRead)
	}
	_, err = b.ReadFrom(io.LimitReader(f, maxFileBytes+1))
	return b.Bytes(), err
}

// depthOK reports whether the arrays and objects of the JSON document data
// nest at most limit deep, and if not the line where they first do.
// Brackets in strings do not count.
func depthOK(data []byte, limit int) (line int, ok bool) {
	depth, line, inString := 0, 1, false
	for i := 0; i < len(data); i++ {
		switch c := data[i]; {
		case c == '\n':
			line++
		case inString && c == '\\':
			i++
		case c == '"':
			inString = !inString
		case inString:
		case c == '[' || c == '{':
			if depth++; depth > limit {
				return line, false
			}
		case (c == ']' || c == '}') && depth > 0:
			depth--
		}
	}
	return line, true
}

// parse reads the file's instances. A record that is malformed or invalid
// is skipped and reported as a warning diagnostic; the others are still
// returned. An error means the file as a whole is unusable.
func parse(data []byte) ([]sdk.Instance, []sdk.Diagnostic, error) {
	var p parser
	return p.parse(data)
}

// decoded is what decodeRecord made of one record's bytes.
type decoded struct {
	raw string // the bytes
	in  sdk.Instance
	err error
}

// parser parses the file again and again, decoding only the records whose
// bytes changed since the last parse: in a file of ten thousand records
// where one moved, that is one strict decode instead of ten thousand.
// Where the new file is the last one with one stretch of its instances
// array rewritten (window.go), only that stretch is checked and split;
// otherwise the whole file is, and records are matched by their bytes. It
// remembers the last file only. Its zero value is ready.
type parser struct {
	last    []byte     // the last file, when its records' places are known
	arr     span       // where its instances array is
	spans   []span     // where each of its records is
	decs    []*decoded // what each of them decoded to
	decodes int        // records decoded, all parses together
	windows int        // parses that checked only a rewritten stretch
}

// parse is the function parse, with the parser's memory of the last file.
func (p *parser) parse(data []byte) ([]sdk.Instance, []sdk.Diagnostic, error) {
	if len(data) > maxFileBytes {
		return nil, nil, fmt.Errorf("parsing instances file: it is larger than %d MiB; split the instances across adapters, or check that it is the file you meant", maxFileBytes>>20)
	}
	arr, spans, decs, ok := p.window(data)
	if ok {
		p.windows++
	} else {
		if line, ok := depthOK(data, maxDepth); !ok {
			return nil, nil, fmt.Errorf("parsing instances file: line %d nests arrays and objects more than %d deep; a record needs three levels", line, maxDepth)
		}
		var raws [][]byte
		var err error
		raws, arr, spans, err = recordBytes(data)
		if err != nil {
			return nil, nil, err
		}
		byRaw := make(map[string]*decoded, len(p.decs))
		for _, d := range p.decs {
			byRaw[d.raw] = d
		}
		decs = make([]*decoded, len(raws))
		for i, raw := range raws {
			if decs[i] = byRaw[string(raw)]; decs[i] == nil {
				decs[i] = p.decode(raw)
			}
		}
	}
	for i, d := range decs {
		if d == nil { // a record of the rewritten stretch
			decs[i] = p.decode(data[spans[i].start:spans[i].end])
		}
	}
	p.last, p.arr, p.spans, p.decs = data, arr, spans, decs
	if spans == nil { // json.Unmarshal split it: places unknown
		p.last = nil
	}
	var (
		out   = make([]sdk.Instance, 0, len(decs))
		diags []sdk.Diagnostic
		seen  = make(map[string]int, len(decs))
	)
	for i, d := range decs {
		n := i + 1
		in, err := d.in, d.err
		if err != nil {
			// Droppedf, not Warningf: the controller counts the record
			// under its reason and names it in `weft status`.
			id := in.ID
			if id == "" {
				id = fmt.Sprintf("record %d", n)
			}
			diags = append(diags, sdk.Droppedf(id, sdk.ReasonOf(err), "Instance record skipped", "record %d: %v", n, err))
			continue
		}
		if first, ok := seen[in.ID]; ok {
			diags = append(diags, sdk.Droppedf(in.ID, sdk.ReasonDuplicateID, "Instance record skipped", "record %d: instance ID %q is already used by record %d; IDs must be unique", n, in.ID, first))
			continue
		}
		seen[in.ID] = n
		out = append(out, in)
	}
	return out, diags, nil
}

// decode decodes one record's bytes.
func (p *parser) decode(raw []byte) *decoded {
	d := &decoded{raw: string(raw)}
	d.in, d.err = decodeRecord(raw)
	p.decodes++
	return d
}

// recordBytes returns the bytes of each record of the file: split in one
// pass where that is plain (splitInstances, which also says where the
// array and each record are), else as json.Unmarshal reads them (spans
// nil).
func recordBytes(data []byte) (raws [][]byte, arr span, spans []span, err error) {
	if json.Valid(data) {
		if spans, arr, ok := splitInstances(data); ok {
			raws = make([][]byte, len(spans))
			for i, s := range spans {
				raws[i] = data[s.start:s.end]
			}
			return raws, arr, spans, nil
		}
	}
	var f file
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, span{}, nil, fmt.Errorf("parsing instances file: %s", describeJSONError(data, err))
	}
	if f.Instances == nil {
		return nil, span{}, nil, errors.New(`parsing instances file: no "instances" array; write {"instances": [...]}, with an empty array for no instances`)
	}
	raws = make([][]byte, len(*f.Instances))
	for i, r := range *f.Instances {
		raws[i] = r
	}
	return raws, span{}, nil, nil
}

func decodeRecord(raw []byte) (sdk.Instance, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var r record
	if err := dec.Decode(&r); err != nil {
		return sdk.Instance{}, err
	}
	in := sdk.Instance{
		ID: r.ID, Service: r.Service, Namespace: r.Namespace, Address: r.Address,
		Ports: r.Ports, Meta: r.Meta, Tags: r.Tags, Health: sdk.Health(r.Health), Labels: r.Labels,
	}
	switch in.Health {
	case sdk.HealthUnknown, sdk.HealthPassing, sdk.HealthWarning, sdk.HealthCritical:
	default:
		return sdk.Instance{ID: in.ID}, fmt.Errorf("instance %s: health %q is not one of passing, warning, critical (or empty)", in.ID, r.Health)
	}
	if err := in.Validate(); err != nil {
		return sdk.Instance{ID: in.ID}, err
	}
	return in, nil
}

// describeJSONError adds the line and column of the offending byte.
func describeJSONError(data []byte, err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	var off int64
	switch {
	case errors.As(err, &syn):
		off = syn.Offset
	case errors.As(err, &typ):
		off = typ.Offset
	default:
		return err.Error()
	}
	// Offset counts the bytes read up to and including the offending one.
	line, col := 1, 1
	for _, b := range data[:min(max(int(off)-1, 0), len(data))] {
		if b == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
	}
	return fmt.Sprintf("line %d, column %d: %v", line, col, err)
}
