package nomad

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/nomad/api"

	"github.com/weftmesh/weft/plugins/sdk"
)

// Name is the adapter's name in snapshots, Info and a sidecar's
// --credential-adapter.
const Name = "nomad"

// ConfigureRequest options.
const (
	// OptionTokenFile names a file holding the Nomad ACL token the adapter
	// uses. Without it the adapter uses $NOMAD_TOKEN, then no token.
	OptionTokenFile = "token_file"
	// OptionNamespace limits the adapter to one Nomad namespace; the
	// default, "*", watches all.
	OptionNamespace = "namespace"
	// OptionEventStream = "false" makes the adapter use blocking queries
	// only, for clusters whose event broker is disabled.
	OptionEventStream = "event_stream"
	// OptionResync sets how often the adapter rebuilds its snapshot even
	// without events (a Go duration, default 30s).
	OptionResync = "resync"
	// OptionAdvertise = "alloc" makes callers dial a bridge-mode
	// allocation at its own address (Nomad's address_mode = "alloc"), for
	// clusters whose allocation addresses route between nodes, or a single
	// node whose address callers inside a namespace cannot reach (a dev
	// agent on loopback). The default, "host", is the node's address and
	// the mesh port's host port.
	OptionAdvertise = "advertise"
	// OptionCheckPoll sets how often the adapter re-reads the results of
	// Nomad service checks (a Go duration, default 1s): Nomad sends no
	// event when a check's result changes.
	OptionCheckPoll = "check_poll"
)

// options is the schema of the adapter's options (Info), which the host
// checks the operator's --adapter-option nomad.NAME=VALUE against.
var options = []sdk.OptionSpec{
	{Name: OptionTokenFile, Type: sdk.OptionString,
		Description: "a file holding the Nomad ACL token (secret ID) the adapter uses, with read-job on the namespaces to watch; without it $NOMAD_TOKEN, then none"},
	{Name: OptionNamespace, Type: sdk.OptionString, Default: "*",
		Description: "the Nomad namespace to watch; * watches all"},
	{Name: OptionEventStream, Type: sdk.OptionBool, Default: "true",
		Description: "follow Nomad's event stream; false uses blocking queries only, for clusters whose event broker is disabled"},
	{Name: OptionResync, Type: sdk.OptionDuration, Default: "30s",
		Description: "how often the snapshot is rebuilt even without events (at least 1s)"},
	{Name: OptionAdvertise, Type: sdk.OptionEnum, Values: []string{"host", "alloc"}, Default: "host",
		Description: "host: callers dial the node's address and the mesh port's host port; alloc: a bridge-mode allocation's own address (Nomad's address_mode = \"alloc\")"},
	{Name: OptionCheckPoll, Type: sdk.OptionDuration, Default: "1s",
		Description: "how often the results of the Nomad service checks of running allocations are re-read (at least 100ms); a failing check takes its instance out within about its interval plus this"},
}

// DefaultAddress is Nomad's HTTP API when neither the source nor
// $NOMAD_ADDR names one.
const DefaultAddress = "http://127.0.0.1:4646"

// Adapter is the Nomad adapter. Create it with New; it implements
// sdk.Adapter and sdk.IdentityVerifier.
type Adapter struct {
	// Version is what Info reports; cmd/weft sets the build's version.
	Version string

	log hclog.Logger

	// Timings; tests shorten them.
	settle     time.Duration // how long events are gathered before a rebuild
	minBackoff time.Duration
	maxBackoff time.Duration
	fallback   time.Duration // how long blocking queries stand in for a broken event stream

	mu  sync.Mutex
	cfg *config
}

// config is a successful Configure.
type config struct {
	addr        string
	token       string
	namespace   string
	eventStream bool
	resync      time.Duration
	advertise   string
	checkPoll   time.Duration
	client      *api.Client
	http        *http.Client
}

// New returns a Nomad adapter that logs with the plugin SDK's logger.
func New() *Adapter { return newAdapter(sdk.Logger().Named(Name)) }

