package inputlimit

import (
	"errors"
	"fmt"
	"io"
	"os"
)

// ErrTooLarge is wrapped by every *TooLargeError.
var ErrTooLarge = errors.New("input too large")

// ErrTooDeep is wrapped by every *TooDeepError.
var ErrTooDeep = errors.New("input nested too deeply")

// TooLargeError says that a file (or a set of files) is larger than its
// limit. Nothing past the limit was read.
type TooLargeError struct {
	Path  string // the file, or a directory for a total
	Limit int64  // bytes
}

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("%s is larger than the limit of %s", e.Path, Bytes(e.Limit))
}

// Unwrap makes errors.Is(err, ErrTooLarge) hold.
func (e *TooLargeError) Unwrap() error { return ErrTooLarge }

// TooDeepError says where nesting first went past its limit.
type TooDeepError struct {
	Limit  int
	Line   int // 1-based
	Column int // 1-based, in bytes
	Offset int // 0-based byte offset of the opening that went past the limit
}

func (e *TooDeepError) Error() string {
	return fmt.Sprintf("line %d: nested more than %d levels deep", e.Line, e.Limit)
}

// Unwrap makes errors.Is(err, ErrTooDeep) hold.
func (e *TooDeepError) Unwrap() error { return ErrTooDeep }

// ReadFile reads the file at path if it holds at most limit bytes. A longer
// file is refused with a *TooLargeError after reading limit+1 bytes, never
// more, so a huge file (or an endless one, like /dev/zero) costs no more
// memory than a file at the limit.
func ReadFile(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return Read(f, path, limit)
}

// Read reads r to its end if it holds at most limit bytes; name names it in
// the error.
func Read(r io.Reader, name string, limit int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, &TooLargeError{Path: name, Limit: limit}
	}
	return b, nil
}

// Bytes formats n for a message: "1 MiB", "64 KiB", "100 bytes".
func Bytes(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}

// JSONDepth checks that the arrays and objects of the JSON document src
// nest at most limit levels deep. Brackets inside strings do not count. It
// does not validate src otherwise; the decoder that follows does.
func JSONDepth(src []byte, limit int) error {
	depth, line, lineStart := 0, 1, 0
	inString := false
	for i := 0; i < len(src); i++ {
		c := src[i]
		if inString {
			switch c {
			case '\\':
				i++ // the escaped byte, whatever it is, is not structure
			case '"':
				inString = false
			case '\n':
				line, lineStart = line+1, i+1
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case '[', '{':
			depth++
			if depth > limit {
				return &TooDeepError{Limit: limit, Line: line, Column: i - lineStart + 1, Offset: i}
			}
		case ']', '}':
			if depth > 0 {
				depth--
			}
		case '\n':
			line, lineStart = line+1, i+1
		}
	}
	return nil
}
