package mesos

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/mesos/mesos-go/api/v1/lib/master"

	"github.com/weftmesh/weft/adapters/mesos/recordio"
)

// Media types a master speaks; it matches them exactly.
const (
	mediaJSON     = "application/json"
	mediaProtobuf = "application/x-protobuf"
)

// maxRedirects bounds how many 307s one call follows.
const maxRedirects = 4

// maxEvent bounds one event of the stream. SUBSCRIBED carries the whole
// cluster's state, which outgrows mesos-go's 4 MiB limit on big clusters;
// 64 MiB still bounds what a broken or hostile stream can make us hold.
const maxEvent = 64 << 20

// ErrUnauthorized means the master refused the credentials.
var ErrUnauthorized = errors.New("the Mesos master refused the credentials")

// errUnavailable is a master that cannot answer now (503 recovering, no
// connection): try another one, then retry with backoff.
var errUnavailable = errors.New("Mesos master unavailable")

// client calls one cluster's operator API. It is not safe for concurrent
// use: one Watch owns it.
type client struct {
	masters    []*url.URL // as configured
	leader     *url.URL   // where the last call succeeded
	user, pass string
	media      string
	maxRecord  int
	http       *http.Client
}

func newClient(masters []*url.URL, user, pass, media string) *client {
	return &client{
		masters: masters, user: user, pass: pass, media: media, maxRecord: maxEvent,
		http: &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
	}
}

// parseMasters reads a Source: comma-separated master URLs.
func parseMasters(src string) ([]*url.URL, error) {
	var out []*url.URL
	for _, s := range strings.Split(src, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if !strings.Contains(s, "://") {
			s = "http://" + s
		}
		u, err := url.Parse(s)
		if err != nil {
			return nil, fmt.Errorf("master %q is not a URL: %w", s, err)
		}
		if u.Scheme != "http" && u.Scheme != "https" {
			return nil, fmt.Errorf("master %q: scheme %q is not http or https", s, u.Scheme)
		}
		if u.Host == "" {
			return nil, fmt.Errorf("master %q has no host:port", s)
		}
		u.Path = strings.TrimSuffix(u.Path, "/")
		out = append(out, u)
	}
	if len(out) == 0 {
		return nil, errors.New("no master URL: set the source to http://HOST:5050[,http://HOST2:5050...]")
	}
	return out, nil
}

func (c *client) encode(call *master.Call) ([]byte, error) {
	if c.media == mediaProtobuf {
		return call.Marshal()
	}
	return json.Marshal(call)
}

func (c *client) decode(b []byte, v interface{ Unmarshal([]byte) error }) error {
	if c.media == mediaProtobuf {
		return v.Unmarshal(b)
	}
	return json.Unmarshal(b, v)
}

// post sends a call to the leader, trying the last known leader first,
// then every configured master, following redirects. It returns a 200
// response whose Content-Type is the one asked for.
func (c *client) post(ctx context.Context, call *master.Call) (*http.Response, error) {
	body, err := c.encode(call)
	if err != nil {
		return nil, fmt.Errorf("encoding %s call: %w", call.Type, err)
	}
	candidates := c.masters
	if c.leader != nil {
		candidates = append([]*url.URL{c.leader}, c.masters...)
	}
	var errs []error
	for _, base := range candidates {
		resp, err := c.postTo(ctx, base, body)
		if err == nil {
			return resp, nil
		}
		if errors.Is(err, ErrUnauthorized) || ctx.Err() != nil {
			return nil, err
		}
		errs = append(errs, err)
	}
	return nil, fmt.Errorf("%w: %w", errUnavailable, errors.Join(errs...))
}

func (c *client) postTo(ctx context.Context, base *url.URL, body []byte) (*http.Response, error) {
	target := base.JoinPath("api", "v1")
	for hop := 0; ; hop++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, target.String(), bytes.NewReader(body))
		if err != nil {
			return nil, fmt.Errorf("building request to %s: %w", target.Host, err)
		}
		req.Header.Set("Content-Type", c.media)
		req.Header.Set("Accept", c.media)
		if c.user != "" {
			req.SetBasicAuth(c.user, c.pass)
		}
		resp, err := c.http.Do(req)
		if err != nil {
			return nil, fmt.Errorf("calling master %s: %w", target.Host, err)
		}
		switch resp.StatusCode {
		case http.StatusOK:
			if ct := resp.Header.Get("Content-Type"); ct != c.media {
				resp.Body.Close()
				return nil, fmt.Errorf("master %s answered with Content-Type %q, want %q: is this a Mesos master?", target.Host, ct, c.media)
			}
			c.leader = &url.URL{Scheme: target.Scheme, Host: target.Host, Path: base.Path, User: base.User}
			return resp, nil
		case http.StatusTemporaryRedirect:
			loc := resp.Header.Get("Location")
			drain(resp)
			if hop >= maxRedirects {
				return nil, fmt.Errorf("master %s: more than %d redirects looking for the leader", base.Host, maxRedirects)
			}
			next, err := target.Parse(loc) // resolves //host:port/path against our scheme
			if err != nil || next.Host == "" {
				return nil, fmt.Errorf("master %s redirected to %q, which is not a master address", target.Host, loc)
			}
			if !strings.HasSuffix(next.Path, "/api/v1") {
				next = next.JoinPath("api", "v1")
			}
			target = next
		case http.StatusUnauthorized, http.StatusForbidden:
			drain(resp)
			return nil, fmt.Errorf("%w (HTTP %d from %s): check the adapter's user and password options", ErrUnauthorized, resp.StatusCode, target.Host)
		default:
			msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
			drain(resp)
			return nil, fmt.Errorf("master %s answered HTTP %d: %s", target.Host, resp.StatusCode, strings.TrimSpace(string(msg)))
		}
	}
}

func drain(resp *http.Response) {
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
}

// getState calls GET_STATE.
func (c *client) getState(ctx context.Context) (*master.Response_GetState, error) {
	resp, err := c.post(ctx, &master.Call{Type: master.Call_GET_STATE})
	if err != nil {
		return nil, fmt.Errorf("getting state: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return nil, fmt.Errorf("reading GET_STATE response: %w", err)
	}
	var r master.Response
	if err := c.decode(b, &r); err != nil {
		return nil, fmt.Errorf("decoding GET_STATE response: %w", err)
	}
	if r.Type != master.Response_GET_STATE || r.GetState == nil {
		return nil, fmt.Errorf("decoding GET_STATE response: got a %s response", r.Type)
	}
	return r.GetState, nil
}

// events is an open SUBSCRIBE stream.
type events struct {
	c    *client
	body io.ReadCloser
	r    *recordio.Reader
}

// subscribe opens the operator event stream.
func (c *client) subscribe(ctx context.Context) (*events, error) {
	resp, err := c.post(ctx, &master.Call{Type: master.Call_SUBSCRIBE})
	if err != nil {
		return nil, fmt.Errorf("subscribing: %w", err)
	}
	return &events{c: c, body: resp.Body, r: recordio.NewReader(resp.Body, c.maxRecord)}, nil
}

// next reads one event.
func (e *events) next() (*master.Event, error) {
	rec, err := e.r.Next()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("the master closed the event stream")
		}
		return nil, fmt.Errorf("reading event stream: %w", err)
	}
	var ev master.Event
	if err := e.c.decode(rec, &ev); err != nil {
		return nil, fmt.Errorf("decoding event: %w", err)
	}
	return &ev, nil
}

func (e *events) close() { e.body.Close() }