func newAdapter(log hclog.Logger) *Adapter {
	return &Adapter{
		Version:    "dev",
		log:        log,
		settle:     50 * time.Millisecond,
		minBackoff: 250 * time.Millisecond,
		// At most 4 s between tries: a Nomad that comes back is read
		// again, and its changes reach the sidecars, within 5 s
		// (test/nomad TestNomadOutage).
		maxBackoff: 4 * time.Second,
		fallback:   time.Minute,
	}
}

// Info describes the adapter.
func (a *Adapter) Info(context.Context) (*sdk.InfoResponse, error) {
	return &sdk.InfoResponse{
		Name:            Name,
		Version:         a.Version,
		ProtocolVersion: sdk.ProtocolVersion,
		Capabilities:    []string{sdk.CapVerifiesIdentity},
		Options:         options,
	}, nil
}

// Configure checks the Nomad address (req.Source, else $NOMAD_ADDR, else
// DefaultAddress), the options and the token. A Nomad that does not answer
// is a warning (the adapter keeps trying); a token Nomad refuses is an
// error that says which token to give.
func (a *Adapter) Configure(ctx context.Context, req *sdk.ConfigureRequest) (*sdk.ConfigureResponse, error) {
	if req == nil {
		return nil, errors.New("configuring the nomad adapter: nil request")
	}
	cfg, diags := parseConfig(req, os.Getenv)
	if sdk.HasErrors(diags) {
		return &sdk.ConfigureResponse{Diagnostics: diags}, nil
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	diags = append(diags, probe(pctx, cfg)...)
	if sdk.HasErrors(diags) {
		return &sdk.ConfigureResponse{Diagnostics: diags}, nil
	}
	a.mu.Lock()
	a.cfg = cfg
	a.mu.Unlock()
	return &sdk.ConfigureResponse{Diagnostics: diags}, nil
}

// parseConfig reads the request; getenv is os.Getenv outside tests.
func parseConfig(req *sdk.ConfigureRequest, getenv func(string) string) (*config, []sdk.Diagnostic) {
	var diags []sdk.Diagnostic
	cfg := &config{}
	cfg.addr = req.Source
	if cfg.addr == "" {
		cfg.addr = getenv("NOMAD_ADDR")
	}
	if cfg.addr == "" {
		cfg.addr = DefaultAddress
	}
	u, err := url.Parse(cfg.addr)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		diags = append(diags, sdk.Errorf("Invalid Nomad address",
			"The nomad adapter's source %q is not the URL of Nomad's HTTP API. Give one like http://127.0.0.1:4646 (--adapter nomad=http://127.0.0.1:4646), or leave it empty to use $NOMAD_ADDR.", cfg.addr))
	}
	cfg.token = getenv("NOMAD_TOKEN")
	opts, optDiags := sdk.ParseOptions(options, req.Options)
	diags = append(diags, optDiags...)
	if opts.Given(OptionTokenFile) {
		b, err := os.ReadFile(opts.String(OptionTokenFile))
		if err != nil {
			diags = append(diags, sdk.Errorf("Cannot read the Nomad token file",
				"Option token_file: %v. Give the path of a file holding a Nomad ACL token (secret ID) with read-job on the namespaces to watch.", err))
		} else {
			cfg.token = strings.TrimSpace(string(b))
		}
	}
	cfg.namespace = opts.String(OptionNamespace)
	if cfg.namespace == "" {
		diags = append(diags, sdk.Errorf("Empty namespace", "Option namespace is empty: give a Nomad namespace, or \"*\" for all."))
	}
	cfg.eventStream = opts.Bool(OptionEventStream)
	cfg.resync = opts.Duration(OptionResync)
	if v := req.Options[OptionResync]; opts.Given(OptionResync) && cfg.resync < time.Second {
		diags = append(diags, sdk.Errorf("Invalid resync", "Option resync = %q: give a duration of at least 1s, such as 30s.", v))
	}
	cfg.advertise = opts.String(OptionAdvertise)
	cfg.checkPoll = opts.Duration(OptionCheckPoll)
	if v := req.Options[OptionCheckPoll]; opts.Given(OptionCheckPoll) && cfg.checkPoll < 100*time.Millisecond {
		diags = append(diags, sdk.Errorf("Invalid check_poll", "Option check_poll = %q: give a duration of at least 100ms, such as 1s.", v))
	}
	for _, k := range opts.Unknown() {
		diags = append(diags, sdk.Warningf("Unknown option",
			"The nomad adapter has no option %q and ignores it; it knows %s, %s, %s, %s, %s and %s.", k, OptionTokenFile, OptionNamespace, OptionEventStream, OptionResync, OptionAdvertise, OptionCheckPoll))
	}
	if sdk.HasErrors(diags) {
		return nil, diags
	}
	cfg.http = &http.Client{}
	c, err := api.NewClient(&api.Config{Address: cfg.addr, SecretID: cfg.token, HttpClient: cfg.http})
	if err != nil {
		return nil, append(diags, sdk.Errorf("Cannot make a Nomad client", "For %s: %v.", cfg.addr, err))
	}
	cfg.client = c
	return cfg, diags
}

