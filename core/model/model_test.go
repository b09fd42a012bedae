package model

import "testing"

// TestInstanceEqualMaps: Equal compares maps by content, whether they are
// one map, two alike, or nil and empty.
func TestInstanceEqualMaps(t *testing.T) {
	ports := map[string]int{PortMesh: 1, PortApp: 2}
	tests := []struct {
		name string
		a, b map[string]int
		want bool
	}{
		{"one map", ports, ports, true},
		{"two alike", ports, map[string]int{PortMesh: 1, PortApp: 2}, true},
		{"a value differs", ports, map[string]int{PortMesh: 1, PortApp: 3}, false},
		{"a key differs", ports, map[string]int{PortMesh: 1, "admin": 2}, false},
		{"one more", ports, map[string]int{PortMesh: 1, PortApp: 2, "admin": 3}, false},
		{"nil and empty", nil, map[string]int{}, true},
		{"nil and one", nil, ports, false},
	}
	for _, tt := range tests {
		a := Instance{ID: "a", Ports: tt.a}
		b := Instance{ID: "a", Ports: tt.b}
		if got := a.Equal(b); got != tt.want {
			t.Errorf("%s: Equal = %v, want %v", tt.name, got, tt.want)
		}
		if got := b.Equal(a); got != tt.want {
			t.Errorf("%s, swapped: Equal = %v, want %v", tt.name, got, tt.want)
		}
	}
}
