package api

import (
	"crypto/subtle"
	"crypto/tls"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/weftmesh/weft/core/ca"
	"github.com/weftmesh/weft/core/compile"
	"github.com/weftmesh/weft/core/dashboard"
	"github.com/weftmesh/weft/core/meshapi"
	"github.com/weftmesh/weft/core/meshserver"
	"github.com/weftmesh/weft/core/model"
	"github.com/weftmesh/weft/core/policy"
	"github.com/weftmesh/weft/core/protect"
	"github.com/weftmesh/weft/core/refusals"
	"github.com/weftmesh/weft/core/registry"
	"github.com/weftmesh/weft/core/spiffe"
	"github.com/weftmesh/weft/core/version"
)

// Mesh is what the admin API reads of the controller's runtime
// (core/controller.Controller implements it).
type Mesh interface {
	// TrustDomain is the trust domain in force.
	TrustDomain() string
	// Builds counts the compilations.
	Builds() int
	// Policy is the policy in force, nil before the first.
	Policy() *policy.Policy
	// Waiting names the adapters whose first snapshot is awaited (or,
	// when gaveUp, was waited for in vain).
	Waiting() (adapters []string, gaveUp bool)
	// Unbound lists the instances no binding names, and whether the
	// mesh's identity binding is permissive.
	Unbound() (skipped []compile.Skipped, permissive bool)
	// Entries lists every instance the adapters report.
	Entries() []registry.Entry
	// SidecarHealth is the last report of instance id's sidecar on its
	// app's active checks, if one is in force.
	SidecarHealth(id string) (healthy bool, reason string, ok bool)
	// Dropped lists the instances left out for a reason (or an upstream
	// port of theirs ignored), at most a bound of them, and counts every
	// one per reason.
	Dropped() (listed []model.Dropped, counts map[string]int)
}

// Sidecars is what the admin API reads of, and asks of, the config server
// (core/meshserver.Server implements it).
type Sidecars interface {
	// Status lists the connected sidecars.
	Status() []meshserver.StreamStatus
	// Config returns an instance's compiled configuration.
	Config(id string) (*meshapi.ProxyConfig, uint64, bool)
	// RotateRoot rotates the CA's root and sends the new bundle.
	RotateRoot() (ca.Rotation, error)
}

// Authority is what the admin API reads of the mesh CA (*ca.CA implements
// it).
type Authority interface {
	JoinSecret() []byte
	RootsPEM() []byte
	Roots() []ca.RootInfo
}

// PolicyFiles is what the admin API reads of the policy watcher
// (core/controller.PolicyWatcher implements it).
type PolicyFiles interface {
	// Sources are the files of the policy in force, by name.
	Sources() map[string]string
	// Error says why the last change was rejected, "" if it was taken.
	Error() string
}

// Options are what the admin API's handler serves from.
type Options struct {
	// Token is the bearer token every request must carry.
	Token     string
	Mesh      Mesh
	Sidecars  Sidecars
	Authority Authority
	// Policy, when set, answers GET /v1/policy and the policy error in
	// status.
	Policy PolicyFiles
	// Adapters, when set, lists the supervised adapter plugins.
	Adapters func() []AdapterReport
	// Refused are the refused-handshake logs by API ("sidecar_api",
	// "admin_api"); a nil one is left out.
	Refused map[string]*refusals.Log
	// Shielded are the refusals of each API's defences (core/protect), by
	// API and reason.
	Shielded map[string]*protect.Counter
	// Summarize, when set, describes the policy in force in one line
	// (StatusReport.Policy); cmd/weft hands in the HCL package's.
	Summarize func(*policy.Policy) string
	// Stats, when set, answers GET /v1/stats (stats_handler.go).
	Stats StatsSource
	// Metrics, when set, answers GET /metrics: the controller's own
	// Prometheus series (core/telemetry).
	Metrics http.Handler
	// Tap, when set, serves GET /v1/tap (tap.go).
	Tap Tapper
	// Replica, when set, is the controller's raft replica: its status in
	// GET /v1/status and the operator endpoints (raft.go).
	Replica Replica
	// PolicyStore, when set, is the replicated policy (a replica): it
	// serves POST /v1/policy/apply, GET /v1/policy/history and GET
	// /v1/policy/versions/{index} (policy_apply.go), with CompilePolicy
	// checking what is applied.
	PolicyStore   PolicyStore
	CompilePolicy PolicyCompiler
	// JWKS, when set, lists the JWT key sets the controller reads
	// (StatusReport.JWKS).
	JWKS func() []JWKSReport
}

// Unauthorized is the answer to a request without the right token.
const Unauthorized = "the admin API needs the header 'Authorization: Bearer <token>' with the controller's token: it is in DATA_DIR/admin.token (the CLI reads it with --data-dir, or from WEFT_TOKEN)"

