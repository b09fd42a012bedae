package policy

import (
	"bytes"
	"strings"
	"testing"
)

func TestDiffFlows(t *testing.T) {
	svcs := map[string]Service{"web": {Name: "web"}, "api": {Name: "api"}, "db": {Name: "db"}}
	base := func(def Action, ins ...Intention) *Policy {
		return &Policy{Mesh: Mesh{TrustDomain: "t", DefaultAction: def}, Services: svcs, Intentions: ins}
	}
	allow := func(s, d string) Intention { return Intention{Source: s, Destination: d, Action: Allow} }
	deny := func(s, d string) Intention { return Intention{Source: s, Destination: d, Action: Deny} }
	tests := []struct {
		name     string
		old, new *Policy
		want     []string // "src>dst old=>new"
	}{
		{"no change", base(Deny, allow("web", "api")), base(Deny, allow("web", "api")), nil},
		{"one allowed", base(Deny), base(Deny, allow("web", "api")), []string{"web>api deny=>allow"}},
		{"wildcard source allows three", base(Deny), base(Deny, allow("*", "db")), []string{"api>db deny=>allow", "db>db deny=>allow", "web>db deny=>allow"}},
		{"exact deny beats the new wildcard", base(Deny, deny("web", "db")), base(Deny, deny("web", "db"), allow("*", "db")), []string{"api>db deny=>allow", "db>db deny=>allow"}},
		{"default flips", base(Deny, allow("web", "api")), base(Allow, allow("web", "api")), []string{
			"api>api deny=>allow", "api>db deny=>allow", "api>web deny=>allow", "db>api deny=>allow", "db>db deny=>allow",
			"db>web deny=>allow", "web>db deny=>allow", "web>web deny=>allow"}},
		{"per request", base(Deny, allow("web", "api")), base(Deny, Intention{Source: "web", Destination: "api", Permissions: []Permission{{Action: Allow}}}),
			[]string{"web>api allow=>per request (1 permission)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pl := Diff(tt.old, tt.new)
			var got []string
			for _, f := range pl.Flows {
				got = append(got, f.Source+">"+f.Destination+" "+f.Old+"=>"+short(f.New))
			}
			if strings.Join(got, "; ") != strings.Join(tt.want, "; ") {
				t.Errorf("flows:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(tt.want, "\n  "))
			}
			var buf bytes.Buffer
			if err := pl.Write(&buf); err != nil {
				t.Fatal(err)
			}
			if (len(tt.want) == 0) != strings.Contains(buf.String(), "No changes.") {
				t.Errorf("rendered plan:\n%s", buf.String())
			}
		})
	}
}
