package policyhcl

import (
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"

	"github.com/weftmesh/weft/core/policy"
)

func TestOutlierSuccessRateDecode(t *testing.T) {
	for _, tc := range []struct {
		name    string
		block   string
		want    *policy.OutlierSuccessRate
		gateway int // consecutive_gateway_errors after defaults
	}{
		{"defaults", `success_rate {}`, &policy.OutlierSuccessRate{MinimumHosts: 5, RequestVolume: 100, StdevFactorMilli: 1900}, 0},
		{"given", `success_rate {
		  minimum_hosts = 3
		  request_volume = 20
		  stdev_factor = 1.9
		}`, &policy.OutlierSuccessRate{MinimumHosts: 3, RequestVolume: 20, StdevFactorMilli: 1900}, 0},
		{"smallest factor", `success_rate { stdev_factor = 0.001 }`, &policy.OutlierSuccessRate{MinimumHosts: 5, RequestVolume: 100, StdevFactorMilli: 1}, 0},
		{"largest factor", `success_rate { stdev_factor = 10 }`, &policy.OutlierSuccessRate{MinimumHosts: 5, RequestVolume: 100, StdevFactorMilli: 10000}, 0},
		{"three decimals", `success_rate { stdev_factor = 1.234 }`, &policy.OutlierSuccessRate{MinimumHosts: 5, RequestVolume: 100, StdevFactorMilli: 1234}, 0},
		{"with a consecutive count", "consecutive_5xx = 3\nsuccess_rate {}", &policy.OutlierSuccessRate{MinimumHosts: 5, RequestVolume: 100, StdevFactorMilli: 1900}, 0},
		{"no success rate: the default check", ``, nil, 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := "service \"api\" {\n  binding \"local\" { name = \"api\" }\n  outlier_detection {\n" + tc.block + "\n  }\n}\n"
			p, diags, _ := LoadSources(map[string][]byte{"p.hcl": []byte(src)})
			if diags.HasErrors() {
				t.Fatalf("diagnostics: %v", diags)
			}
			od := p.Services["api"].OutlierDetection
			if (od.SuccessRate == nil) != (tc.want == nil) || (tc.want != nil && *od.SuccessRate != *tc.want) {
				t.Errorf("success rate %+v, want %+v", od.SuccessRate, tc.want)
			}
			if od.ConsecutiveGatewayErrors != tc.gateway {
				t.Errorf("consecutive_gateway_errors %d, want %d", od.ConsecutiveGatewayErrors, tc.gateway)
			}
		})
	}
}

// TestStdevFactorSpellings tries what a hostile or confused author might
// write for stdev_factor; each is refused with the range in the detail.
func TestStdevFactorSpellings(t *testing.T) {
	for _, v := range []string{"0", "-1.9", "1900", "10.001", "1.2345", "0.0001", "1e999", "-1e999", `"1.9"x`, `"fast"`, "true", "[1.9]", "null"} {
		t.Run(v, func(t *testing.T) {
			src := "service \"api\" {\n  binding \"local\" { name = \"api\" }\n  outlier_detection {\n    success_rate { stdev_factor = " + v + " }\n  }\n}\n"
			p, diags, _ := LoadSources(map[string][]byte{"p.hcl": []byte(src)})
			if v == "null" { // null is "not set": the default
				if diags.HasErrors() || p.Services["api"].OutlierDetection.SuccessRate.StdevFactorMilli != 1900 {
					t.Fatalf("null: %v", diags)
				}
				return
			}
			if !diags.HasErrors() {
				t.Fatalf("stdev_factor = %s accepted", v)
			}
			if p != nil {
				t.Error("a policy despite the error")
			}
			for _, d := range diags {
				if d.Subject == nil || d.Subject.Start.Line != 4 {
					t.Errorf("diagnostic %q not on line 4: %v", d.Summary, d.Subject)
				}
			}
			if v == "1900" && !strings.Contains(diags[0].Detail, "1900 is 1.9") {
				t.Errorf("detail for 1900 does not explain Envoy's thousandths: %s", diags[0].Detail)
			}
		})
	}
}

// TestSuccessRateFewHostsWarning: minimum_hosts = 3 with the usual 1.9
// can never eject (one outlier of three is at most 1.41 deviations
// below the mean): a warning says so and what to change; 1.4 passes.
func TestSuccessRateFewHostsWarning(t *testing.T) {
	for _, tc := range []struct {
		block string
		warn  string // "" none
	}{
		{"success_rate {\n minimum_hosts = 3\n stdev_factor = 1.9\n }", "raise minimum_hosts to 5"},
		{"success_rate {\n minimum_hosts = 2\n stdev_factor = 1\n }", "raise minimum_hosts to 3"},
		{"success_rate {\n minimum_hosts = 3\n stdev_factor = 1.4\n }", ""},
		{`success_rate {}`, ""}, // 5 hosts: up to 2 deviations
	} {
		t.Run(strings.ReplaceAll(tc.block, "\n", " "), func(t *testing.T) {
			src := "service \"api\" {\n  binding \"local\" { name = \"api\" }\n  outlier_detection {\n    " + tc.block + "\n  }\n}\n"
			p, diags, _ := LoadSources(map[string][]byte{"p.hcl": []byte(src)})
			if diags.HasErrors() || p == nil {
				t.Fatalf("diagnostics: %v", diags)
			}
			switch {
			case tc.warn == "" && len(diags) > 0:
				t.Errorf("unexpected diagnostics %v", diags)
			case tc.warn != "" && (len(diags) != 1 || diags[0].Severity != hcl.DiagWarning || !strings.Contains(diags[0].Detail, tc.warn) ||
				diags[0].Subject == nil || diags[0].Subject.Start.Line != 4):
				t.Errorf("diagnostics %v, want one warning on line 4 saying %q", diags, tc.warn)
			}
		})
	}
}
