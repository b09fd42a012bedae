package fasthttpeval

import (
	"io"
	"net"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// fasthttpDelivers are the cases of core/proxy/h1's testdata/refused.txt
// that a fasthttp proxy (set up as in BenchmarkFastHTTPProxy, with its
// defaults) delivers whole to a net/http application, where h1 and
// net/http's path refuse them (or, for the "[h1 only]" cases, h1 does).
// TestFastHTTPRefusals holds this list to what fasthttp v1.79.0 does.
//
// Its framing checks refuse every smuggling shape but two that RFC 9112
// lets a server read (TE over CL, a fold joined); what it delivers is what
// core/proxy/canon refuses (spellings of methods, paths and queries) and
// core/protect's header count, which a fasthttp engine would apply
// itself, on the raw target (DisablePathNormalizing: fasthttp's own
// normalization decodes %2F into a slash, which canon refuses).
var fasthttpDelivers = []string{
	"content-length-and-transfer-encoding [h1 only] -> POST /echo",
	"dot-segment-parameters -> GET /a/..;/admin",
	"encoded-backslash -> GET /a%5Cb",
	"encoded-slash -> GET /a/b",
	"invalid-percent-encoding -> GET /a%25zz",
	"lowercase-method -> get /lower",
	"obs-fold [h1 only] -> GET /fold",
	"query-semicolon -> GET /q?a=1;b=2",
	"too-many-fields -> GET /many",
}

// TestFastHTTPRefusals sends every case of the refused corpus through a
// fasthttp proxy and compares what reaches the application with
// fasthttpDelivers: what a fasthttp engine would have to add before it
// could stand where h1 stands.
func TestFastHTTPRefusals(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	ln := listen(t)
	appSrv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.ReadAll(r.Body); err == nil {
			mu.Lock()
			seen = append(seen, r.Method+" "+r.RequestURI)
			mu.Unlock()
		}
	})}
	go appSrv.Serve(ln)
	defer appSrv.Close()
	hc := &fasthttp.HostClient{Addr: ln.Addr().String()}
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		if err := hc.Do(&ctx.Request, &ctx.Response); err != nil {
			ctx.Error(err.Error(), fasthttp.StatusBadGateway)
		}
	}, Logger: quiet{}}
	pln := listen(t)
	go srv.Serve(pln)

	var delivered []string
	for _, c := range readCorpus(t, "../testdata/refused.txt") {
		conn, err := net.Dial("tcp", pln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		conn.Write(c.raw)
		// The proxy answers, or closes; either way the app has been
		// called (or not) by the time a response or EOF arrives.
		buf := make([]byte, 4096)
		n, _ := conn.Read(buf)
		conn.Close()
		_ = n
		mu.Lock()
		if len(seen) > 0 {
			delivered = append(delivered, c.name+" -> "+strings.Join(seen, ", "))
		}
		seen = nil
		mu.Unlock()
	}
	sort.Strings(delivered)
	want := append([]string(nil), fasthttpDelivers...)
	sort.Strings(want)
	if strings.Join(delivered, "\n") != strings.Join(want, "\n") {
		t.Errorf("fasthttp delivered to the app (%d cases):\n%s\nwant (fasthttpDelivers):\n%s",
			len(delivered), quoteAll(delivered), quoteAll(want))
	}
}

func quoteAll(s []string) string {
	var b strings.Builder
	for _, x := range s {
		b.WriteString("\t" + strconv.Quote(x) + ",\n")
	}
	return b.String()
}

type corpusCase struct {
	name string
	raw  []byte
}

// readCorpus reads core/proxy/h1's corpus format (see its diff_test.go).
func readCorpus(t *testing.T, path string) []corpusCase {
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var cases []corpusCase
	for _, line := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
		if name, ok := strings.CutPrefix(line, "=== "); ok {
			cases = append(cases, corpusCase{name: name})
			continue
		}
		if len(cases) == 0 {
			continue
		}
		c := &cases[len(cases)-1]
		join := strings.HasSuffix(line, `\`)
		line = strings.TrimSuffix(line, `\`)
		for i := 0; i < len(line); i++ {
			if line[i] == '\\' && i+3 < len(line) && line[i+1] == 'x' {
				v, err := strconv.ParseUint(line[i+2:i+4], 16, 8)
				if err != nil {
					t.Fatal(err)
				}
				c.raw = append(c.raw, byte(v))
				i += 3
				continue
			}
			c.raw = append(c.raw, line[i])
		}
		if !join {
			c.raw = append(c.raw, '\r', '\n')
		}
	}
	return cases
}

// quiet is a fasthttp.Logger that writes nothing: the refusals it would
// log are what the test expects.
type quiet struct{}

func (quiet) Printf(string, ...any) {}
