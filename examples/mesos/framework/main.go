package main

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

// appSpec is one service the framework runs. Its command runs under
// /bin/sh in the task's sandbox and sees HOST (the group's address), PORT
// and PORT_APP (where it must listen), and the variables of Env.
type appSpec struct {
	Service   string            `json:"service"`
	Namespace string            `json:"namespace,omitempty"`
	Instances int               `json:"instances"`
	Command   string            `json:"command"`
	Env       map[string]string `json:"env,omitempty"`
	CPUs      float64           `json:"cpus,omitempty"`
	Mem       float64           `json:"mem,omitempty"`
	// HealthCheck, if set, is the app task's Mesos health_check: an HTTP
	// GET of Path on the app's port. Mesos (its default executor) runs it;
	// Weft sends the task no traffic before a status says healthy.
	HealthCheck *healthSpec `json:"health_check,omitempty"`
	// ProxyMode "node" runs the instances without a sidecar: the node
	// proxy of their agent serves them (--node-proxy). "sidecar" (or
	// empty) gives each its own.
	ProxyMode string `json:"proxy_mode,omitempty"`
	// MaxPerAgent, when positive, caps the app's instances on one agent
	// (as Marathon's MAX_PER constraint on the agent does).
	MaxPerAgent int `json:"max_per_agent,omitempty"`
}

// nodeMode reports whether the app's instances are served by their
// agent's node proxy.
func (a *appSpec) nodeMode() bool { return a.ProxyMode == "node" }

// healthSpec is an app's HTTP health check.
type healthSpec struct {
	Path string `json:"path"`
}

func main() {
	log.SetFlags(log.LstdFlags | log.Lmicroseconds)
	log.SetPrefix("weft-mesos-framework: ")
	var cfg config
	var apps string
	flag.StringVar(&cfg.masters, "master", "http://127.0.0.1:5050", "Mesos master URLs, comma-separated (the leader is found by redirect)")
	flag.StringVar(&cfg.name, "name", "weft-example", "framework name")
	flag.StringVar(&cfg.user, "user", "", "user the tasks run as (default: the current user)")
	flag.StringVar(&cfg.adminURL, "controller-admin", "https://127.0.0.1:7401", "the Weft controller's admin API (HTTPS, verified with --trust-bundle)")
	flag.StringVar(&cfg.adminTokenFile, "admin-token-file", ".weft/admin.token", "the controller's DATA_DIR/admin.token")
	flag.StringVar(&cfg.controller, "controller", "127.0.0.1:7400", "the controllers' sidecar API, as sidecars reach it: host:port, or a comma-separated list of every replica")
	flag.StringVar(&cfg.trustBundle, "trust-bundle", ".weft/ca/ca.crt", "the controller's CA root (DATA_DIR/ca/ca.crt), as sidecars read it; it also verifies the admin API")
	flag.StringVar(&cfg.proxy, "proxy", "weft-proxy", "the weft-proxy binary, as agents run it")
	flag.StringVar(&cfg.mesosUser, "mesos-user", "", "user for the master's HTTP Basic auth, if it requires it")
	flag.StringVar(&cfg.mesosPasswordFile, "mesos-password-file", "", "file holding the password for --mesos-user")
	flag.StringVar(&apps, "apps", "apps.json", "JSON file: a list of {service, namespace, instances, command, env, cpus, mem, health_check: {path}, proxy_mode, max_per_agent}")
	flag.BoolVar(&cfg.nodeProxy, "node-proxy", false, "launch one weft-proxy node proxy per agent, serving the agent's instances of apps with proxy_mode \"node\" (docs/deployment-models.md)")
	flag.Parse()

	if err := cfg.load(apps); err != nil {
		log.Fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := newScheduler(cfg).run(ctx); err != nil {
		log.Fatal(err)
	}
}

// config is everything the scheduler needs.
type config struct {
	masters, name, user                  string
	adminURL, adminTokenFile, adminToken string
	controller, trustBundle, proxy       string
	adminCAs                             *x509.CertPool // verify the admin API
	apps                                 []appSpec
	mesosUser, mesosPasswordFile         string
	mesosPassword                        string
	nodeProxy                            bool // one node-proxy task per agent
}

func (c *config) load(appsFile string) error {
	b, err := os.ReadFile(appsFile)
	if err != nil {
		return fmt.Errorf("reading apps file: %w", err)
	}
	if err := json.Unmarshal(b, &c.apps); err != nil {
		return fmt.Errorf("decoding apps file %s: %w (want a JSON list of {service, instances, command})", appsFile, err)
	}
	for i, a := range c.apps {
		if a.Service == "" || a.Command == "" || a.Instances < 0 {
			return fmt.Errorf("apps file %s: entry %d needs a service, a command and instances >= 0", appsFile, i)
		}
		switch a.ProxyMode {
		case "", "sidecar", "node":
		default:
			return fmt.Errorf("apps file %s: entry %d (%s): proxy_mode %q: want \"sidecar\" (the default) or \"node\"", appsFile, i, a.Service, a.ProxyMode)
		}
		if a.nodeMode() && !c.nodeProxy {
			return fmt.Errorf("apps file %s: entry %d (%s) has proxy_mode \"node\": start the framework with --node-proxy, so that a node proxy on each agent serves it", appsFile, i, a.Service)
		}
		if h := a.HealthCheck; h != nil && !strings.HasPrefix(h.Path, "/") {
			return fmt.Errorf("apps file %s: entry %d (%s): health_check.path %q must start with /, such as /healthz", appsFile, i, a.Service, h.Path)
		}
	}
	if c.adminURL != "" {
		u, err := url.Parse(c.adminURL)
		if err != nil || u.Scheme != "https" || u.Host == "" {
			return fmt.Errorf("--controller-admin %q: want https://HOST:PORT; the admin API is served over TLS only, and the token must not cross the network in clear", c.adminURL)
		}
		pem, err := os.ReadFile(c.trustBundle)
		if err != nil {
			return fmt.Errorf("reading the trust bundle that verifies the admin API: %w (pass --trust-bundle DATA_DIR/ca/ca.crt)", err)
		}
		c.adminCAs = x509.NewCertPool()
		if !c.adminCAs.AppendCertsFromPEM(pem) {
			return fmt.Errorf("--trust-bundle %s holds no PEM certificate; pass the controller's DATA_DIR/ca/ca.crt", c.trustBundle)
		}
	}
	tok, err := os.ReadFile(c.adminTokenFile)
	if err != nil {
		return fmt.Errorf("reading the controller's admin token: %w (pass --admin-token-file DATA_DIR/admin.token)", err)
	}
	c.adminToken = strings.TrimSpace(string(tok))
	if c.mesosPasswordFile != "" {
		if c.mesosUser == "" {
			return fmt.Errorf("--mesos-password-file needs --mesos-user")
		}
		pw, err := os.ReadFile(c.mesosPasswordFile)
		if err != nil {
			return fmt.Errorf("reading the Mesos password: %w", err)
		}
		c.mesosPassword = strings.TrimRight(string(pw), "\r\n")
	}
	if c.user == "" {
		c.user = os.Getenv("USER")
		if c.user == "" {
			c.user = "root"
		}
	}
	return nil
}
