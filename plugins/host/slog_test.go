package host_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/weftmesh/weft/plugins/host"
)

// TestHCLogger: go-plugin's hclog lines reach the controller's slog
// logger at the mapped level, with the logger's name and arguments.
func TestHCLogger(t *testing.T) {
	tests := []struct {
		level     hclog.Level
		wantLevel string // "" means dropped by the slog handler's level
	}{
		{hclog.Trace, ""},
		{hclog.Debug, "DEBUG"},
		{hclog.Info, "INFO"},
		{hclog.Warn, "WARN"},
		{hclog.Error, "ERROR"},
	}
	for _, tt := range tests {
		t.Run(tt.level.String(), func(t *testing.T) {
			var buf bytes.Buffer
			l := host.HCLogger(slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
			l.Named("plugin").With("pid", 7).Log(tt.level, "hello", "k", "v")
			if tt.wantLevel == "" {
				if buf.Len() != 0 {
					t.Errorf("logged %q, want nothing below the handler's level", buf.String())
				}
				return
			}
			var rec map[string]any
			if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
				t.Fatalf("decoding %q: %v", buf.String(), err)
			}
			want := map[string]any{"level": tt.wantLevel, "msg": "hello", "logger": "plugin", "pid": float64(7), "k": "v"}
			for k, v := range want {
				if rec[k] != v {
					t.Errorf("%s = %v, want %v (record %v)", k, rec[k], v, rec)
				}
			}
		})
	}
}

// TestHCLoggerLevelAndOddArgs: SetLevel filters like hclog's own, and a
// lone argument is kept under hclog's missing-key name, not lost.
func TestHCLoggerLevelAndOddArgs(t *testing.T) {
	var buf bytes.Buffer
	l := host.HCLogger(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	l.SetLevel(hclog.Warn)
	l.Info("dropped")
	if l.IsInfo() || !l.IsWarn() {
		t.Errorf("IsInfo %v IsWarn %v at level Warn, want false true", l.IsInfo(), l.IsWarn())
	}
	l.Warn("kept", "lonely")
	out := buf.String()
	if strings.Contains(out, "dropped") || !strings.Contains(out, "kept") || !strings.Contains(out, hclog.MissingKey+"=lonely") {
		t.Errorf("log %q: want only the warning, with the lone argument under %s", out, hclog.MissingKey)
	}
}
