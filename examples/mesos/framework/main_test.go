package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The example's files parse, and say what the adapter needs.
func TestExampleFiles(t *testing.T) {
	tok := filepath.Join(t.TempDir(), "admin.token")
	if err := os.WriteFile(tok, []byte("secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := config{adminTokenFile: tok}
	if err := cfg.load(filepath.Join("..", "apps.json")); err != nil {
		t.Fatal(err)
	}
	if cfg.adminToken != "secret" || len(cfg.apps) != 2 || cfg.apps[0].Service != "frontend" || cfg.apps[1].Instances != 2 {
		t.Fatalf("apps.json: %+v", cfg)
	}

	b, err := os.ReadFile(filepath.Join("..", "marathon-pod.json"))
	if err != nil {
		t.Fatal(err)
	}
	var pod struct {
		Containers []struct {
			Name      string            `json:"name"`
			Labels    map[string]string `json:"labels"`
			Endpoints []struct {
				Name string `json:"name"`
			} `json:"endpoints"`
			Exec struct {
				Command struct {
					Shell string `json:"shell"`
				} `json:"command"`
			} `json:"exec"`
		} `json:"containers"`
	}
	if err := json.Unmarshal(b, &pod); err != nil {
		t.Fatalf("marathon-pod.json: %v", err)
	}
	if len(pod.Containers) != 2 {
		t.Fatalf("marathon-pod.json: %d containers, want app and weft-proxy", len(pod.Containers))
	}
	app, proxy := pod.Containers[0], pod.Containers[1]
	var names []string
	for _, e := range app.Endpoints {
		names = append(names, e.Name)
	}
	if app.Labels["weft.service"] != "api" || strings.Join(names, ",") != "app,mesh" {
		t.Errorf("the app container needs the weft.service label and endpoints app and mesh: %+v", app)
	}
	if !strings.Contains(proxy.Exec.Command.Shell, "weft-proxy --instance") || !strings.Contains(proxy.Exec.Command.Shell, "/v1/join-tokens") {
		t.Errorf("the sidecar container must fetch a join token and run weft-proxy: %q", proxy.Exec.Command.Shell)
	}
}

func TestLoadRejectsBadApps(t *testing.T) {
	dir := t.TempDir()
	tok := filepath.Join(dir, "admin.token")
	os.WriteFile(tok, []byte("x"), 0o600)
	for name, body := range map[string]string{
		"not json":                          `{`,
		"no command":                        `[{"service":"api","instances":1}]`,
		"no service":                        `[{"command":"x","instances":1}]`,
		"health check path without a slash": `[{"service":"api","command":"x","instances":1,"health_check":{"path":"healthz"}}]`,
	} {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(dir, "apps.json")
			os.WriteFile(p, []byte(body), 0o644)
			cfg := config{adminTokenFile: tok}
			if err := cfg.load(p); err == nil {
				t.Fatal("loaded a bad apps file")
			}
		})
	}
	cfg := config{adminTokenFile: filepath.Join(dir, "missing")}
	os.WriteFile(filepath.Join(dir, "ok.json"), []byte(`[]`), 0o644)
	if err := cfg.load(filepath.Join(dir, "ok.json")); err == nil || !strings.Contains(err.Error(), "admin-token-file") {
		t.Fatalf("a missing admin token: %v", err)
	}
}

// The admin API is HTTPS: a plain http:// --controller-admin is refused
// before the token is read or sent.
func TestLoadRefusesPlainHTTPAdmin(t *testing.T) {
	dir := t.TempDir()
	tok := filepath.Join(dir, "admin.token")
	os.WriteFile(tok, []byte("x"), 0o600)
	for _, u := range []string{"http://127.0.0.1:7401", "HTTP://127.0.0.1:7401", "127.0.0.1:7401"} {
		cfg := config{adminTokenFile: tok, adminURL: u, trustBundle: filepath.Join(dir, "none.crt")}
		if err := cfg.load(filepath.Join("..", "apps.json")); err == nil || !strings.Contains(err.Error(), "https://") {
			t.Errorf("--controller-admin %s: %v, want a refusal that asks for https://", u, err)
		}
	}
}
