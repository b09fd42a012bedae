// Package policyhcl is Weft's policy language: it reads HCL policy files,
// decodes and validates them, and compiles them into the typed policy model
// of core/policy.
//
// Entry point: Load. The data flow is one way:
//
//	*.hcl files --> Load --> *policy.Policy --> core/compile --> proxy configs
//
// core/ never imports this package; the controller and the weft CLI do.
// Diagnostics keep the source range of every construct they complain about,
// so WriteDiagnostics (and any other renderer) can show the file, line and
// offending text.
//
// # Language
//
// A policy is every *.hcl file of the paths given to Load, merged; blocks may
// be spread across files in any way. There are three block types, each
// decoded in its own file of this package (mesh.go, service.go,
// service.upstream.go, intention.go):
//
//	mesh {
//	  trust_domain   = "weft.local" # optional, a DNS name; default "weft.local"
//	  default_action = "deny"       # optional, allow | deny; default "deny"
//	}
//
//	service "api" {                 # the label is a DNS label
//	  namespace = "default"         # optional, a DNS label; default "default"
//	  protocol  = "http"            # optional, tcp | http | http2 | grpc; default "tcp"
//
//	  upstream "store" {            # names a service declared with a service block
//	    local_port = 9101           # required, 1-65535, unique within the service
//	    lb         = "least_request" # optional, round_robin | least_request; default round_robin
//	  }
//	}
//
//	intention "frontend" "api" {    # source, destination; either may be "*"
//	  action = "allow"              # required, allow | deny
//	}
//
// Values are literals: variables and function calls are rejected.
//
// # Choices
//
//   - At most one mesh block; without one the defaults apply.
//   - Load rejects a path list that yields no policy file at all, because an
//     empty policy under default deny would cut every connection.
//   - A service may name itself as an upstream (replicas of a store talking
//     to each other, for example). Under default deny it still needs an
//     intention from itself to itself.
//   - An upstream inherits the protocol of the service it names; a caller
//     and its upstream may speak different protocols.
//   - Only one intention may exist for a given source and destination pair,
//     whatever its action; a second one is an error rather than a silent
//     override.
//   - Intentions are sorted most specific first (exact source and
//     destination, then exact source, then exact destination, then "*" to
//     "*"), then by source and destination, so equal policies compile to
//     equal values. Upstreams keep their declaration order.
//   - Cross-reference checks (unknown services, duplicates across files)
//     run only when every file parsed, so a block lost to a syntax error does
//     not cause a cascade of unknown-service errors.
//   - Files whose names begin with "." or "#" are skipped in directories
//     (editor swap and lock files); directories are not searched
//     recursively.
package policyhcl
