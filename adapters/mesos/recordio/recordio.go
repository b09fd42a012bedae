package recordio

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// DefaultMaxRecord is the largest record a Reader accepts unless told
// otherwise: 4 MiB, the limit mesos-go applies to protobuf messages.
const DefaultMaxRecord = 4 << 20

// maxHeader is the longest length field accepted: 20 digits hold any
// uint64, so a longer header is garbage, not a length.
const maxHeader = 20

var (
	// ErrMalformed reports a record header that is not a decimal length
	// followed by a line feed.
	ErrMalformed = errors.New("malformed RecordIO header")
	// ErrOversize reports a record longer than the Reader's limit.
	ErrOversize = errors.New("RecordIO record over the size limit")
	// ErrTruncated reports a stream that ended inside a record.
	ErrTruncated = errors.New("RecordIO stream ended inside a record")
)

// Reader reads records one at a time.
type Reader struct {
	r   *bufio.Reader
	max int
}

// NewReader reads records from r, refusing any longer than max bytes
// (DefaultMaxRecord if max <= 0).
func NewReader(r io.Reader, max int) *Reader {
	if max <= 0 {
		max = DefaultMaxRecord
	}
	return &Reader{r: bufio.NewReaderSize(r, 32<<10), max: max}
}

// Next returns the next record's bytes. At a clean end of stream (between
// records) it returns io.EOF; otherwise any error wraps ErrMalformed,
// ErrOversize, ErrTruncated or the underlying reader's error. Empty
// records (length 0) are skipped, as mesos-go does.
func (r *Reader) Next() ([]byte, error) {
	for {
		n, err := r.header()
		if err != nil {
			return nil, err
		}
		if n == 0 {
			continue
		}
		buf := make([]byte, n)
		if _, err := io.ReadFull(r.r, buf); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return nil, fmt.Errorf("%w: wanted %d bytes", ErrTruncated, n)
			}
			return nil, fmt.Errorf("reading RecordIO record: %w", err)
		}
		return buf, nil
	}
}

func (r *Reader) header() (int, error) {
	var digits []byte
	for {
		c, err := r.r.ReadByte()
		if err != nil {
			if errors.Is(err, io.EOF) {
				if len(digits) == 0 {
					return 0, io.EOF
				}
				return 0, fmt.Errorf("%w: stream ended in the length %q", ErrTruncated, digits)
			}
			return 0, fmt.Errorf("reading RecordIO header: %w", err)
		}
		if c == '\n' {
			break
		}
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("%w: byte %q in the length field (is this a RecordIO stream?)", ErrMalformed, c)
		}
		if len(digits) == maxHeader {
			return 0, fmt.Errorf("%w: length field longer than %d digits", ErrMalformed, maxHeader)
		}
		digits = append(digits, c)
	}
	if len(digits) == 0 {
		return 0, fmt.Errorf("%w: empty length field", ErrMalformed)
	}
	n, err := strconv.ParseUint(string(digits), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: length %s: %v", ErrOversize, digits, err)
	}
	if n > uint64(r.max) {
		return 0, fmt.Errorf("%w: %d bytes, limit %d", ErrOversize, n, r.max)
	}
	return int(n), nil
}

// Writer writes records, flushing each one if the underlying writer is an
// http.Flusher-like value (anything with a Flush method).
type Writer struct {
	w io.Writer
}

// NewWriter writes records to w.
func NewWriter(w io.Writer) *Writer { return &Writer{w: w} }

// Write writes one record and flushes it.
func (w *Writer) Write(rec []byte) error {
	frame := make([]byte, 0, len(rec)+maxHeader+1)
	frame = strconv.AppendInt(frame, int64(len(rec)), 10)
	frame = append(frame, '\n')
	frame = append(frame, rec...)
	if _, err := w.w.Write(frame); err != nil {
		return fmt.Errorf("writing RecordIO record: %w", err)
	}
	if f, ok := w.w.(interface{ Flush() }); ok {
		f.Flush()
	}
	return nil
}