// NewHandler returns the admin API: every request but the health
// endpoints (health.go) and the dashboard's files needs the bearer token;
// then GET /v1/status, GET /v1/policy, GET /v1/ca/roots, POST
// /v1/ca/rotate, POST /v1/join-tokens, and with Options.Stats and
// Options.Metrics GET /v1/stats (?window=1m) and GET /metrics.
func NewHandler(o Options) http.Handler {
	h := &handler{o: o}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/join-tokens", h.joinToken)
	mux.HandleFunc("GET /v1/ca/roots", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, rootsReport(o.Authority, o.Sidecars.Status()))
	})
	mux.HandleFunc("POST /v1/ca/rotate", func(w http.ResponseWriter, r *http.Request) {
		rot, err := o.Sidecars.RotateRoot()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		writeJSON(w, rot)
	})
	mux.HandleFunc("GET /v1/policy", func(w http.ResponseWriter, r *http.Request) {
		var out PolicySources
		if o.Policy != nil {
			out.Files = o.Policy.Sources()
			if f, ok := o.Policy.(PolicyInForcer); ok {
				in := f.InForce()
				out.InForce = &in
			}
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(out)
	})
	mux.HandleFunc("GET /v1/tap", h.serveTap)
	mux.HandleFunc("GET /v1/tap/sessions", h.serveTapSessions)
	mux.HandleFunc("GET /v1/authz", h.serveAuthz)
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, h.status())
	})
	routeStats(mux, o)
	routeReplica(mux, o)
	routePolicy(mux, o)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if serveHealth(w, r, o) { // health.go: probes carry no token
			return
		}
		if dashboard.Serves(r) { // dashboard.go: its files hold no data, so no token
			dashboardFiles.ServeHTTP(w, r)
			return
		}
		if !Authorized(r, o.Token) {
			http.Error(w, Unauthorized, http.StatusUnauthorized)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// NewServer is the admin API's server for h: HTTPS only, with the
// controller's own certificate (serving), the one its sidecar API
// presents. Start it with ServeTLS(listener, "", "").
func NewServer(h http.Handler, serving *tls.Config) *http.Server {
	return &http.Server{Handler: h, TLSConfig: serving.Clone(), ReadHeaderTimeout: 10 * time.Second}
}

// Authorized says whether r carries "Authorization: Bearer token", compared
// in constant time. An empty token authorizes nothing.
func Authorized(r *http.Request, token string) bool {
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && token != "" && subtle.ConstantTimeCompare([]byte(got), []byte(token)) == 1
}

type handler struct{ o Options }

func (h *handler) joinToken(w http.ResponseWriter, r *http.Request) {
	var req JoinTokenRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&req); err != nil {
		http.Error(w, "decoding the request: "+err.Error()+`; send {"adapter", "instance", "service", "namespace", "ttl_seconds"}`, http.StatusBadRequest)
		return
	}
	if req.Node != "" {
		h.nodeToken(w, req) // nodetoken.go
		return
	}
	if req.Adapter == "" || req.Instance == "" || !model.ValidName(req.Service) || (req.Namespace != "" && !model.ValidName(req.Namespace)) {
		http.Error(w, "adapter, instance and service are required; service and namespace must be DNS labels", http.StatusBadRequest)
		return
	}
	ttl := time.Duration(req.TTLSeconds) * time.Second
	if ttl <= 0 || ttl > time.Hour {
		ttl = 10 * time.Minute
	}
	tok, err := ca.MintJoinToken(ca.DeriveJoinKey(h.o.Authority.JoinSecret(), req.Adapter), ca.JoinClaims{
		Adapter: req.Adapter, Instance: req.Instance, Service: req.Service, Namespace: req.Namespace,
	}, ttl)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(JoinTokenResponse{Token: tok, ExpiresIn: ttl.String()})
}

