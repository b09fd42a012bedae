package main

import (
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/core/api"
	"github.com/weftmesh/weft/core/compile"
	"github.com/weftmesh/weft/core/meshserver"
	"github.com/weftmesh/weft/core/model"
)

// Each threshold of the installation checks, on its edge.
func TestMeshFindings(t *testing.T) {
	now := time.Now()
	healthy := func() meshserver.StreamStatus {
		return meshserver.StreamStatus{Instance: "api-0", Version: 5, AckedVersion: 5, ProxyVersion: "1.2.0",
			CertExpires: now.Add(12 * time.Hour).Format(time.RFC3339)}
	}
	for _, tc := range []struct {
		name  string
		mod   func(*meshserver.StreamStatus)
		check string
		level string
	}{
		{"healthy version", nil, "version", levelOK},
		{"other version", func(s *meshserver.StreamStatus) { s.ProxyVersion = "1.1.9" }, "version", levelFail},
		{"no version said", func(s *meshserver.StreamStatus) { s.ProxyVersion = "" }, "version", levelWarn},
		{"certificate with hours left", nil, "certificate", levelOK},
		{"certificate with 59m left", func(s *meshserver.StreamStatus) { s.CertExpires = now.Add(59 * time.Minute).Format(time.RFC3339) }, "certificate", levelWarn},
		{"certificate expired", func(s *meshserver.StreamStatus) { s.CertExpires = now.Add(-time.Second).Format(time.RFC3339) }, "certificate", levelFail},
		{"certificate from the leaf the controller issued", func(s *meshserver.StreamStatus) {
			s.CertExpires, s.LeafExpires = "", now.Add(-time.Minute).Format(time.RFC3339)
		}, "certificate", levelFail},
		{"config applied", nil, "config", levelOK},
		{"config behind", func(s *meshserver.StreamStatus) { s.AckedVersion = 4 }, "config", levelWarn},
		{"config NACKed", func(s *meshserver.StreamStatus) { s.RejectedVersion, s.RejectError = 6, "bind: address already in use" }, "config", levelFail},
		{"clock 1s", func(s *meshserver.StreamStatus) { s.ClockSkewMs = 1000 }, "clock", levelOK},
		{"clock 1.001s ahead", func(s *meshserver.StreamStatus) { s.ClockSkewMs = 1001 }, "clock", levelWarn},
		{"clock 5s behind", func(s *meshserver.StreamStatus) { s.ClockSkewMs = -5000 }, "clock", levelWarn},
		{"clock 5.001s behind", func(s *meshserver.StreamStatus) { s.ClockSkewMs = -5001 }, "clock", levelFail},
		{"clock 30s ahead", func(s *meshserver.StreamStatus) { s.ClockSkewMs = 30000 }, "clock", levelFail},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := healthy()
			if tc.mod != nil {
				tc.mod(&s)
			}
			rep := api.StatusReport{ControllerVersion: "1.2.0", Time: now, Sidecars: []meshserver.StreamStatus{s},
				Instances: []api.InstanceReport{{ID: "api-0"}}}
			var got *CheckFinding
			fs := meshFindings(rep, now)
			for i := range fs {
				if fs[i].Subject == "sidecar api-0" && fs[i].Check == tc.check {
					got = &fs[i]
				}
			}
			if got == nil || got.Level != tc.level {
				t.Fatalf("%s: %+v, want %s", tc.check, got, tc.level)
			}
			if got.Level != levelOK && got.Fix == "" {
				t.Errorf("a %s finding says nothing to do: %+v", got.Level, got)
			}
		})
	}
	t.Run("adapters and instances", func(t *testing.T) {
		rep := api.StatusReport{ControllerVersion: "1", Instances: []api.InstanceReport{{ID: "lonely-0"}},
			Adapters: []api.AdapterReport{{Name: "down"}, {Name: "blind", Running: true, SourceFailing: true, LastError: "401"}, {Name: "flaky", Running: true, Restarts: 2}, {Name: "fine", Running: true}}}
		want := map[string]string{"adapter down": levelFail, "adapter blind": levelFail, "adapter flaky": levelWarn, "adapter fine": levelOK, "instance lonely-0": levelWarn}
		for _, f := range meshFindings(rep, now) {
			if w, ok := want[f.Subject]; !ok || f.Level != w {
				t.Errorf("%s: %s, want %q", f.Subject, f.Level, w)
			}
			delete(want, f.Subject)
		}
		if len(want) > 0 {
			t.Errorf("no finding for %v", want)
		}
	})
	t.Run("proxy modes", func(t *testing.T) {
		rep := api.StatusReport{ControllerVersion: "1",
			Sidecars: []meshserver.StreamStatus{{Instance: "pay-0"}, {Instance: "api-0"}, {Instance: "web-0"}},
			Instances: []api.InstanceReport{
				{ID: "pay-0", ProxyMode: "node"},          // policy: instance
				{ID: "api-0", ProxyMode: "node"},          // policy: node
				{ID: "web-0"},                             // a sidecar, policy: node
				{ID: "batch-0", ProxyMode: "application"}, // no stream
			},
			Dropped: []model.Dropped{
				{Adapter: "nomad", Instance: "pay-0", Reason: compile.ReasonProxyModeRefused, Detail: "policy says instance"},
				{Adapter: "local", Instance: "web-0", Reason: compile.ReasonProxyModeMismatch, Detail: "policy says node"},
			}}
		want := map[string]string{"instance pay-0 proxy-mode": levelFail, "instance api-0 proxy-mode": levelOK, "instance web-0 proxy-mode": levelWarn,
			"instance batch-0 proxy-mode": levelOK, "instance batch-0 sidecar": levelWarn}
		for _, f := range meshFindings(rep, now) {
			key := f.Subject + " " + f.Check
			w, ok := want[key]
			if !ok {
				continue
			}
			if f.Level != w || (f.Level != levelOK && f.Fix == "") {
				t.Errorf("%s: %s (%s; fix %q), want %s with a fix", key, f.Level, f.Detail, f.Fix, w)
			}
			if key == "instance batch-0 sidecar" && !strings.Contains(f.Detail, "its application proxy has no stream") {
				t.Errorf("%s: %q does not name the shared proxy", key, f.Detail)
			}
			delete(want, key)
		}
		if len(want) > 0 {
			t.Errorf("no finding for %v", want)
		}
	})
	t.Run("jwt key sets", func(t *testing.T) {
		read := now.Add(-time.Hour)
		rep := api.StatusReport{ControllerVersion: "1", JWKS: []api.JWKSReport{
			{Source: "url:https://idp.example/never", Error: "connection refused"},
			{Source: "url:https://idp.example/stale", KeyBytes: 900, ReadAt: &read, Error: "HTTP 500"},
			{Source: "file:/etc/weft/keys.json", KeyBytes: 900, ReadAt: &read},
		}}
		want := map[string]string{"jwt keys url:https://idp.example/never": levelFail, "jwt keys url:https://idp.example/stale": levelWarn, "jwt keys file:/etc/weft/keys.json": levelOK}
		for _, f := range meshFindings(rep, now) {
			if w, ok := want[f.Subject]; ok {
				if f.Level != w || (f.Level != levelOK && f.Fix == "") {
					t.Errorf("%s: %s (fix %q), want %s with a fix", f.Subject, f.Level, f.Fix, w)
				}
				delete(want, f.Subject)
			}
		}
		if len(want) > 0 {
			t.Errorf("no finding for %v", want)
		}
	})
}
