package policyhcl

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/core/policy"
)

// TestHealthCheckDecode: each kind of health_check becomes the policy's
// HealthCheck with its defaults filled in; errors name what is wrong.
// testdata/invalid/health_check.hcl holds the errors with their lines.
func TestHealthCheckDecode(t *testing.T) {
	for _, tc := range []struct {
		name  string
		block string
		want  *policy.HealthCheck
		err   string // a diagnostic's summary; "" for none
	}{
		{name: "no block", block: ``},
		{
			name:  "http with every field",
			block: `health_check { http = "/healthz?full=1"  expect_status = 200  interval = "2s"  timeout = "1s"  unhealthy_threshold = 3  healthy_threshold = 2 }`,
			want:  &policy.HealthCheck{Kind: policy.HealthHTTP, HTTPPath: "/healthz?full=1", ExpectStatus: 200, Interval: 2 * time.Second, Timeout: time.Second, UnhealthyThreshold: 3, HealthyThreshold: 2},
		},
		{
			name:  "http defaults",
			block: `health_check { http = "/" }`,
			want:  &policy.HealthCheck{Kind: policy.HealthHTTP, HTTPPath: "/", Interval: DefaultHealthInterval, Timeout: DefaultHealthTimeout, UnhealthyThreshold: 2, HealthyThreshold: 1},
		},
		{
			name:  "a short interval bounds the default timeout",
			block: `health_check { tcp = true  interval = "500ms" }`,
			want:  &policy.HealthCheck{Kind: policy.HealthTCP, Interval: 500 * time.Millisecond, Timeout: 500 * time.Millisecond, UnhealthyThreshold: 2, HealthyThreshold: 1},
		},
		{
			name:  "grpc, whole server",
			block: `health_check { grpc = true }`,
			want:  &policy.HealthCheck{Kind: policy.HealthGRPC, Interval: DefaultHealthInterval, Timeout: DefaultHealthTimeout, UnhealthyThreshold: 2, HealthyThreshold: 1},
		},
		{
			name:  "grpc, one service",
			block: `health_check { grpc = "shop.v1.Cart" }`,
			want:  &policy.HealthCheck{Kind: policy.HealthGRPC, GRPCService: "shop.v1.Cart", Interval: DefaultHealthInterval, Timeout: DefaultHealthTimeout, UnhealthyThreshold: 2, HealthyThreshold: 1},
		},
		{name: "bounds: interval at the minimum", block: `health_check { tcp = true  interval = "100ms"  timeout = "10ms" }`,
			want: &policy.HealthCheck{Kind: policy.HealthTCP, Interval: 100 * time.Millisecond, Timeout: 10 * time.Millisecond, UnhealthyThreshold: 2, HealthyThreshold: 1}},
		{name: "interval below the minimum", block: `health_check { tcp = true  interval = "99ms" }`, err: "Invalid health check interval"},
		{name: "interval above the maximum", block: `health_check { tcp = true  interval = "11m" }`, err: "Invalid health check interval"},
		{name: "negative interval", block: `health_check { tcp = true  interval = "-1s" }`, err: "Invalid duration"},
		{name: "timeout below the minimum", block: `health_check { tcp = true  timeout = "9ms" }`, err: "Invalid health check timeout"},
		{name: "timeout above the interval", block: `health_check { tcp = true  interval = "1s"  timeout = "1001ms" }`, err: "Health check timeout above its interval"},
		{name: "timeout above the default interval", block: `health_check { tcp = true  timeout = "11s" }`, err: "Health check timeout above its interval"},
		{name: "threshold zero", block: `health_check { tcp = true  unhealthy_threshold = 0 }`, err: "Invalid threshold"},
		{name: "threshold huge", block: `health_check { tcp = true  healthy_threshold = 1e99999 }`, err: "Invalid threshold"},
		{name: "threshold fractional", block: `health_check { tcp = true  healthy_threshold = 1.5 }`, err: "Invalid threshold"},
		{name: "status 99", block: `health_check { http = "/h"  expect_status = 99 }`, err: "Invalid status"},
		{name: "status 600", block: `health_check { http = "/h"  expect_status = 600 }`, err: "Invalid status"},
		{name: "status on a tcp check", block: `health_check { tcp = true  expect_status = 200 }`, err: "Status without an HTTP check"},
		{name: "no kind", block: `health_check { interval = "1s" }`, err: "Health check without a kind"},
		{name: "two kinds", block: `health_check { tcp = true  grpc = true }`, err: "Conflicting health check kinds"},
		{name: "relative path", block: `health_check { http = "healthz" }`, err: "Invalid health check path"},
		{name: "empty path", block: `health_check { http = "" }`, err: "Invalid health check path"},
		{name: "path with a newline", block: `health_check { http = "/h\nHost: x" }`, err: "Invalid health check path"},
		{name: "path with a NUL", block: `health_check { http = "/h\u0000" }`, err: "Invalid health check path"},
		{name: "path with a fragment", block: `health_check { http = "/h#x" }`, err: "Invalid health check path"},
		{name: "path not ASCII", block: `health_check { http = "/gesundheit-ä" }`, err: "Invalid health check path"},
		{name: "path too long", block: `health_check { http = "/` + strings.Repeat("a", maxHealthPathLen) + `" }`, err: "Invalid health check path"},
		{name: "null path", block: `health_check { http = null }`, err: "Missing required argument"},
		{name: "path not a string", block: `health_check { http = ["/h"] }`, err: "Incorrect attribute value type"},
		{name: "tcp false", block: `health_check { tcp = false }`, err: "TCP check turned off"},
		{name: "tcp a string", block: `health_check { tcp = "yes" }`, err: "Incorrect attribute value type"},
		{name: "grpc false", block: `health_check { grpc = false }`, err: "gRPC check turned off"},
		{name: "grpc empty name", block: `health_check { grpc = "" }`, err: "Invalid gRPC service name"},
		{name: "grpc name with a slash", block: `health_check { grpc = "a/b" }`, err: "Invalid gRPC service name"},
		{name: "grpc name too long", block: `health_check { grpc = "` + strings.Repeat("a", maxGRPCServiceLen+1) + `" }`, err: "Invalid gRPC service name"},
		{name: "grpc a number", block: `health_check { grpc = 1 }`, err: "Incorrect attribute value type"},
		{name: "grpc a variable", block: `health_check { grpc = var.x }`, err: "Variables not allowed"},
		{name: "unknown attribute", block: `health_check { tcp = true  path = "/x" }`, err: "Unsupported argument"},
		{name: "two blocks", block: "health_check { tcp = true }\nhealth_check { tcp = true }", err: "Duplicate health_check block"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// One attribute a line: the table writes them two spaces apart.
			block := strings.NewReplacer("{ ", "{\n", " }", "\n}", "  ", "\n").Replace(tc.block)
			src := "service \"api\" {\n  binding \"local\" { name = \"api\" }\n" + block + "\n}\n"
			p, diags, _ := LoadSources(map[string][]byte{"p.hcl": []byte(src)})
			if tc.err != "" {
				found := false
				for _, d := range diags {
					if d.Summary == tc.err {
						found = true
						if d.Subject == nil || d.Subject.Start.Line < 3 {
							t.Errorf("diagnostic %q points at %v, want the health_check block's lines", d.Summary, d.Subject)
						}
					}
				}
				if !found {
					t.Fatalf("diagnostics %v, want %q", diags, tc.err)
				}
				if p != nil {
					t.Error("a policy despite the error")
				}
				return
			}
			if diags.HasErrors() {
				t.Fatalf("diagnostics: %v", diags)
			}
			if got := p.Services["api"].HealthCheck; !reflect.DeepEqual(got, tc.want) {
				t.Errorf("health check %+v, want %+v", got, tc.want)
			}
		})
	}
}
