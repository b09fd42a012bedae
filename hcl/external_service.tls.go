package policyhcl

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/hashicorp/hcl/v2"
	"github.com/weftmesh/weft/core/inputlimit"
	"github.com/weftmesh/weft/core/policy"
)

// MaxCAFileBytes bounds a ca_file: a bundle of a few hundred certificates.
const MaxCAFileBytes = 1 << 20

// maxCACerts bounds how many certificates a ca_file may hold.
const maxCACerts = 512

// externalTLS is a decoded tls block of an external_service: TLS
// origination by the callers' sidecars.
//
//	tls {
//	  ca_file     = "ca.pem"        # required: the CAs the server's chain must lead to
//	  sni         = "api.example"   # optional: server name sent and verified (default: host)
//	  cert_file   = "/etc/weft/client.pem"   # optional client certificate, on each caller's host
//	  key_file    = "/etc/weft/client-key.pem"
//	  min_version = "1.3"           # optional: "1.2" (default) or "1.3"
//	}
//
// The controller reads ca_file when it loads the policy (a path relative to
// the policy file), so a missing or bad file is a policy error; the client
// certificate's files are read by each sidecar, so the key never leaves
// its host.
type externalTLS struct {
	policy.ExternalTLS
	DeclRange hcl.Range
}

var externalTLSSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "ca_file", Required: true},
		{Name: "sni"},
		{Name: "cert_file"},
		{Name: "key_file"},
		{Name: "min_version"},
	},
}

var tlsVersions = []string{"1.2", "1.3"}

func decodeExternalTLSBlock(block *hcl.Block) (*externalTLS, hcl.Diagnostics) {
	t := &externalTLS{DeclRange: block.DefRange}
	content, diags := block.Body.Content(externalTLSSchema)
	if attr, ok := content.Attributes["ca_file"]; ok {
		s, set, d := decodeString(attr)
		diags = append(diags, d...)
		if set {
			path := s
			if !filepath.IsAbs(path) && attr.Range.Filename != "" {
				path = filepath.Join(filepath.Dir(attr.Range.Filename), path)
			}
			t.CAFile = path
			pemBytes, why := readCAFile(path)
			if why != "" {
				diags = append(diags, errorAt(attr.Expr.Range(), "Invalid CA file",
					fmt.Sprintf("The ca_file %q %s. Give a PEM file of the CA certificates that the external service's certificate chain leads to "+
						"(a relative path is read from the directory of this policy file).", path, why)))
			}
			t.CAPEM = pemBytes
		}
	}
	if attr, ok := content.Attributes["sni"]; ok {
		s, set, d := decodeString(attr)
		diags = append(diags, d...)
		if set {
			if why := checkHost(s); why != "" {
				diags = append(diags, errorAt(attr.Expr.Range(), "Invalid SNI",
					fmt.Sprintf("The sni %q %s. Give the DNS name the server's certificate is for.", s, why)))
			}
			t.SNI = s
		}
	}
	for _, name := range []string{"cert_file", "key_file"} {
		attr, ok := content.Attributes[name]
		if !ok {
			continue
		}
		s, set, d := decodeString(attr)
		diags = append(diags, d...)
		if set && !filepath.IsAbs(s) {
			diags = append(diags, errorAt(attr.Expr.Range(), "Relative client certificate path",
				fmt.Sprintf("The %s %q is read by each caller's sidecar on its own host, not by the controller, so it must be an absolute path.", name, s)))
		}
		if name == "cert_file" {
			t.CertFile = s
		} else {
			t.KeyFile = s
		}
	}
	if (t.CertFile == "") != (t.KeyFile == "") && !diags.HasErrors() {
		diags = append(diags, errorAt(block.DefRange, "Client certificate without its key",
			"A client certificate needs both cert_file and key_file; give both, or neither."))
	}
	if attr, ok := content.Attributes["min_version"]; ok {
		v, set, d := decodeEnum(attr, tlsVersions, "Invalid TLS version", "TLS version")
		diags = append(diags, d...)
		if set {
			t.MinVersion = v
		}
	}
	return t, diags
}

// readCAFile reads a PEM bundle of CA certificates, bounded in size and
// count; it returns the PEM of the certificates alone, or why not.
func readCAFile(path string) ([]byte, string) {
	src, err := inputlimit.ReadFile(path, MaxCAFileBytes)
	var tooLarge *inputlimit.TooLargeError
	switch {
	case errors.As(err, &tooLarge):
		return nil, fmt.Sprintf("is larger than %s", inputlimit.Bytes(MaxCAFileBytes))
	case err != nil:
		return nil, fmt.Sprintf("cannot be read (%v)", err)
	}
	var out []byte
	n := 0
	for rest := src; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		if n++; n > maxCACerts {
			return nil, fmt.Sprintf("holds more than %d certificates", maxCACerts)
		}
		if _, err := x509.ParseCertificate(b.Bytes); err != nil {
			return nil, fmt.Sprintf("holds certificate %d, which does not parse (%v)", n, err)
		}
		out = append(out, pem.EncodeToMemory(b)...)
	}
	if n == 0 {
		return nil, "holds no PEM certificate"
	}
	return out, ""
}
