package recordio

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	mrecordio "github.com/mesos/mesos-go/api/v1/lib/recordio"
)

func readAll(t *testing.T, in string, max int) ([]string, error) {
	t.Helper()
	r := NewReader(strings.NewReader(in), max)
	var got []string
	for i := 0; i < 1000; i++ {
		rec, err := r.Next()
		if err == io.EOF {
			return got, nil
		}
		if err != nil {
			return got, err
		}
		got = append(got, string(rec))
	}
	t.Fatal("reader did not end within 1000 records")
	return nil, nil
}

func TestRead(t *testing.T) {
	for _, tc := range []struct {
		name    string
		in      string
		max     int
		want    []string
		wantErr error
	}{
		{name: "empty stream", in: "", want: nil},
		{name: "two records", in: "20\n{\"type\":\"HEARTBEAT\"}3\nabc", want: []string{`{"type":"HEARTBEAT"}`, "abc"}},
		{name: "empty records skipped", in: "0\n0\n2\nhi", want: []string{"hi"}},
		{name: "binary data with newlines", in: "3\n\n\x00\n", want: []string{"\n\x00\n"}},
		{name: "garbage body", in: "<html>502 Bad Gateway</html>", wantErr: ErrMalformed},
		{name: "negative length", in: "-1\nx", wantErr: ErrMalformed},
		{name: "empty length field", in: "\nabc", wantErr: ErrMalformed},
		{name: "spaces in header", in: " 3\nabc", wantErr: ErrMalformed},
		{name: "header too long", in: strings.Repeat("9", 30) + "\n", wantErr: ErrMalformed},
		{name: "huge length", in: "99999999999999999999\n", wantErr: ErrOversize},
		{name: "over the limit", in: "11\nhello world", max: 10, wantErr: ErrOversize},
		{name: "at the limit", in: "10\nhelloworld", max: 10, want: []string{"helloworld"}},
		{name: "cut inside record", in: "10\nhello", wantErr: ErrTruncated},
		{name: "cut inside header", in: "2\nhi12", want: []string{"hi"}, wantErr: ErrTruncated},
		{name: "length shorter than record", in: "3\nabcdef", want: []string{"abc"}, wantErr: ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := readAll(t, tc.in, tc.max)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("error = %v, want %v", err, tc.wantErr)
			}
			if strings.Join(got, "|") != strings.Join(tc.want, "|") {
				t.Fatalf("records = %q, want %q", got, tc.want)
			}
		})
	}
}

// The documentation's example stream: its first length (128) does not
// match its record (121 bytes as printed), which a reader must notice
// rather than return a spliced record that decodes as something else.
func TestDocExampleStreamLengthsAreWrong(t *testing.T) {
	first := `{"type": "SUBSCRIBED","subscribed": {"framework_id": {"value":"12220-3440-12532-2345"},"heartbeat_interval_seconds":15.0}`
	if len(first) != 121 {
		t.Fatalf("doc record is %d bytes, the README says 121", len(first))
	}
	in := "128\n" + first + "20\n" + `{"type":"HEARTBEAT"}`
	got, err := readAll(t, in, 0)
	if err == nil {
		t.Fatalf("read the broken doc stream without an error: %q", got)
	}
	// With the lengths corrected, the same records read back.
	fixed := "121\n" + first + "20\n" + `{"type":"HEARTBEAT"}`
	got, err = readAll(t, fixed, 0)
	if err != nil || len(got) != 2 || got[0] != first {
		t.Fatalf("corrected doc stream: %q, %v", got, err)
	}
}

// Our writer's output reads back through mesos-go's reader, and the other
// way round, so the simulator and the adapter agree with the real client.
func TestInteropWithMesosGo(t *testing.T) {
	records := [][]byte{[]byte(`{"type":"HEARTBEAT"}`), bytes.Repeat([]byte{0, '\n', 7}, 5000), []byte("x")}

	var ours bytes.Buffer
	w := NewWriter(&ours)
	for _, r := range records {
		if err := w.Write(r); err != nil {
			t.Fatal(err)
		}
	}
	mr := mrecordio.NewReader(bytes.NewReader(ours.Bytes()))
	for i, want := range records {
		got, err := mr.ReadFrame()
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("mesos-go reading our record %d: %v (%d bytes, want %d)", i, err, len(got), len(want))
		}
	}

	var theirs bytes.Buffer
	mw := mrecordio.NewWriter(&theirs)
	for _, r := range records {
		if err := mw.WriteFrame(r); err != nil {
			t.Fatal(err)
		}
	}
	rr := NewReader(&theirs, 0)
	for i, want := range records {
		got, err := rr.Next()
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("reading mesos-go's record %d: %v", i, err)
		}
	}
	if _, err := rr.Next(); err != io.EOF {
		t.Fatalf("after the last record: %v, want io.EOF", err)
	}
}

func FuzzReader(f *testing.F) {
	f.Add([]byte("20\n{\"type\":\"HEARTBEAT\"}"))
	f.Add([]byte("99999999999\n"))
	f.Add([]byte("3\nab"))
	f.Fuzz(func(t *testing.T, in []byte) {
		r := NewReader(bytes.NewReader(in), 1024)
		for i := 0; i <= len(in); i++ {
			rec, err := r.Next()
			if err != nil {
				return
			}
			if len(rec) == 0 || len(rec) > 1024 {
				t.Fatalf("record of %d bytes", len(rec))
			}
		}
		t.Fatal("more records than input bytes")
	})
}
