package controller

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/weftmesh/weft/core/policy"
)

// PolicyLoader loads the policy directory. It returns the policy, the
// source of every file by base name (for the admin API's GET /v1/policy),
// or an error that says what is wrong and what to do; it reports the
// diagnostics itself. cmd/weft supplies it (core does not read HCL).
type PolicyLoader func() (*policy.Policy, map[string]string, error)

// WatchOptions configure a PolicyWatcher.
type WatchOptions struct {
	// Dir is the policy directory: its *.hcl files are hashed every
	// Every, and Load runs when the hash changes.
	Dir   string
	Every time.Duration
	// MaxFileBytes bounds what is hashed of each file: a larger one is
	// refused by the loader, and costs no more than this here.
	MaxFileBytes int64
	Load         PolicyLoader
	// Summarize, when set, describes a policy for the log.
	Summarize func(*policy.Policy) string
	Logger    *slog.Logger
}

// PolicyWatcher watches the policy directory and sends each new good
// policy on. A policy with errors is reported (Error, and the log) and the
// last good one stays in force, with its sources (Sources).
type PolicyWatcher struct {
	o WatchOptions

	last string // the hash of the files the policy in force came from, or after

	mu      sync.Mutex
	sources map[string]string // of the policy in force
	errText string            // of the last change rejected, "" once one is taken
}

// NewPolicyWatcher returns a watcher of o.Dir whose policy in force, just
// loaded, has sources. Changes are looked for from now on.
func NewPolicyWatcher(o WatchOptions, sources map[string]string) *PolicyWatcher {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Every <= 0 {
		o.Every = time.Second
	}
	if o.Summarize == nil {
		o.Summarize = func(*policy.Policy) string { return "" }
	}
	return &PolicyWatcher{o: o, sources: sources, last: hashDir(o.Dir, o.MaxFileBytes)}
}

// Sources returns the source of every file of the policy in force, by base
// name.
func (w *PolicyWatcher) Sources() map[string]string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return maps.Clone(w.sources)
}

// Error returns why the last change was rejected, "" when the last change
// was taken (or there was none).
func (w *PolicyWatcher) Error() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.errText
}

// Run polls the directory until ctx is done and sends each new good policy
// on out. Run it once per watcher.
func (w *PolicyWatcher) Run(ctx context.Context, out chan<- *policy.Policy) {
	t := time.NewTicker(w.o.Every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		h := hashDir(w.o.Dir, w.o.MaxFileBytes)
		if h == w.last {
			continue
		}
		w.last = h
		pol, sources, err := w.o.Load()
		if err == nil && pol == nil {
			err = fmt.Errorf("loading policy from %s: the loader returned no policy", w.o.Dir)
		}
		if err != nil {
			w.mu.Lock()
			w.errText = err.Error()
			w.mu.Unlock()
			w.o.Logger.Error("policy change rejected; the last good policy stays in force", "dir", w.o.Dir)
			continue
		}
		w.mu.Lock()
		w.errText, w.sources = "", sources
		w.mu.Unlock()
		w.o.Logger.Info("policy reloaded", "dir", w.o.Dir, "summary", w.o.Summarize(pol))
		select {
		case out <- pol:
		case <-ctx.Done():
			return
		}
	}
}

// hashDir hashes the names and contents of dir's *.hcl files, each read
// up to maxBytes+1.
func hashDir(dir string, maxBytes int64) string {
	h := sha256.New()
	names, _ := filepath.Glob(filepath.Join(dir, "*.hcl"))
	sort.Strings(names)
	for _, n := range names {
		// Streamed, never read whole: a huge file is refused by the
		// loader, and must not cost memory here either.
		f, err := os.Open(n)
		if err != nil {
			continue
		}
		fmt.Fprintf(h, "%s\x00", n)
		size, _ := io.Copy(h, io.LimitReader(f, maxBytes+1))
		f.Close()
		fmt.Fprintf(h, "\x00%d\x00", size)
	}
	return hex.EncodeToString(h.Sum(nil))
}
