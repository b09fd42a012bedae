package policy

import "testing"

func TestDecide(t *testing.T) {
	in := func(s, d string, a Action) Intention { return Intention{Source: s, Destination: d, Action: a} }
	tests := []struct {
		name       string
		def        Action
		intentions []Intention
		src, dst   string
		want       Action
		byIntent   bool
	}{
		{"default deny", Deny, nil, "a", "b", Deny, false},
		{"default allow", Allow, nil, "a", "b", Allow, false},
		{"exact allow", Deny, []Intention{in("a", "b", Allow)}, "a", "b", Allow, true},
		{"exact for someone else", Deny, []Intention{in("a", "b", Allow)}, "c", "b", Deny, false},
		{"exact source beats wildcard source", Deny, []Intention{in("*", "b", Deny), in("a", "b", Allow)}, "a", "b", Allow, true},
		{"exact source beats exact destination", Allow, []Intention{in("a", "*", Deny), in("*", "b", Allow)}, "a", "b", Deny, true},
		{"exact destination breaks a tie", Deny, []Intention{in("a", "*", Deny), in("a", "b", Allow)}, "a", "b", Allow, true},
		{"deny wins among equals", Allow, []Intention{in("a", "b", Allow), in("a", "b", Deny)}, "a", "b", Deny, true},
		{"all wildcards", Deny, []Intention{in("*", "*", Allow)}, "x", "y", Allow, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := &Policy{Mesh: Mesh{DefaultAction: tc.def}, Intentions: tc.intentions}
			got, by := p.Decide(tc.src, tc.dst)
			if got != tc.want || by != tc.byIntent {
				t.Errorf("Decide(%s, %s) = %s, %v; want %s, %v", tc.src, tc.dst, got, by, tc.want, tc.byIntent)
			}
		})
	}
}
