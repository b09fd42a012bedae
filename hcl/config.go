package policyhcl

import (
	"fmt"
	"sort"

	"github.com/hashicorp/hcl/v2"
	"github.com/weftmesh/weft/core/policy"
)

// config is every block of every policy file, decoded but not yet checked
// across blocks.
type config struct {
	Mesh       *mesh // nil when no file has a mesh block
	Services   []*service
	Intentions []*intention
	Externals  []*externalService // external_service blocks (external_service.go)
	JWT        []*jwtProvider     // jwt_provider.go
	Gateways   []*gateway
}

// fileSchema is the top level of a policy file.
var fileSchema = &hcl.BodySchema{
	Blocks: []hcl.BlockHeaderSchema{
		{Type: "mesh"},
		{Type: "service", LabelNames: []string{"name"}},
		{Type: "intention", LabelNames: []string{"source", "destination"}},
		{Type: "external_service", LabelNames: []string{"name"}},
		{Type: "jwt_provider", LabelNames: []string{"name"}},
		{Type: "gateway", LabelNames: []string{"name"}},
	},
}

// decodeFile adds the blocks of one file to c.
func (c *config) decodeFile(body hcl.Body) hcl.Diagnostics {
	content, diags := body.Content(fileSchema)
	for _, block := range content.Blocks {
		switch block.Type {
		case "mesh":
			m, blockDiags := decodeMeshBlock(block)
			diags = append(diags, blockDiags...)
			if c.Mesh != nil {
				diags = append(diags, &hcl.Diagnostic{
					Severity: hcl.DiagError,
					Summary:  "Duplicate mesh block",
					Detail: fmt.Sprintf("A mesh block is already declared at %s. A policy has at most one mesh block; "+
						"merge the two into one.", at(c.Mesh.DeclRange)),
					Subject: block.DefRange.Ptr(),
				})
				continue
			}
			c.Mesh = m
		case "service":
			s, blockDiags := decodeServiceBlock(block)
			diags = append(diags, blockDiags...)
			c.Services = append(c.Services, s)
		case "intention":
			in, blockDiags := decodeIntentionBlock(block)
			diags = append(diags, blockDiags...)
			c.Intentions = append(c.Intentions, in)
		case "external_service":
			e, blockDiags := decodeExternalServiceBlock(block)
			diags = append(diags, blockDiags...)
			c.Externals = append(c.Externals, e)
		case "jwt_provider":
			jp, blockDiags := decodeJWTProviderBlock(block)
			diags = append(diags, blockDiags...)
			c.JWT = append(c.JWT, jp)
		case "gateway":
			g, blockDiags := decodeGatewayBlock(block)
			diags = append(diags, blockDiags...)
			c.Gateways = append(c.Gateways, g)
		}
	}
	return diags
}

// check runs the checks that span blocks and files: duplicate services and
// references to services.
func (c *config) check() hcl.Diagnostics {
	var diags hcl.Diagnostics
	declared := map[string]*service{}
	for _, s := range c.Services {
		if prev, dup := declared[s.Name]; dup {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Duplicate service",
				Detail: fmt.Sprintf("A service %q is already declared at %s. Each service is declared once; "+
					"merge the two blocks or rename one of them.", s.Name, at(prev.DeclRange)),
				Subject: s.NameRange.Ptr(),
				Context: s.DeclRange.Ptr(),
			})
			continue
		}
		declared[s.Name] = s
	}
	// Upstreams and intentions may name external services too; the other
	// checks below name callers and mirror targets, which run sidecars.
	withExternals := make(map[string]*service, len(declared)+len(c.Externals))
	for n, s := range declared {
		withExternals[n] = s
	}
	diags = append(diags, checkExternals(c.Externals, c.Intentions, withExternals)...)
	diags = append(diags, checkUpstreamServices(c.Services, withExternals)...)
	diags = append(diags, checkIntentions(c.Intentions, withExternals)...)
	diags = append(diags, checkLimitCallers(c.Services, declared)...)
	names := make([]string, 0, len(declared))
	for n := range declared {
		names = append(names, n)
	}
	sort.Strings(names)
	diags = append(diags, checkFaultCallers(c.Services, declared, names)...)
	diags = append(diags, checkMirrors(c.Services, declared, names)...)
	providers, d := checkJWTProviders(c.JWT)
	diags = append(diags, d...)
	gatewaySvcs := make(map[string]bool, len(c.Gateways))
	for _, g := range c.Gateways {
		gatewaySvcs[g.Service] = true
	}
	diags = append(diags, checkServiceJWT(c.Services, providers, gatewaySvcs)...)
	diags = append(diags, checkLimitProtocols(c.Services, gatewaySvcs)...)
	diags = append(diags, checkPermissionJWT(c.Intentions, providers)...)
	diags = append(diags, checkGateways(c.Gateways, declared, names)...)
	diags = append(diags, checkGatewayTokens(c.Gateways, declared, c.Intentions, providers)...)
	return diags
}

// toPolicy builds the typed policy. Call it only when there are no errors.
func (c *config) toPolicy() *policy.Policy {
	m := c.Mesh
	if m == nil {
		m = defaultMesh()
	}
	p := &policy.Policy{
		Mesh:       m.toPolicy(),
		Services:   make(map[string]policy.Service, len(c.Services)),
		Intentions: make([]policy.Intention, 0, len(c.Intentions)),
	}
	for _, s := range c.Services {
		p.Services[s.Name] = s.toPolicy()
	}
	for _, e := range c.Externals {
		p.Services[e.Name] = e.toPolicy()
	}
	p.Declared = make(map[string]string, len(c.Intentions))
	for _, in := range c.Intentions {
		pi := in.toPolicy()
		p.Intentions = append(p.Intentions, pi)
		p.Declared[pi.Key()] = fmt.Sprintf("%s:%d", in.DeclRange.Filename, in.DeclRange.Start.Line)
	}
	sortIntentions(p.Intentions)
	for _, jp := range c.JWT {
		if p.JWTProviders == nil {
			p.JWTProviders = map[string]policy.JWTProvider{}
		}
		p.JWTProviders[jp.Name] = jp.JWTProvider
	}
	for _, g := range c.Gateways {
		if p.Gateways == nil {
			p.Gateways = make(map[string]policy.Gateway, len(c.Gateways))
		}
		p.Gateways[g.Name] = g.toPolicy()
	}
	return p
}
