package policy

import (
	"encoding/json"
	"slices"
	"testing"
)

func TestJWTClaimHolds(t *testing.T) {
	claims := map[string]any{
		"role": "admin", "groups": []any{"ops", "dev"}, "level": json.Number("3"), "verified": true,
		"realm": map[string]any{"roles": []any{"sre"}}, "a.b": "dotted",
	}
	for _, tc := range []struct {
		name   string
		values []string
		want   bool
	}{
		{"role", []string{"admin"}, true},
		{"role", []string{"user"}, false},
		{"groups", []string{"sre", "dev"}, true},
		{"groups", []string{"admin"}, false},
		{"level", []string{"3"}, true},
		{"verified", []string{"true"}, true},
		{"realm.roles", []string{"sre"}, true},
		{"realm.none", []string{"sre"}, false},
		{"a.b", []string{"dotted"}, true},
		{"realm", []string{"sre"}, false}, // an object is no value
		{"missing", []string{""}, false},
	} {
		if got := JWTClaimHolds(claims, tc.name, tc.values); got != tc.want {
			t.Errorf("%s in %v: %v, want %v", tc.name, tc.values, got, tc.want)
		}
	}
	if (&JWTMatch{Provider: "corp"}).Holds(nil) {
		t.Error("a match holds without a token")
	}
}

func TestPlanJWTProviders(t *testing.T) {
	old := &Policy{JWTProviders: map[string]JWTProvider{"a": {Issuer: "x"}, "b": {Issuer: "y"}}}
	nw := &Policy{JWTProviders: map[string]JWTProvider{"a": {Issuer: "x", JWKS: []byte("{}")}, "b": {Issuer: "z"}, "c": {Issuer: "w"}}}
	got := Diff(old, nw).Mesh
	want := []string{`jwt_provider "b": changed`, `jwt_provider "c": added (issuer w)`}
	if !slices.Equal(got, want) {
		t.Errorf("plan: %q, want %q (new keys alone are no change)", got, want)
	}
}
