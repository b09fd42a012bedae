package h1_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weftmesh/weft/core/protect"
	"github.com/weftmesh/weft/core/proxy/canon"
)

// The differential tests send the same raw bytes through net/http's path
// (http.Server, canon.Canonicalize, httputil.ReverseProxy and
// http.Transport, set up as core/proxy's inbound sets them up) and
// through h1.Forwarder, to the same net/http application, and compare
// what the application received and what the client got back.

// ioBound bounds every read of a test: a failure, not a hang.
const ioBound = 10 * time.Second

// corpusCase is one section of a testdata corpus.
type corpusCase struct {
	name string
	raw  []byte
}

// readCorpus reads a corpus file: "=== name" starts a case; every line
// of a case is sent with CRLF after it, but one that ends with a
// backslash, which is sent without the backslash and without a line end;
// \xNN stands for the byte NN, \r for a CR, \n for an LF.
func readCorpus(t testing.TB, path string) []corpusCase {
	t.Helper()
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
			continue // the file's comment
		}
		c := &cases[len(cases)-1]
		join := strings.HasSuffix(line, `\`) && !strings.HasSuffix(line, `\\`)
		line = strings.TrimSuffix(line, `\`)
		for i := 0; i < len(line); i++ {
			if line[i] != '\\' || i+1 == len(line) {
				c.raw = append(c.raw, line[i])
				continue
			}
			switch line[i+1] {
			case 'r':
				c.raw = append(c.raw, '\r')
				i++
			case 'n':
				c.raw = append(c.raw, '\n')
				i++
			case 'x':
				v, err := strconv.ParseUint(line[i+2:i+4], 16, 8)
				if err != nil {
					t.Fatalf("%s: case %s: bad escape %q", path, c.name, line[i:i+4])
				}
				c.raw = append(c.raw, byte(v))
				i += 3
			default:
				c.raw = append(c.raw, line[i])
			}
		}
		if !join {
			c.raw = append(c.raw, '\r', '\n')
		}
	}
	if len(cases) == 0 {
		t.Fatalf("%s has no cases", path)
	}
	return cases
}

// recorder is the application: it writes down every request it receives
// (before it answers) and answers by path.
type recorder struct {
	mu   sync.Mutex
	seen []string
}

func (rc *recorder) take() []string {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	s := rc.seen
	rc.seen = nil
	return s
}

func (rc *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var body []byte
	var berr error
	if !strings.HasPrefix(r.URL.Path, "/early") {
		body, berr = io.ReadAll(r.Body)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s %s host=%q\n", r.Method, r.RequestURI, r.Proto, r.Host)
	if berr != nil {
		// A body cut short: the proxy streamed the head on before it
		// found the body invalid. The app never sees a whole request.
		fmt.Fprintf(&b, "%s\n", bodyCut)
	}
	writeHeader(&b, r.Header, "Content-Length", "Transfer-Encoding")
	fmt.Fprintf(&b, "body=%q\n", body)
	writeHeader(&b, r.Trailer)
	rc.mu.Lock()
	rc.seen = append(rc.seen, b.String())
	rc.mu.Unlock()

	h := w.Header()
	h.Set("X-App", "1")
	h.Add("X-Multi", "a")
	h.Add("X-Multi", "b")
	switch p := r.URL.Path; {
	case strings.HasPrefix(p, "/status/"):
		code, _ := strconv.Atoi(strings.TrimPrefix(p, "/status/"))
		w.WriteHeader(code)
		if code != 204 && code != 304 {
			io.WriteString(w, "status body\n")
		}
	case p == "/chunked":
		h.Set("Trailer", "X-Sum")
		w.WriteHeader(200)
		io.WriteString(w, "part one\n")
		w.(http.Flusher).Flush()
		io.WriteString(w, "part two\n")
		h.Set("X-Sum", "2")
	case p == "/early":
		http.Error(w, "too large", http.StatusRequestEntityTooLarge)
	case p == "/hints":
		h.Set("Link", "</a.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		w.WriteHeader(200)
		io.WriteString(w, "after hints\n")
	case p == "/close":
		h.Set("Connection", "close")
		io.WriteString(w, "closing\n")
	case p == "/upgrade":
		hj, _, err := w.(http.Hijacker).Hijack()
		if err != nil {
			return
		}
		defer hj.Close()
		io.WriteString(hj, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: weft-test\r\nConnection: Upgrade\r\n\r\n")
		io.Copy(hj, hj) // an echo until the client closes
	case p == "/empty":
		h.Set("Content-Length", "0")
	default:
		fmt.Fprintf(w, "ok %s %d bytes\n", r.Method, len(body))
	}
}

// bodyCut marks a request whose body the application could not read
// whole.
const bodyCut = "the body was cut short"

// writeHeader writes h sorted, leaving out the names in skip.
func writeHeader(b *strings.Builder, h http.Header, skip ...string) {
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	sort.Strings(keys)
next:
	for _, k := range keys {
		for _, s := range skip {
			if k == s {
				continue next
			}
		}
		fmt.Fprintf(b, "  %s: %q\n", k, h[k])
	}
}

// servePaths starts the application and both paths to it, and returns
// the two paths' addresses.
func servePaths(t *testing.T, app http.Handler) (oldPath, newPath string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	appSrv := &http.Server{Handler: app}
	go appSrv.Serve(ln)
	t.Cleanup(func() { appSrv.Close() })
	appAddr := ln.Addr().String()

	f := benchForwarder(appAddr)
	newPath = serveForwarder(t, f)

	lim := protect.Defaults()
	tr := &http.Transport{DisableCompression: true, MaxIdleConnsPerHost: 8}
	t.Cleanup(tr.CloseIdleConnections)
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.Host = pr.In.Host
			for _, fl := range f.Set {
				pr.Out.Header[string(fl.Name)] = pr.In.Header[string(fl.Name)]
			}
		},
		Transport: tr,
		ErrorLog:  log.New(io.Discard, "", 0),
	}
	old := &http.Server{
		MaxHeaderBytes: lim.MaxHeaderBytes - 4096,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			n := 0
			for _, v := range r.Header {
				n += len(v)
			}
			if n > lim.MaxHeaderCount {
				w.Header().Set("Connection", "close")
				http.Error(w, "too many header fields", http.StatusRequestHeaderFieldsTooLarge)
				return
			}
			if bad := canon.Canonicalize(r); bad != nil {
				http.Error(w, "weft: bad request: "+bad.Error(), http.StatusBadRequest)
				return
			}
			r.URL.Scheme, r.URL.Host = "http", appAddr
			for _, fl := range f.Set {
				r.Header.Set(string(fl.Name), string(fl.Value))
			}
			rp.ServeHTTP(w, r)
		}),
	}
	oln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go old.Serve(oln)
	t.Cleanup(func() { old.Close() })
	return oln.Addr().String(), newPath
}

// exchange sends raw on a new connection to addr and reads n final
// responses to requests of the given methods (1xx but 101 are skipped),
// or until the connection ends; it returns them written out, and the
// status of the first.
func exchange(t *testing.T, addr string, raw []byte, methods []string) (string, int) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(ioBound))
	if _, err := c.Write(raw); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	var b strings.Builder
	first := 0
	for i := 0; i < max(1, len(methods)); i++ {
		m := http.MethodGet
		if i < len(methods) {
			m = methods[i]
		}
		resp, err := http.ReadResponse(br, &http.Request{Method: m})
		for err == nil && resp.StatusCode < 200 && resp.StatusCode != 101 {
			resp, err = http.ReadResponse(br, &http.Request{Method: m})
		}
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("no response %d within %s", i+1, ioBound)
			}
			fmt.Fprintf(&b, "connection ended (%v)\n", errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed))
			break
		}
		if first == 0 {
			first = resp.StatusCode
		}
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			fmt.Fprintf(&b, "reading the body: %v\n", err)
		}
		fmt.Fprintf(&b, "%d\n", resp.StatusCode)
		writeHeader(&b, resp.Header, "Date", "Content-Length", "Transfer-Encoding", "Connection", "Keep-Alive")
		fmt.Fprintf(&b, "body=%q\n", body)
		writeHeader(&b, resp.Trailer)
	}
	return b.String(), first
}

// requestMethods is the method of every request in raw, as net/http
// reads them.
func requestMethods(t *testing.T, raw []byte) []string {
	br := bufio.NewReader(bytes.NewReader(raw))
	var ms []string
	for {
		r, err := http.ReadRequest(br)
		if err != nil {
			if err != io.EOF {
				t.Fatalf("net/http does not read the case: %v", err)
			}
			return ms
		}
		io.Copy(io.Discard, r.Body)
		ms = append(ms, r.Method)
	}
}

// TestDifferentialValid sends every case of testdata/valid.txt through
// both paths: the application must receive the same requests, and the
// client the same responses (framing aside: Content-Length,
// Transfer-Encoding, Connection and Date are left out of the comparison).
//
// The cases in knownBetter are where h1 does what net/http's path should:
// h1's delivery must hold the text given, which net/http's lacks.
func TestDifferentialValid(t *testing.T) {
	app := &recorder{}
	oldPath, newPath := servePaths(t, app)
	for _, c := range append(readCorpus(t, "testdata/valid.txt"), largeBodies()...) {
		t.Run(c.name, func(t *testing.T) {
			methods := requestMethods(t, c.raw)
			oldResp, _ := exchange(t, oldPath, c.raw, methods)
			oldApp := app.take()
			newResp, _ := exchange(t, newPath, c.raw, methods)
			newApp := app.take()
			if len(oldApp) != len(methods) {
				t.Errorf("net/http's path delivered %d requests of %d:\n%s", len(oldApp), len(methods), strings.Join(oldApp, ""))
			}
			if want, ok := knownBetter[c.name]; ok {
				a, b := strings.Join(oldApp, "---\n"), strings.Join(newApp, "---\n")
				if !strings.Contains(b, want) || strings.Contains(a, want) {
					t.Errorf("want %q in what h1 delivered and not in what net/http did; net/http's path:\n%s\nh1:\n%s", want, a, b)
				}
				oldApp, newApp = nil, nil
			}
			if a, b := strings.Join(oldApp, "---\n"), strings.Join(newApp, "---\n"); a != b {
				t.Errorf("the app received, through net/http's path:\n%s\nthrough h1:\n%s", a, b)
			}
			if oldResp != newResp {
				t.Errorf("the client received, through net/http's path:\n%s\nthrough h1:\n%s", oldResp, newResp)
			}
		})
	}
}

// knownBetter: valid cases that net/http's path (as set up here, as
// core/proxy's inbound is) gets wrong, with what h1 delivers instead.
var knownBetter = map[string]string{
	// A request trailer reaches the app through net/http's path
	// declared but with no value (what this test sees; why, in
	// ReverseProxy or http.Transport, is not pinned down yet).
	"chunked-with-trailers": `X-Checksum: ["42"]`,
}

// TestDifferentialRefused sends every case of testdata/refused.txt, each
// a request that two readers could split or read differently, through
// both paths: neither may deliver any request to the application, and
// both must answer 4xx or 5xx or close the connection; h1 must answer,
// with a body that says what is wrong. A request whose
// head went on before its body turned out invalid counts as refused when
// the application could not read the body whole. A case named with
// "[h1 only]" is one net/http reads one way that RFC 9112 allows (and
// that a stricter hop might read another way): only h1 must refuse it.
func TestDifferentialRefused(t *testing.T) {
	app := &recorder{}
	oldPath, newPath := servePaths(t, app)
	for _, c := range readCorpus(t, "testdata/refused.txt") {
		t.Run(c.name, func(t *testing.T) {
			paths := []struct{ name, addr string }{{"net/http", oldPath}, {"h1", newPath}}
			if strings.HasSuffix(c.name, "[h1 only]") {
				paths = paths[1:]
			}
			for _, p := range paths {
				resp, first := exchange(t, p.addr, c.raw, nil)
				var seen []string
				for _, s := range app.take() {
					if !strings.Contains(s, bodyCut) {
						seen = append(seen, s)
					}
				}
				if len(seen) > 0 {
					t.Errorf("%s delivered to the app:\n%s", p.name, strings.Join(seen, "---\n"))
				}
				if first != 0 && first < 400 {
					t.Errorf("%s answered %d:\n%s", p.name, first, resp)
				}
				if p.name == "h1" && (first == 0 || !strings.Contains(resp, `body="weft: `)) {
					t.Errorf("h1 did not answer with a refusal that says what is wrong:\n%s", resp)
				}
			}
		})
	}
}

