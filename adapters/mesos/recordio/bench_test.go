package recordio

import (
	"bytes"
	"io"
	"testing"
)

// Reading a stream of 1 KiB records.
func BenchmarkRead1KiB(b *testing.B) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	rec := bytes.Repeat([]byte("x"), 1024)
	for i := 0; i < 1000; i++ {
		w.Write(rec)
	}
	stream := buf.Bytes()
	b.SetBytes(int64(len(stream)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r := NewReader(bytes.NewReader(stream), 0)
		for {
			if _, err := r.Next(); err == io.EOF {
				break
			} else if err != nil {
				b.Fatal(err)
			}
		}
	}
}
