package ca

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func openSpent(t *testing.T, path string, c *clock) *SpentFile {
	t.Helper()
	s, err := openSpentFile(path, c.now)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func spend(t *testing.T, s SpentStore, id string, exp time.Time) bool {
	t.Helper()
	ok, err := s.Spend(id, exp)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

func TestSpentFileSpendOnceAcrossRestarts(t *testing.T) {
	c := &clock{t: time.Unix(1_800_000_000, 0)}
	path := filepath.Join(t.TempDir(), "spent-join-tokens")
	s := openSpent(t, path, c)
	exp := c.now().Add(10 * time.Minute)
	if !spend(t, s, "aaaa", exp) {
		t.Fatal("first spend refused")
	}
	if spend(t, s, "aaaa", exp) || !s.Spent("aaaa") {
		t.Fatal("second spend accepted")
	}
	if !spend(t, s, "bbbb", exp) {
		t.Fatal("another token refused")
	}
	s.Close()
	if _, err := s.Spend("cccc", exp); err == nil {
		t.Error("Spend after Close succeeded")
	}

	// A restart: both are still spent, until they expire.
	s = openSpent(t, path, c)
	for _, id := range []string{"aaaa", "bbbb"} {
		if !s.Spent(id) || spend(t, s, id, exp) {
			t.Errorf("%s valid again after a restart", id)
		}
	}
	c.add(10*time.Minute + time.Second)
	if s.Spent("aaaa") {
		t.Error("a token is still spent after its expiry")
	}
	s.Close()
	s = openSpent(t, path, c)
	if b, _ := os.ReadFile(path); string(b) != spentHeader {
		t.Errorf("expired tokens not pruned at start; the file is %q", b)
	}
}

// concurrently runs f(0), ..., f(n-1) on n goroutines released at once,
// and returns when all have returned.
func concurrently(n int, f func(i int)) {
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			f(i)
		}()
	}
	close(start)
	wg.Wait()
}

func TestSpentFileConcurrentSpend(t *testing.T) {
	c := &clock{t: time.Now()}
	s := openSpent(t, filepath.Join(t.TempDir(), "spent"), c)
	const n = 32
	results := make([]bool, n)
	concurrently(n, func(i int) {
		ok, err := s.Spend("token", c.now().Add(time.Minute))
		if err != nil {
			t.Error(err)
		}
		results[i] = ok
	})
	won := 0
	for _, ok := range results {
		if ok {
			won++
		}
	}
	if won != 1 {
		t.Fatalf("%d of %d concurrent spends of one token won, want 1", won, n)
	}
}

// The file stays the size of the live tokens: expired lines are dropped
// when they outnumber the live ones.
func TestSpentFilePrunes(t *testing.T) {
	c := &clock{t: time.Unix(1_800_000_000, 0)}
	path := filepath.Join(t.TempDir(), "spent")
	s := openSpent(t, path, c)
	for i := range 5000 {
		spend(t, s, fmt.Sprintf("t%d", i), c.now().Add(time.Second))
		c.add(time.Second) // each expires as the next is spent
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if lines := strings.Count(string(b), "\n"); lines > 1100 {
		t.Fatalf("the file has %d lines for at most 2 live tokens", lines)
	}
	if len(s.spent) > 1100 {
		t.Fatalf("%d tokens in memory for at most 2 live ones", len(s.spent))
	}
}

func TestSpentFileRefusesWhatItCannotRead(t *testing.T) {
	c := &clock{t: time.Unix(1_800_000_000, 0)}
	live := fmt.Sprint(c.now().Unix() + 60)
	tests := []struct {
		name, content, want string
	}{
		{"not ours", "hello\n", "does not start with"},
		{"a bad line", spentHeader + live + " aaaa\nnonsense\n", "line 3"},
		{"a bad expiry", spentHeader + "soon aaaa\n", "line 2"},
		{"a bad ID", spentHeader + live + " a/b\n", "line 2"},
		{"too large", spentHeader + strings.Repeat(live+" aaaa\n", maxSpentFileBytes/len(live+" aaaa\n")+1), "larger than the limit of 48 MiB"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "spent")
			if err := os.WriteFile(path, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := openSpentFile(path, c.now)
			if err == nil {
				t.Fatal("opened")
			}
			for _, w := range []string{path, tt.want, "would let them be used again"} {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if b, _ := os.ReadFile(path); string(b) != tt.content {
				t.Error("the refused file was changed")
			}
		})
	}
}

// A crash in the middle of an append leaves a last line without its
// newline: that join never got its certificate, so the line is dropped and
// the rest loads.
func TestSpentFileTornLastLine(t *testing.T) {
	c := &clock{t: time.Unix(1_800_000_000, 0)}
	path := filepath.Join(t.TempDir(), "spent")
	live := fmt.Sprint(c.now().Unix() + 60)
	if err := os.WriteFile(path, []byte(spentHeader+live+" aaaa\n"+live+" bb"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := openSpent(t, path, c)
	if !s.Spent("aaaa") || s.Spent("bb") || s.Spent("bbbb") {
		t.Fatalf("spent: aaaa %v bb %v bbbb %v; want only aaaa", s.Spent("aaaa"), s.Spent("bb"), s.Spent("bbbb"))
	}
	if !spend(t, s, "bbbb", c.now().Add(time.Minute)) {
		t.Fatal("bbbb refused")
	}
	s.Close()
	if s = openSpent(t, path, c); !s.Spent("bbbb") {
		t.Fatal("bbbb forgotten")
	}
}

func TestSpendRefusesMalformedIDs(t *testing.T) {
	c := &clock{t: time.Now()}
	for _, s := range []SpentStore{openSpent(t, filepath.Join(t.TempDir(), "spent"), c), NewMemorySpentStore()} {
		for _, id := range []string{"", "a b", "a\nb", strings.Repeat("a", maxSpentIDLen+1)} {
			if _, err := s.Spend(id, time.Now().Add(time.Minute)); !errors.Is(err, ErrSpend) {
				t.Errorf("%T.Spend(%q): %v, want ErrSpend", s, id, err)
			}
		}
	}
}

// Through the verifier: a restart on the same file keeps a spent token
// spent, and concurrent verifications of one token admit exactly one.
func TestJoinVerifierWithSpentFile(t *testing.T) {
	dir := t.TempDir()
	secret := []byte("0123456789abcdef0123456789abcdef")
	tok, err := MintJoinToken(DeriveJoinKey(secret, "local"), JoinClaims{Adapter: "local", Instance: "api-0", Service: "api"}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	s1, err := OpenSpentFile(filepath.Join(dir, "spent"))
	if err != nil {
		t.Fatal(err)
	}
	v := NewJoinVerifierWith(secret, s1)
	var mu sync.Mutex
	won := 0
	concurrently(16, func(int) {
		if _, err := v.Verify(tok); err == nil {
			mu.Lock()
			won++
			mu.Unlock()
		} else if !strings.Contains(err.Error(), "already used") {
			t.Error(err)
		}
	})
	if won != 1 {
		t.Fatalf("%d concurrent verifications of one token succeeded, want 1", won)
	}
	s1.Close()
	s2, err := OpenSpentFile(filepath.Join(dir, "spent"))
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if _, err := NewJoinVerifierWith(secret, s2).Verify(tok); err == nil || !strings.Contains(err.Error(), "already used") {
		t.Fatalf("the token after a restart: %v, want already used", err)
	}
}
