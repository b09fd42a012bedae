package load

import (
	"bufio"
	"strings"
	"testing"
)

func TestReadResponse(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		status   int
		closing  bool
		rest     string
		wantErr  bool
	}{
		{"length", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX: y\r\n\r\nhelloNEXT", 200, false, "NEXT", false},
		{"chunked with trailer", "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\nT: v\r\n\r\nNEXT", 200, false, "NEXT", false},
		{"close", "HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", 503, true, "", false},
		{"no length", "HTTP/1.1 200 OK\r\n\r\nbody", 200, true, "body", true},
		{"garbage", "SSH-2.0-x\r\n", 0, false, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			br := bufio.NewReader(strings.NewReader(tc.in))
			status, closing, err := readResponse(br)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error %v", err, tc.wantErr)
			}
			if tc.wantErr {
				return
			}
			rest, _ := br.ReadString(0)
			if status != tc.status || closing != tc.closing || rest != tc.rest {
				t.Errorf("got %d %v rest %q, want %d %v rest %q", status, closing, rest, tc.status, tc.closing, tc.rest)
			}
		})
	}
}
