package policyhcl

import (
	"fmt"

	"github.com/hashicorp/hcl/v2"
	"github.com/weftmesh/weft/core/policy"
)

// gatewayTLS is a decoded tls block of an https gateway listener: where
// its certificate comes from, the server names it answers for, and the
// lowest TLS version it accepts.
//
//	tls {
//	  cert_file   = "/etc/weft/public.crt" # PEM, read by the gateway on its host (again when it changes)
//	  key_file    = "/etc/weft/public.key"
//	  # mesh_certificate = true            # instead: the gateway's mesh certificate
//	  sni         = ["shop.example.com", "*.shop.example.com"]
//	  min_version = "1.2"                  # or "1.3"
//	}
type gatewayTLS struct {
	policy.GatewayListenerTLS
	DeclRange hcl.Range
}

var gatewayTLSSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "cert_file"}, {Name: "key_file"}, {Name: "mesh_certificate"}, {Name: "sni"}, {Name: "min_version"},
	},
}

func decodeGatewayTLSBlock(block *hcl.Block) (*gatewayTLS, hcl.Diagnostics) {
	t := &gatewayTLS{DeclRange: block.DefRange}
	content, diags := block.Body.Content(gatewayTLSSchema)
	var certRange, keyRange hcl.Range
	if attr, ok := content.Attributes["cert_file"]; ok {
		s, _, d := decodeString(attr)
		diags = append(diags, d...)
		t.CertFile, certRange = s, attr.Expr.Range()
	}
	if attr, ok := content.Attributes["key_file"]; ok {
		s, _, d := decodeString(attr)
		diags = append(diags, d...)
		t.KeyFile, keyRange = s, attr.Expr.Range()
	}
	if attr, ok := content.Attributes["mesh_certificate"]; ok {
		b, _, d := decodeBool(attr)
		diags = append(diags, d...)
		t.MeshCertificate = b
	}
	if attr, ok := content.Attributes["sni"]; ok {
		names, d := decodeStringList(attr)
		diags = append(diags, d...)
		for _, n := range names {
			if why := checkHostName(n); why != "" {
				diags = append(diags, errorAt(attr.Expr.Range(), "Invalid server name", fmt.Sprintf("The sni entry %q %s", n, why)))
				continue
			}
			t.SNI = append(t.SNI, n)
		}
	}
	if attr, ok := content.Attributes["min_version"]; ok {
		v, _, d := decodeEnum(attr, tlsVersions, "Invalid TLS version", "min_version")
		diags = append(diags, d...)
		t.MinVersion = v
	}
	files := t.CertFile != "" || t.KeyFile != ""
	switch {
	case t.MeshCertificate && files:
		diags = append(diags, errorAt(t.DeclRange, "Two certificates",
			"The tls block sets mesh_certificate = true and a certificate file. Choose one: the files for clients that trust a public CA, the mesh certificate for clients that trust the mesh's CA."))
	case files && t.CertFile == "":
		diags = append(diags, errorAt(keyRange, "Key without certificate", "The tls block sets key_file but no cert_file. Add cert_file, the PEM certificate chain that goes with the key."))
	case files && t.KeyFile == "":
		diags = append(diags, errorAt(certRange, "Certificate without key", "The tls block sets cert_file but no key_file. Add key_file, the PEM private key of the certificate."))
	case !files && !t.MeshCertificate:
		diags = append(diags, errorAt(t.DeclRange, "No certificate",
			"The tls block names no certificate. Set cert_file and key_file (PEM files on the gateway's host), or mesh_certificate = true to serve the gateway's mesh certificate."))
	}
	return t, diags
}
