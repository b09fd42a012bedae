package ca

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/weftmesh/weft/core/inputlimit"
)

// SpentStore remembers spent join tokens, by ID, until they expire. It is
// what makes a join token single-use. A record is an ID and an expiry and
// nothing else, so that controller replicas can share the store through a
// replicated log.
type SpentStore interface {
	// Spend marks id spent until exp. It reports false when id is spent
	// already; of any number of concurrent calls with one id, exactly one
	// reports true. It returns true only once the record is durable.
	Spend(id string, exp time.Time) (bool, error)
	// Spent reports whether id is spent. It lets a join that would fail
	// anyway be refused before any work is done; Spend decides.
	Spent(id string) bool
}

// ErrSpend is wrapped by the error of a join whose token could not be
// recorded as spent: the join failed, and the token was not spent.
var ErrSpend = errors.New("recording a spent join token")

// maxSpentIDLen bounds a token ID (a nonce: 24 hex digits from
// MintJoinToken).
const maxSpentIDLen = 64

func validSpentID(id string) bool {
	if id == "" || len(id) > maxSpentIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// memorySpent is a SpentStore in memory only, for tests and tools: a
// restart forgets what was spent.
type memorySpent struct {
	now   func() time.Time
	mu    sync.Mutex
	spent map[string]int64
}

// NewMemorySpentStore returns a SpentStore that keeps spent tokens in
// memory only. A controller must not use it: after a restart its tokens
// would be valid again until they expire.
func NewMemorySpentStore() SpentStore {
	return &memorySpent{now: time.Now, spent: map[string]int64{}}
}

func (m *memorySpent) Spend(id string, exp time.Time) (bool, error) {
	if !validSpentID(id) {
		return false, fmt.Errorf("%w: malformed token ID %.80q", ErrSpend, id)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now().Unix()
	for k, e := range m.spent {
		if e < now {
			delete(m.spent, k)
		}
	}
	if _, ok := m.spent[id]; ok {
		return false, nil
	}
	m.spent[id] = exp.Unix()
	return true, nil
}

func (m *memorySpent) Spent(id string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.spent[id]
	return ok && e >= m.now().Unix()
}

// The spent-token file: a header line, then one line per spent token, its
// expiry in Unix seconds and its ID:
//
//	weft spent join tokens v1
//	1767225600 3f2a9c0e1b7d5a4c8e6f0a1b
//
// Lines are appended and synced before a join gets its certificate. When
// the file is opened, and when expired lines outnumber live ones, it is
// rewritten with only the live lines (a new file, synced, renamed over the
// old one, and the directory synced).
const spentHeader = "weft spent join tokens v1\n"

// maxSpentFileBytes bounds the file: a line is under 90 bytes, so this is
// over half a million tokens spent within their lifetime (an hour at
// most), far more than any mesh starts sidecars.
const maxSpentFileBytes = 48 << 20

// SpentFile is the SpentStore of one controller: a file in its data
// directory.
type SpentFile struct {
	path string
	now  func() time.Time

	mu    sync.Mutex
	f     *os.File // open for appending
	spent map[string]int64
	lines int // token lines in the file, live or expired
	base  int // live tokens at the last rewrite
}

// OpenSpentFile loads the spent tokens recorded at path (none if there is
// no file yet), drops the expired ones, and opens the file for recording
// more. A file it cannot read back whole (not ours, corrupt, larger than
// any real one) is an error that names it: starting without it would make
// every token it records valid again until its expiry.
func OpenSpentFile(path string) (*SpentFile, error) {
	return openSpentFile(path, time.Now)
}

func openSpentFile(path string, now func() time.Time) (*SpentFile, error) {
	s := &SpentFile{path: path, now: now, spent: map[string]int64{}}
	b, err := inputlimit.ReadFile(path, maxSpentFileBytes)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return nil, s.refuse(err)
	default:
		if err := s.parse(b); err != nil {
			return nil, s.refuse(err)
		}
	}
	if err := s.rewrite(); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *SpentFile) refuse(err error) error {
	return fmt.Errorf("reading spent join tokens %s: %w. It records which join tokens were used; starting without it "+
		"would let them be used again. Restore it from a backup, or, once every join token minted before now has expired "+
		"(those of the admin API and of the local adapter live an hour at most), move it aside", s.path, err)
}

// parse reads the file's lines into s.spent, skipping expired ones. A last
// line without its newline is a write that a crash cut short: its join
// never got a certificate, so it is dropped.
func (s *SpentFile) parse(b []byte) error {
	rest, ok := bytes.CutPrefix(b, []byte(spentHeader))
	if !ok {
		if len(b) == 0 {
			return nil
		}
		return errors.New("it does not start with the line " + strconv.Quote(spentHeader[:len(spentHeader)-1]))
	}
	now := s.now().Unix()
	for line := 2; len(rest) > 0; line++ {
		nl := bytes.IndexByte(rest, '\n')
		if nl < 0 {
			break // the torn last write
		}
		l := rest[:nl]
		rest = rest[nl+1:]
		expText, id, ok := bytes.Cut(l, []byte(" "))
		exp, err := strconv.ParseInt(string(expText), 10, 64)
		if !ok || err != nil || !validSpentID(string(id)) {
			return fmt.Errorf("line %d is not \"<expiry> <token id>\"", line)
		}
		if exp >= now {
			s.spent[string(id)] = exp
		}
	}
	return nil
}

// rewrite replaces the file with the live records of s.spent, atomically,
// and reopens it for appending. Called with s.mu held (or before s is
// shared).
func (s *SpentFile) rewrite() error {
	now := s.now().Unix()
	var buf bytes.Buffer
	buf.WriteString(spentHeader)
	for id, exp := range s.spent {
		if exp < now {
			delete(s.spent, id)
			continue
		}
		fmt.Fprintf(&buf, "%d %s\n", exp, id)
	}
	tmp := s.path + ".tmp"
	if err := writeSynced(tmp, buf.Bytes()); err != nil {
		return fmt.Errorf("writing spent join tokens: %w", err)
	}
	if err := os.Rename(tmp, s.path); err != nil {
		return fmt.Errorf("writing spent join tokens: %w", err)
	}
	if err := syncDir(filepath.Dir(s.path)); err != nil {
		return fmt.Errorf("writing spent join tokens: %w", err)
	}
	f, err := os.OpenFile(s.path, os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("opening spent join tokens: %w", err)
	}
	if s.f != nil {
		s.f.Close()
	}
	s.f, s.lines, s.base = f, len(s.spent), len(s.spent)
	return nil
}

func writeSynced(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Spend records id as spent until exp, on disk, before it returns true.
func (s *SpentFile) Spend(id string, exp time.Time) (bool, error) {
	if !validSpentID(id) {
		return false, fmt.Errorf("%w: malformed token ID %.80q", ErrSpend, id)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return false, fmt.Errorf("%w: the spent-token file is closed", ErrSpend)
	}
	now := s.now().Unix()
	if e, ok := s.spent[id]; ok && e >= now {
		return false, nil
	}
	if _, err := fmt.Fprintf(s.f, "%d %s\n", exp.Unix(), id); err != nil {
		return false, fmt.Errorf("%w in %s: %v", ErrSpend, s.path, err)
	}
	if err := s.f.Sync(); err != nil {
		return false, fmt.Errorf("%w in %s: %v", ErrSpend, s.path, err)
	}
	s.spent[id] = exp.Unix()
	s.lines++
	if s.lines > 2*s.base+1024 {
		// Mostly expired lines: drop them. A failure here loses nothing
		// (the appended file is still whole); the next Spend tries again.
		_ = s.rewrite()
	}
	return true, nil
}

// Spent reports whether id is spent and not yet expired.
func (s *SpentFile) Spent(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.spent[id]
	return ok && e >= s.now().Unix()
}

// Close closes the file; Spend fails after it.
func (s *SpentFile) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return nil
	}
	err := s.f.Close()
	s.f = nil
	return err
}
