package policy

import (
	"errors"
	"strings"
	"testing"

	"github.com/weftmesh/weft/core/model"
)

func TestBound(t *testing.T) {
	p := &Policy{Services: map[string]Service{
		"catalog": {Name: "catalog", Bindings: []Binding{
			{Scheduler: "nomad", Match: map[string]string{"namespace": "shop", "job": "catalog", "group": Wildcard}},
			{Scheduler: "kubernetes", Match: map[string]string{"namespace": "shop", "service_account": "catalog"}},
		}},
		"unbound": {Name: "unbound"},
	}}
	nomad := func(kv ...string) map[string]string {
		w := map[string]string{model.WorkloadScheduler: "nomad"}
		for i := 0; i+1 < len(kv); i += 2 {
			w[kv[i]] = kv[i+1]
		}
		return w
	}
	tests := []struct {
		name    string
		service string
		w       map[string]string
		bound   bool
		hint    string // in the error when unbound
	}{
		{"the job", "catalog", nomad("namespace", "shop", "job", "catalog", "group", "web", "task", "app"), true, ""},
		{"another job, same service name", "catalog", nomad("namespace", "shop", "job", "evil", "group", "web"), false, "binding \"nomad\" {\n  namespace = \"shop\"\n  job = \"evil\"\n}"},
		{"same job name, another namespace", "catalog", nomad("namespace", "evil", "job", "catalog", "group", "web"), false, `namespace = "evil"`},
		{"group wildcard needs a group", "catalog", nomad("namespace", "shop", "job", "catalog"), false, ""},
		{"case matters", "catalog", nomad("namespace", "Shop", "job", "catalog", "group", "web"), false, ""},
		{"a prefix is not a match", "catalog", nomad("namespace", "shop", "job", "catalog-2", "group", "web"), false, ""},
		{"another scheduler with the same keys", "catalog", map[string]string{model.WorkloadScheduler: "local", "namespace": "shop", "job": "catalog", "group": "web"}, false, ""},
		{"no scheduler", "catalog", map[string]string{"namespace": "shop", "job": "catalog", "group": "web"}, false, "nothing can"},
		{"no workload at all", "catalog", nil, false, "reported no workload"},
		{"the service account", "catalog", map[string]string{model.WorkloadScheduler: "kubernetes", "namespace": "shop", "service_account": "catalog"}, true, ""},
		{"another service account", "catalog", map[string]string{model.WorkloadScheduler: "kubernetes", "namespace": "shop", "service_account": "default"}, false, `service_account = "default"`},
		{"a service without bindings", "unbound", nomad("namespace", "shop", "job", "unbound", "group", "g"), false, `add to service "unbound"`},
		{"a service without a block", "ghost", map[string]string{model.WorkloadScheduler: "local", "name": "ghost"}, false, `binding "local" { name = "ghost" }`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := p.Bound(tc.service, tc.w)
			if (err == nil) != tc.bound {
				t.Fatalf("Bound = %v, want bound %v", err, tc.bound)
			}
			if err == nil {
				return
			}
			var ue *UnboundError
			if !errors.As(err, &ue) || ue.Service != tc.service {
				t.Errorf("error %v is not an UnboundError for %q", err, tc.service)
			}
			if !strings.Contains(err.Error(), tc.hint) {
				t.Errorf("error %q does not say %q", err, tc.hint)
			}
		})
	}
}

// TestDecideNamespaces: an intention source without a namespace names a
// caller in the destination's namespace; "ns/svc" names that namespace;
// "ns/*" every service of it; "*" everyone.
func TestDecideNamespaces(t *testing.T) {
	svcs := map[string]Service{"api": {Name: "api", Namespace: "shop"}, "db": {Name: "db"}}
	in := func(src, ns, dst string, a Action) Intention {
		return Intention{Source: src, SourceNamespace: ns, Destination: dst, Action: a}
	}
	tests := []struct {
		name       string
		intentions []Intention
		caller     Caller
		dst        string
		want       Action
	}{
		{"bare source, caller in the destination's namespace", []Intention{in("frontend", "", "api", Allow)}, Caller{"shop", "frontend"}, "api", Allow},
		{"bare source, same name in another namespace", []Intention{in("frontend", "", "api", Allow)}, Caller{"evil", "frontend"}, "api", Deny},
		{"bare source, the default namespace is not special", []Intention{in("frontend", "", "api", Allow)}, Caller{"default", "frontend"}, "api", Deny},
		{"ns/svc", []Intention{in("frontend", "default", "api", Allow)}, Caller{"default", "frontend"}, "api", Allow},
		{"ns/svc, another namespace", []Intention{in("frontend", "default", "api", Allow)}, Caller{"evil", "frontend"}, "api", Deny},
		{"ns/*", []Intention{in(Wildcard, "default", "api", Allow)}, Caller{"default", "anything"}, "api", Allow},
		{"ns/*, another namespace", []Intention{in(Wildcard, "default", "api", Allow)}, Caller{"evil", "anything"}, "api", Deny},
		{"* is any namespace", []Intention{in(Wildcard, Wildcard, "api", Allow)}, Caller{"evil", "x"}, "api", Allow},
		{"* written without a namespace is any namespace too", []Intention{in(Wildcard, "", "api", Allow)}, Caller{"evil", "x"}, "api", Allow},
		{"a service beats its namespace", []Intention{in(Wildcard, "default", "api", Allow), in("bad", "default", "api", Deny)}, Caller{"default", "bad"}, "api", Deny},
		{"a namespace beats everyone", []Intention{in(Wildcard, Wildcard, "api", Allow), in(Wildcard, "evil", "api", Deny)}, Caller{"evil", "x"}, "api", Deny},
		{"a namespace beats a destination", []Intention{in(Wildcard, Wildcard, "api", Deny), in(Wildcard, "default", Wildcard, Allow)}, Caller{"default", "x"}, "api", Allow},
		{"an empty service matches no named source", []Intention{in("", "", "api", Allow)}, Caller{"shop", ""}, "api", Deny},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := &Policy{Mesh: Mesh{DefaultAction: Deny}, Services: svcs, Intentions: tc.intentions}
			if got, _ := p.DecideCaller(tc.caller, tc.dst); got != tc.want {
				t.Errorf("DecideCaller(%v, %s) = %s, want %s", tc.caller, tc.dst, got, tc.want)
			}
		})
	}
	// Decide's bare caller runs in its own service block's namespace.
	p := &Policy{Mesh: Mesh{DefaultAction: Deny}, Services: map[string]Service{"api": {Name: "api", Namespace: "shop"}, "web": {Name: "web"}},
		Intentions: []Intention{in("web", "default", "api", Allow)}}
	if got, _ := p.Decide("web", "api"); got != Allow {
		t.Errorf(`Decide("web", "api") = %s: web runs in "default"`, got)
	}
	if got, _ := p.Decide("evil/web", "api"); got != Deny {
		t.Errorf(`Decide("evil/web", "api") = %s, want deny`, got)
	}
}

func TestSourceName(t *testing.T) {
	for _, tc := range []struct {
		in   Intention
		want string
	}{
		{Intention{Source: "web"}, "web"},
		{Intention{Source: "web", SourceNamespace: "shop"}, "shop/web"},
		{Intention{Source: Wildcard, SourceNamespace: "shop"}, "shop/*"},
		{Intention{Source: Wildcard, SourceNamespace: Wildcard}, "*"},
		{Intention{Source: Wildcard}, "*"},
	} {
		if got := tc.in.SourceName(); got != tc.want {
			t.Errorf("%+v: SourceName %q, want %q", tc.in, got, tc.want)
		}
	}
}