func (h *handler) status() StatusReport {
	o := h.o
	rep := StatusReport{TrustDomain: o.Mesh.TrustDomain(), Sidecars: o.Sidecars.Status(), ConfigBuilds: o.Mesh.Builds(),
		ControllerVersion: version.Version, Time: time.Now().UTC()}
	rep.Roots = rootsReport(o.Authority, rep.Sidecars).Roots
	if o.Replica != nil {
		st := o.Replica.Status()
		rep.Raft = &st
	}
	if p := o.Mesh.Policy(); p != nil {
		if o.Summarize != nil {
			rep.Policy = o.Summarize(p)
		}
		rep.IntentionsCount = len(p.Intentions)
		rep.IdentityBinding = string(policy.BindingStrict)
	}
	var permissive bool
	rep.WaitingFor, rep.WaitedOut = o.Mesh.Waiting()
	rep.Skipped, permissive = o.Mesh.Unbound()
	rep.Dropped, rep.DroppedCounts = o.Mesh.Dropped()
	if permissive {
		rep.IdentityBinding = string(policy.BindingPermissive)
	}
	if o.JWKS != nil {
		rep.JWKS = o.JWKS()
	}
	if is, ok := o.Stats.(interface{ Intrusions() []IntrusionReport }); ok {
		rep.Intrusions = is.Intrusions()
	}
	rep.ProtectionRefused = map[string]map[string]uint64{}
	for api, c := range o.Shielded {
		if c != nil {
			rep.ProtectionRefused[api] = c.Counts()
		}
	}
	rep.RefusedHandshakes = map[string]refusals.Counts{}
	for api, l := range o.Refused {
		if l != nil {
			rep.RefusedHandshakes[api] = l.Counts()
		}
	}
	if o.Policy != nil {
		rep.PolicyError = o.Policy.Error()
		if f, ok := o.Policy.(PolicyInForcer); ok {
			in := f.InForce()
			rep.PolicyInForce = &in
		}
	}
	if o.Adapters != nil {
		rep.Adapters = o.Adapters()
	}
	sort.Slice(rep.Adapters, func(i, j int) bool { return rep.Adapters[i].Name < rep.Adapters[j].Name })
	for _, e := range o.Mesh.Entries() {
		in := InstanceReport{
			Adapter: e.Adapter, ID: e.Instance.ID, Service: e.Instance.Service, Address: e.Instance.Address,
			Ports: e.Instance.Ports, Labels: e.Instance.Labels, Health: string(e.Instance.Health),
			HealthSource: HealthFromScheduler, SchedulerHealth: string(e.Instance.Health),
			Identity:  spiffe.ID(rep.TrustDomain, e.Instance.NS(), e.Instance.Service),
			Isolation: string(e.Instance.Isolation),
			Outbound:  outboundReports(o.Sidecars, e.Instance.ID),
			App:       appReport(o.Sidecars, e.Instance.ID),
			Node:      e.Instance.Node,
			ProxyMode: e.Instance.Meta[model.MetaProxyMode],
		}
		if healthy, reason, ok := o.Mesh.SidecarHealth(e.Instance.ID); ok {
			in.SidecarCheck = "passing"
			if !healthy {
				in.SidecarCheck, in.HealthReason = "failing", reason
				if e.Instance.Health != model.HealthCritical {
					in.Health, in.HealthSource = string(model.HealthCritical), HealthFromSidecarCheck
				}
			}
		}
		rep.Instances = append(rep.Instances, in)
		if !e.Instance.Isolated() {
			rep.Unisolated++
		}
	}
	return rep
}

// What InstanceReport.Health comes from.
const (
	HealthFromScheduler    = "scheduler"
	HealthFromSidecarCheck = "sidecar_check"
)

func rootsReport(authority Authority, sidecars []meshserver.StreamStatus) RootsReport {
	rep := RootsReport{BundlePEM: string(authority.RootsPEM())}
	count := map[string]int{}
	for _, s := range sidecars {
		if s.LeafRoot == "" {
			rep.SidecarsUnknown++
		} else {
			count[s.LeafRoot]++
		}
	}
	for _, r := range authority.Roots() {
		rep.Roots = append(rep.Roots, RootReport{RootInfo: r, Sidecars: count[r.ID]})
	}
	return rep
}

// outboundReports returns the outbound listeners in the compiled
// configuration of an instance, if it has one.
func outboundReports(s Sidecars, id string) []OutboundReport {
	cfg, _, ok := s.Config(id)
	if !ok || cfg == nil {
		return nil
	}
	var out []OutboundReport
	for _, u := range cfg.GetUpstreams() {
		addr := u.GetBindAddress()
		if addr == "" {
			addr = "127.0.0.1" // where the sidecar binds a listener without one
		}
		out = append(out, OutboundReport{Upstream: u.GetName(), Address: addr, Port: int(u.GetLocalPort())})
	}
	return out
}

// appReport returns where the sidecar of an instance reaches its app
// ("ip:port"), as its compiled configuration has it, or "" before it has
// one. It can differ from the instance's address: an app on host
// networking is told to listen on 127.0.0.1.
func appReport(s Sidecars, id string) string {
	cfg, _, ok := s.Config(id)
	if !ok || cfg == nil || cfg.GetInbound().GetAppPort() == 0 {
		return ""
	}
	in := cfg.GetInbound()
	return net.JoinHostPort(in.GetAppAddress(), strconv.Itoa(int(in.GetAppPort())))
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
