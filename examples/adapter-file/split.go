package main

import "bytes"

// splitInstances finds the records of the "instances" array of data, a
// document json.Valid accepted, in one pass and without copying: each
// record is where the bytes of one array element start and end, the bytes
// json.RawMessage would hold; arr is where the array's [ and ] are.
// It answers only where the answer is plainly the one json.Unmarshal
// gives; ok false sends the parse to json.Unmarshal, which decides (and
// explains) the rest: a key spelled with escapes, in another case or
// outside ASCII (encoding/json matches keys loosely), "instances" given
// twice, or not an array.
func splitInstances(data []byte) (recs []span, arr span, ok bool) {
	i := skipSpace(data, 0)
	if i >= len(data) || data[i] != '{' {
		return nil, span{}, false
	}
	found := false
	for i = skipSpace(data, i+1); i < len(data) && data[i] != '}'; {
		end := skipValue(data, i) // the key, a string: the document is valid
		key := data[i+1 : end-1]
		i = skipSpace(data, end) // at the colon
		i = skipSpace(data, i+1) // at the value
		end = skipValue(data, i)
		switch {
		case string(key) == "instances":
			if found || data[i] != '[' {
				return nil, span{}, false
			}
			arr, found = span{i, end - 1}, true
		case bytes.EqualFold(key, []byte("instances")) || !plainASCII(key):
			return nil, span{}, false
		}
		if i = skipSpace(data, end); i < len(data) && data[i] == ',' {
			i = skipSpace(data, i+1)
		}
	}
	if !found {
		return nil, span{}, false
	}
	return elements(data, arr), arr, true
}

// span is where something starts in a document and where it ends (one
// byte past it; for an array, at its closing bracket).
type span struct{ start, end int }

// elements are the spans of the elements of the valid array at arr.
func elements(data []byte, arr span) []span {
	recs := []span{}
	for j := skipSpace(data, arr.start+1); j < arr.end; {
		end := skipValue(data, j)
		recs = append(recs, span{j, end})
		if j = skipSpace(data, end); j < arr.end && data[j] == ',' {
			j = skipSpace(data, j+1)
		}
	}
	return recs
}

// plainASCII: no escape and nothing outside printable ASCII.
func plainASCII(b []byte) bool {
	for _, c := range b {
		if c == '\\' || c < 0x20 || c > 0x7e {
			return false
		}
	}
	return true
}

func skipSpace(data []byte, i int) int {
	for i < len(data) && (data[i] == ' ' || data[i] == '\t' || data[i] == '\n' || data[i] == '\r') {
		i++
	}
	return i
}

// skipValue returns where the valid JSON value at data[i] ends.
func skipValue(data []byte, i int) int {
	switch data[i] {
	case '"':
		for i++; i < len(data); i++ {
			switch data[i] {
			case '\\':
				i++
			case '"':
				return i + 1
			}
		}
		return len(data)
	case '{', '[':
		depth, inString := 0, false
		for ; i < len(data); i++ {
			switch c := data[i]; {
			case inString && c == '\\':
				i++
			case c == '"':
				inString = !inString
			case inString:
			case c == '{' || c == '[':
				depth++
			case c == '}' || c == ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
		}
		return len(data)
	default: // a number, true, false or null
		for ; i < len(data); i++ {
			switch data[i] {
			case ',', ']', '}', ' ', '\t', '\r', '\n':
				return i
			}
		}
		return i
	}
}
