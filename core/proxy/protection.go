package proxy

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/weftmesh/weft/core/meshapi"
	"github.com/weftmesh/weft/core/protect"
	"github.com/weftmesh/weft/core/proxy/guard"
	"github.com/weftmesh/weft/core/spiffe"
)

// Guard is the proxy's intrusion tracker (package guard): its signals by
// source and the sources it blocks. A JWT check or a gateway in front of
// the same proxy notes its own signals in it.
func (p *Proxy) Guard() *guard.Tracker { return p.guard }

// blockingPolicy is the tracker's policy of cfg: blocking is off unless
// the config's protection turns it on.
func blockingPolicy(cfg *meshapi.ProxyConfig) guard.Policy {
	b := cfg.GetProtection().GetBlocking()
	if in := cfg.GetInbound().GetProtection().GetBlocking(); in != nil {
		b = in
	}
	if b == nil {
		return guard.Policy{}
	}
	return guard.Policy{
		Threshold:  int(b.GetThreshold()),
		Window:     b.GetWindow().AsDuration(),
		BlockFor:   b.GetDuration().AsDuration(),
		Addresses:  b.GetAddresses(),
		Identities: b.GetIdentities(),
	}
}

func (p *Proxy) onBlock(source string, until time.Time, reason string) {
	p.log.Warn("guard: blocking a source", "source", source, "until", until.UTC().Format(time.RFC3339), "reason", reason)
}

// note records an intrusion signal from source (an IP address or a
// SPIFFE ID).
func (p *Proxy) note(source string, kind guard.Kind) {
	p.guard.Note(source, kind)
	p.metrics.signals.WithLabelValues(string(kind)).Inc()
}

// callerSource is the tracker's source for a mesh caller: its SPIFFE ID.
func callerSource(id spiffe.Identity) string { return id.String() }

// newShield is the protect.Shield of a listener. Inbound, every refusal
// is an intrusion signal from the caller (its identity when the request
// has one, else its address) and blocked addresses are refused at
// accept; outbound the client is the local app, which is counted, not
// tracked.
func (p *Proxy) newShield(listener string, s protect.Settings, inbound bool) *protect.Shield {
	return p.newShieldV6(listener, s, inbound, 0)
}

// newShieldV6 is newShield counting, tracking and blocking IPv6 clients
// by their prefix of v6bits (0: by address).
func (p *Proxy) newShieldV6(listener string, s protect.Settings, inbound bool, v6bits int) *protect.Shield {
	o := protect.Options{Listener: listener, IPv6Prefix: v6bits}
	o.Refused = func(reason, addr string, r *http.Request) {
		p.metrics.shielded.WithLabelValues(listener, reason).Inc()
		if !inbound || reason == protect.ReasonBlocked {
			return
		}
		kind := guard.BadRequest
		switch reason {
		case protect.ReasonShed:
			return // the proxy is saturated; no source is to blame
		case protect.ReasonSourceConnections:
			kind = guard.ConnLimited
		}
		src := protect.SourceKey(addr, v6bits)
		if r != nil {
			if id, ok := r.Context().Value(callerKey{}).(spiffe.Identity); ok && id.Service != "" {
				src = callerSource(id)
			}
		}
		p.note(src, kind)
	}
	if inbound {
		o.Blocked = p.guard.Blocked
	}
	return protect.NewShield(s, o)
}

// protectionMetrics are the series of the listeners' defences and the
// intrusion tracker.
type protectionMetrics struct {
	shielded *prometheus.CounterVec // refusals of a listener's shield, by listener and reason
	signals  *prometheus.CounterVec // intrusion signals, by kind
}

func newProtectionMetrics() protectionMetrics {
	m := protectionMetrics{
		shielded: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_protection_refused_total",
			Help: "Connections and requests a listener's defences refused, by listener (inbound, upstream/NAME) and reason: source_connections, shed, header_count, body_too_large, blocked.",
		}, []string{"listener", "reason"}),
		signals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_intrusion_signals_total",
			Help: "Intrusion signals noted against a source, by kind: handshake, denied, rate_limited, conn_limited, bad_request, jwt.",
		}, []string{"kind"}),
	}
	for _, k := range guard.Kinds {
		m.signals.WithLabelValues(string(k))
	}
	return m
}

// intrusions registers the series of the protection and of t.
func (m *metrics) intrusions(t *guard.Tracker) {
	m.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "weft_intrusion_blocked_sources",
			Help: "Sources (IP addresses, SPIFFE IDs) the sidecar blocks now.",
		}, func() float64 { return float64(t.Counts().Blocked) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "weft_intrusion_tracked_sources",
			Help: "Sources with intrusion signals in the sidecar's bounded table.",
		}, func() float64 { return float64(t.Counts().Tracked) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "weft_intrusion_blocks_total",
			Help: "Blocks of a source that crossed the blocking threshold.",
		}, func() float64 { return float64(t.Counts().Blocks) }),
	)
}

// AdminShield returns the defences of the sidecar's admin port
// (protect.AdminDefaults), counting its refusals in the proxy's metrics
// with listener "admin". weft-proxy serves AdminHandler behind it.
func (p *Proxy) AdminShield() *protect.Shield {
	return p.newShield("admin", protect.AdminDefaults(), false)
}

// MaxReportedSources bounds the intrusion sources and the blocks one
// report carries (the controller holds reports to the same).
const MaxReportedSources = 20

// intrusionReport adds the guard's top sources and blocks to r.
func (p *Proxy) intrusionReport(r *meshapi.StatsReport) {
	for _, s := range p.guard.Top(MaxReportedSources) {
		r.Intrusions = append(r.Intrusions, &meshapi.IntrusionSource{Source: s.Source, Total: s.Total, ByKind: s.ByKind, LastUnixMs: s.Last.UnixMilli()})
	}
	blocked := p.guard.BlockedSources()
	for _, b := range blocked[:min(len(blocked), MaxReportedSources)] {
		r.Blocked = append(r.Blocked, &meshapi.BlockedSource{Source: b.Source, UntilUnixMs: b.Until.UnixMilli(), Reason: b.Reason})
	}
}