// probe asks Nomad once whether the adapter can read services. Nomad
// answers a list across all namespaces without a token with an empty list
// rather than a refusal, so the token is checked on its own: without one,
// a read of namespace default must pass; with one, Nomad must know it.
func probe(ctx context.Context, cfg *config) []sdk.Diagnostic {
	q := func(ns string) *api.QueryOptions { return (&api.QueryOptions{Namespace: ns}).WithContext(ctx) }
	var err error
	if cfg.token == "" {
		_, _, err = cfg.client.Services().List(q("default"))
	} else if _, _, err = cfg.client.ACLTokens().Self(q("")); err != nil && strings.Contains(err.Error(), "ACL support disabled") {
		err = nil // Nomad without ACLs ignores tokens
	}
	if err == nil {
		_, _, err = cfg.client.Services().List(q(cfg.namespace))
	}
	switch {
	case err == nil:
		return nil
	case isRefusal(err):
		return []sdk.Diagnostic{tokenDiag(cfg, err)}
	default:
		return []sdk.Diagnostic{sdk.Warningf("Nomad does not answer",
			"Reaching Nomad at %s: %v. The adapter keeps trying with backoff; check that Nomad runs there, or pass its address as the adapter's source.", cfg.addr, err)}
	}
}

// tokenDiag explains a 403 from Nomad.
func tokenDiag(cfg *config, err error) sdk.Diagnostic {
	if cfg.token == "" {
		return sdk.Errorf("Nomad needs an ACL token",
			"Nomad at %s refused to list services without a token (%v): its ACLs are enabled. Give the adapter a token with read-job on the namespaces to watch, in $NOMAD_TOKEN or with --adapter-option nomad.token_file=PATH.", cfg.addr, err)
	}
	return sdk.Errorf("Nomad refused the ACL token",
		"Nomad at %s refused the adapter's token (%v): it is unknown, expired, or lacks read-job on namespace %q. Give a valid token with that capability in $NOMAD_TOKEN or with --adapter-option nomad.token_file=PATH.", cfg.addr, err, cfg.namespace)
}

func (a *Adapter) config() (*config, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cfg == nil {
		return nil, errors.New("the nomad adapter is not configured: call Configure with a good configuration first")
	}
	return a.cfg, nil
}

// isRefusal reports whether Nomad refused the token: 403 Permission
// denied, or "ACL token not found" from the token lookup.
func isRefusal(err error) bool {
	code := 0
	var ue api.UnexpectedResponseError
	var uep *api.UnexpectedResponseError
	switch {
	case errors.As(err, &ue):
		code = ue.StatusCode()
	case errors.As(err, &uep):
		code = uep.StatusCode()
	}
	return code == http.StatusForbidden || strings.Contains(err.Error(), "ACL token not found") ||
		strings.Contains(err.Error(), "Permission denied")
}
