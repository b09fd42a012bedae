package jwks

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/weftmesh/weft/core/backoff"
	"github.com/weftmesh/weft/core/inputlimit"
	"github.com/weftmesh/weft/core/policy"
	"github.com/weftmesh/weft/core/proxy/jwtauth"
)

// Options configure a Resolver.
type Options struct {
	Logger *slog.Logger
	// Client fetches jwks_url; nil: a client with FetchTimeout and the
	// system's roots.
	Client *http.Client
	// Tick is how often the resolver looks for key sets due a refresh
	// (DefaultTick when 0).
	Tick time.Duration
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

// Timing.
const (
	DefaultTick  = time.Second
	FetchTimeout = 10 * time.Second
	// RetryMin and RetryMax bound the backoff of a key set that failed.
	RetryMin = time.Second
	RetryMax = time.Minute
)

// Resolver puts the keys of every JWT provider into the policies that
// pass through it (policy.JWTProvider.JWKS), reading jwks_file and fetching
// jwks_url, and sends a policy on again whenever a provider's keys change.
type Resolver struct {
	o Options

	mu      sync.Mutex
	sources map[string]*source // by file path or URL
}

// source is one key set: where it is, its last good keys, when to read it
// again.
type source struct {
	file, url string
	refresh   time.Duration
	keys      []byte // last good; nil: none yet
	etag      string
	err       string // the last read's error, "" when it worked
	next      time.Time
	retry     *backoff.Backoff
	readAt    time.Time // when keys were last read and good
}

// New returns a Resolver.
func New(o Options) *Resolver {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Client == nil {
		o.Client = &http.Client{Timeout: FetchTimeout, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{MinVersion: tls.VersionTLS12}, Proxy: http.ProxyFromEnvironment,
			ResponseHeaderTimeout: FetchTimeout,
		}}
	}
	if o.Tick == 0 {
		o.Tick = DefaultTick
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Resolver{o: o, sources: map[string]*source{}}
}

func key(p policy.JWTProvider) string {
	if p.JWKSURL != "" {
		return "url:" + p.JWKSURL
	}
	return "file:" + p.JWKSFile
}

// Run reads policies from in and sends each on to out with its providers'
// keys, reading the keys of a provider it has not seen first; then, every
// tick, it reads again the key sets due a refresh (each provider's
// jwks_refresh, or sooner after a failure) and, when one changed, sends
// the last policy again with the new keys. A key set that cannot be read
// or is not a valid one (jwtauth.ParseKeySet) keeps its last good keys;
// one never read leaves its provider without keys (every token of it is
// refused) until it can be. It returns when ctx is done.
func (r *Resolver) Run(ctx context.Context, in <-chan *policy.Policy, out chan<- *policy.Policy) {
	t := time.NewTicker(r.o.Tick)
	defer t.Stop()
	var cur *policy.Policy
	send := func() {
		if cur == nil {
			return
		}
		select {
		case out <- r.Resolve(cur):
		case <-ctx.Done():
		}
	}
	for {
		select {
		case <-ctx.Done():
			return
		case p := <-in:
			cur = p
			r.track(ctx, p)
			send()
		case <-t.C:
			if cur != nil && r.refreshDue(ctx) {
				send()
			}
		}
	}
}

// track adds the key sets of p's providers not known yet (and reads
// them), and forgets those no provider of p names.
func (r *Resolver) track(ctx context.Context, p *policy.Policy) {
	want := map[string]policy.JWTProvider{}
	for _, jp := range p.JWTProviders {
		want[key(jp)] = jp
	}
	r.mu.Lock()
	for k := range r.sources {
		if _, ok := want[k]; !ok {
			delete(r.sources, k)
		}
	}
	var fresh []*source
	for k, jp := range want {
		refresh := jp.JWKSRefresh
		if refresh == 0 {
			refresh = policy.DefaultJWKSRefresh
		}
		if s, ok := r.sources[k]; ok {
			s.refresh = refresh
			continue
		}
		s := &source{file: jp.JWKSFile, url: jp.JWKSURL, refresh: refresh, retry: backoff.New(RetryMin, RetryMax)}
		r.sources[k] = s
		fresh = append(fresh, s)
	}
	r.mu.Unlock()
	for _, s := range fresh {
		r.read(ctx, s)
	}
}

// refreshDue reads the key sets due and reports whether any changed.
func (r *Resolver) refreshDue(ctx context.Context) bool {
	now := r.o.Now()
	r.mu.Lock()
	var due []*source
	for _, s := range r.sources {
		if !now.Before(s.next) {
			due = append(due, s)
		}
	}
	r.mu.Unlock()
	changed := false
	for _, s := range due {
		if r.read(ctx, s) {
			changed = true
		}
	}
	return changed
}

// read reads s once and reports whether its keys changed.
func (r *Resolver) read(ctx context.Context, s *source) bool {
	start := r.o.Now()
	keys, etag, err := r.fetch(ctx, s)
	if err == nil && keys != nil {
		_, err = jwtauth.ParseKeySet(keys)
		if err != nil {
			err = fmt.Errorf("checking the key set: %w", err)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	where := s.file
	if s.url != "" {
		where = s.url
	}
	if err != nil {
		s.err = err.Error()
		wait := s.retry.Next()
		if wait > s.refresh {
			wait = s.refresh
		}
		s.next = start.Add(wait)
		msg := "JWT keys: reading failed; the last good keys stay in force"
		if s.keys == nil {
			msg = "JWT keys: reading failed; the provider's tokens are refused until its keys can be read"
		}
		r.o.Logger.Warn(msg, "source", where, "err", err, "retry_in", wait)
		return false
	}
	s.retry.Reset()
	s.err, s.next, s.readAt = "", start.Add(s.refresh), start
	if keys == nil { // 304: unchanged
		return false
	}
	s.etag = etag
	if bytes.Equal(keys, s.keys) {
		return false
	}
	first := s.keys == nil
	s.keys = keys
	if !first {
		r.o.Logger.Info("JWT keys changed; sending them to the sidecars", "source", where)
	}
	return true
}

// noDowngrade follows at most 5 redirects, never from https to another
// scheme: the keys decide who may sign, and a plain http answer could come
// from anyone on the path.
func noDowngrade(req *http.Request, via []*http.Request) error {
	if len(via) >= 5 {
		return fmt.Errorf("stopped after %d redirects", len(via))
	}
	if via[0].URL.Scheme == "https" && req.URL.Scheme != "https" {
		return fmt.Errorf("refusing a redirect from https to %s (%s): give the key set's https URL", req.URL.Scheme, req.URL.Redacted())
	}
	return nil
}

// fetch reads the key set of s: nil keys and no error mean unchanged (304).
func (r *Resolver) fetch(ctx context.Context, s *source) ([]byte, string, error) {
	if s.file != "" {
		b, err := inputlimit.ReadFile(s.file, jwtauth.MaxJWKSBytes)
		if err != nil {
			return nil, "", fmt.Errorf("reading JWKS file: %w", err)
		}
		return b, "", nil
	}
	ctx, cancel := context.WithTimeout(ctx, FetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url, nil)
	if err != nil {
		return nil, "", fmt.Errorf("fetching JWKS: %w", err)
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	if s.etag != "" && s.keys != nil {
		req.Header.Set("If-None-Match", s.etag)
	}
	c := *r.o.Client
	c.CheckRedirect = noDowngrade
	resp, err := c.Do(req)
	if err != nil {
		return nil, "", fmt.Errorf("fetching JWKS: %w", err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotModified && s.keys != nil:
		return nil, s.etag, nil
	case resp.StatusCode != http.StatusOK:
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		return nil, "", fmt.Errorf("fetching JWKS: %s answered %s", s.url, resp.Status)
	}
	if resp.ContentLength > jwtauth.MaxJWKSBytes {
		return nil, "", fmt.Errorf("fetching JWKS: %w", &inputlimit.TooLargeError{Path: s.url, Limit: jwtauth.MaxJWKSBytes})
	}
	b, err := inputlimit.Read(resp.Body, s.url, jwtauth.MaxJWKSBytes)
	if err != nil {
		return nil, "", fmt.Errorf("fetching JWKS: %w", err)
	}
	if len(b) == 0 {
		return nil, "", errors.New("fetching JWKS: the answer is empty")
	}
	return b, resp.Header.Get("ETag"), nil
}

// Resolve returns p with the last good keys of each of its providers (a
// copy: p is not changed).
func (r *Resolver) Resolve(p *policy.Policy) *policy.Policy {
	if len(p.JWTProviders) == 0 {
		return p
	}
	cp := *p
	cp.JWTProviders = maps.Clone(p.JWTProviders)
	r.mu.Lock()
	defer r.mu.Unlock()
	for name, jp := range cp.JWTProviders {
		if s := r.sources[key(jp)]; s != nil {
			jp.JWKS = s.keys
		}
		cp.JWTProviders[name] = jp
	}
	return &cp
}

// Status is one key set's state, for status and tests.
type Status struct {
	Source string
	Keys   int       // bytes of the last good key set; 0: none
	ReadAt time.Time // when it was last read and good
	Error  string    // the last read's error, "" when it worked
}

// Statuses lists every key set the resolver reads.
func (r *Resolver) Statuses() []Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Status
	for k, s := range r.sources {
		out = append(out, Status{Source: k, Keys: len(s.keys), ReadAt: s.readAt, Error: s.err})
	}
	slices.SortFunc(out, func(a, b Status) int { return strings.Compare(a.Source, b.Source) })
	return out
}
