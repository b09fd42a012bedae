package policyhcl

import (
	"fmt"

	"github.com/hashicorp/hcl/v2"

	"github.com/weftmesh/weft/core/policy"
)

// serviceJWT is a decoded jwt block inside a service block: every HTTP or
// gRPC request to the service must carry a valid end-user token of one of
// the providers, or its sidecar answers 401 with a WWW-Authenticate
// challenge (RFC 6750).
//
//	service "frontend" {
//	  protocol = "http"
//	  jwt { provider = "corp" }          # or providers = ["corp", "partners"]
//	}
//
// Without it, a token is still checked where a permission's jwt block
// asks for one, and any token present is verified (an invalid one is a
// 401 whatever the permissions say).
type serviceJWT struct {
	Providers      []string
	ProvidersRange hcl.Range
	DeclRange      hcl.Range
}

var serviceJWTSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "provider"}, {Name: "providers"}},
}

func decodeServiceJWTBlock(block *hcl.Block) (*serviceJWT, hcl.Diagnostics) {
	j := &serviceJWT{DeclRange: block.DefRange}
	content, diags := block.Body.Content(serviceJWTSchema)
	one, hasOne := content.Attributes["provider"]
	many, hasMany := content.Attributes["providers"]
	switch {
	case hasOne && hasMany:
		diags = append(diags, errorAt(many.Range, "Provider and providers",
			"Give provider (one JWT provider) or providers (a list: a token of any of them), not both."))
	case hasOne:
		s, set, d := decodeString(one)
		diags = append(diags, d...)
		if set {
			j.Providers, j.ProvidersRange = []string{s}, one.Expr.Range()
		}
	case hasMany:
		l, d := decodeStringList(many)
		diags = append(diags, d...)
		j.Providers, j.ProvidersRange = l, many.Expr.Range()
	}
	if len(j.Providers) == 0 && !diags.HasErrors() {
		diags = append(diags, errorAt(block.DefRange, "Missing JWT provider",
			`The jwt block names no provider. Write provider = "<name of a jwt_provider block>".`))
	}
	return j, diags
}

// checkServiceJWT reports a service jwt block that names an undeclared
// provider, or sits on a service that sees no requests. A gateway's
// service (gateways: the services gateways run as) sees requests on its
// gateway's HTTP listeners, whatever its protocol; checkGateways refuses
// its connection listeners instead.
func checkServiceJWT(services []*service, providers map[string]*jwtProvider, gateways map[string]bool) hcl.Diagnostics {
	var diags hcl.Diagnostics
	for _, s := range services {
		for _, rl := range s.RateLimits {
			if rl.PerJWTSubject == "" {
				continue
			}
			if _, ok := providers[rl.PerJWTSubject]; !ok {
				diags = append(diags, unknownJWTProvider(rl.PerJWTSubject, rl.PerJWTSubjectRange, providers))
			}
		}
		if s.JWT == nil {
			continue
		}
		if s.Protocol == policy.TCP && !gateways[s.Name] {
			diags = append(diags, errorAt(s.JWT.DeclRange, "JWT on a TCP service",
				fmt.Sprintf("Service %q speaks \"tcp\", so its sidecars see bytes, not requests, and cannot check tokens. "+
					"Set its protocol to \"http\", \"http2\" or \"grpc\", or remove the jwt block.", s.Name)))
		}
		for _, n := range s.JWT.Providers {
			if _, ok := providers[n]; !ok {
				diags = append(diags, unknownJWTProvider(n, s.JWT.ProvidersRange, providers))
			}
		}
	}
	return diags
}

func (j *serviceJWT) toPolicy() *policy.JWTRequirement {
	if j == nil || len(j.Providers) == 0 {
		return nil
	}
	return &policy.JWTRequirement{Providers: j.Providers}
}