// largeBodies are valid cases too large to write out: bodies many times
// the engine's buffers, with Content-Length and chunked, pipelined with a
// request after them.
func largeBodies() []corpusCase {
	body := bytes.Repeat([]byte("0123456789abcdef"), 64<<10) // 1 MiB
	var cl, ch bytes.Buffer
	fmt.Fprintf(&cl, "PUT /echo HTTP/1.1\r\nHost: app\r\nContent-Length: %d\r\n\r\n%sGET /after HTTP/1.1\r\nHost: app\r\n\r\n", len(body), body)
	ch.WriteString("PUT /echo HTTP/1.1\r\nHost: app\r\nTransfer-Encoding: chunked\r\n\r\n")
	for rest, n := body, 1; len(rest) > 0; n = n*3 + 1 {
		k := min(n, len(rest))
		fmt.Fprintf(&ch, "%x\r\n%s\r\n", k, rest[:k])
		rest = rest[k:]
	}
	ch.WriteString("0\r\n\r\nGET /after HTTP/1.1\r\nHost: app\r\n\r\n")
	return []corpusCase{{name: "large-content-length", raw: cl.Bytes()}, {name: "large-chunked", raw: ch.Bytes()}}
}

// TestUpgrade sends an upgrade request through both paths: the 101 comes
// back, and then bytes either way, echoed by the application through the
// raw pipe. "early" sends the first bytes on the same write as the
// request, before the 101, as RFC 9110 7.8 allows: net/http's path loses
// them (its reverse proxy copies from the hijacked connection, not from
// what its server had read ahead), so only h1 runs that one.
func TestUpgrade(t *testing.T) {
	oldPath, newPath := servePaths(t, &recorder{})
	for _, p := range []struct {
		name, addr string
		early      bool
	}{{"net/http", oldPath, false}, {"h1", newPath, false}, {"h1-early", newPath, true}} {
		t.Run(p.name, func(t *testing.T) {
			c, err := net.Dial("tcp", p.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(ioBound))
			req := "GET /upgrade HTTP/1.1\r\nHost: app\r\nConnection: Upgrade\r\nUpgrade: weft-test\r\n\r\n"
			if p.early {
				req += "ping"
			}
			if _, err := io.WriteString(c, req); err != nil {
				t.Fatal(err)
			}
			br := bufio.NewReader(c)
			resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodGet})
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != 101 || resp.Header.Get("Upgrade") != "weft-test" {
				t.Fatalf("got %d, Upgrade %q", resp.StatusCode, resp.Header.Get("Upgrade"))
			}
			for _, want := range []string{"ping", "pong"} {
				if want == "pong" || !p.early {
					io.WriteString(c, want)
				}
				got := make([]byte, 4)
				if _, err := io.ReadFull(br, got); err != nil || string(got) != want {
					t.Fatalf("echo: got %q, %v; want %q", got, err, want)
				}
			}
		})
	}
}
