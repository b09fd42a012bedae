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
// be spread across files in any way. The top-level block types are mesh,
// service and intention (below), external_service (see External services
// and egress), jwt_provider (end-user tokens, jwt_provider.go) and
// gateway (an ingress gateway, gateway.go).
// Each block type is decoded in its own file of this package, named after
// its path (service.route.retry.go decodes service > route > retry).
//
//	mesh {
//	  trust_domain     = "weft.local" # optional, a DNS name; default "weft.local"
//	  default_action   = "deny"       # optional, allow | deny; default "deny"
//	  identity_binding = "strict"     # optional, strict | permissive; default "strict"
//
//	  tracing {                         # optional: spans for every HTTP/gRPC hop (mesh.tracing.go)
//	    endpoint      = "127.0.0.1:4317" # required: the OTLP collector's host:port
//	    protocol      = "grpc"           # optional, grpc | http; default "grpc"
//	    sampling      = 0.01             # optional, 0 to 1: new traces recorded; default 1
//	    service_name  = "{service}"      # optional, with {service}, {namespace}; default "{service}"
//	    max_batch     = 512              # optional, 1-8192; default 512
//	    max_queue     = 2048             # optional, max_batch-65536; default 2048
//	    batch_timeout = "5s"             # optional, 10ms-1m; default "5s"
//	  }
//	}
//
//	service "api" {                 # the label is a DNS label
//	  namespace = "default"         # optional, a DNS label; default "default"
//	  protocol  = "http"            # optional, tcp | http | http2 | grpc; default "tcp"
//
//	  # Who may serve this service: the scheduler workloads whose instances
//	  # get its identity (spiffe://<trust-domain>/ns/<namespace>/svc/api)
//	  # and its callers' traffic. One block per workload; any may match.
//	  binding "nomad" {
//	    namespace = "shop"          # required: the job's Nomad namespace
//	    job       = "api"           # required: the job ID
//	    group     = "web"           # optional: one task group ("*" or left out: any)
//	    task      = "app"           # optional: the task of a task-level service ("*" or left out: any)
//	  }
//	  binding "kubernetes" {
//	    namespace       = "shop"    # required: the pod's namespace
//	    service_account = "api"     # required: spec.serviceAccountName ("default" when unset)
//	  }
//	  binding "mesos" {             # one or more of (all given must match):
//	    principal      = "api"      #   the framework's authenticated principal (prefer this)
//	    role           = "shop"     #   the framework's role, when it has exactly one
//	    framework_name = "marathon" #   the name the framework registered with
//	  }
//	  binding "local" { name = "api" } # the local workloads file's service block label
//
//	  upstream "store" {            # names a service declared with a service block
//	    local_port = 9101           # required, 1-65535, unique within the service
//	    lb         = "ring_hash"    # round_robin (default) | least_request | random | ring_hash | maglev
//	    hash { header = "x-user" }  # ring_hash and maglev: header, cookie or source_identity = true
//	  }
//
//	  # What callers of this service get (applied in each caller's sidecar):
//	  subset "v2" { meta = { version = "v2" }  tags = ["canary"] }
//	  timeouts { connect = "2s"  request = "10s"  idle = "5m"  stream = "1m" }
//	  circuit_breaker { max_connections = 100  max_requests = 50  max_pending = 10  max_retries = 3 }
//	  outlier_detection {
//	    consecutive_5xx = 5  consecutive_gateway_errors = 5  consecutive_local_failures = 3
//	    interval = "10s"  base_ejection_time = "30s"  max_ejected_percent = 50
//	    success_rate { minimum_hosts = 5  request_volume = 100  stdev_factor = 1.9 }
//	  }
//	  route "canary" {              # routes are tried in order; the first that matches wins
//	    match {                     # any match block may hold; none: every request
//	      path_prefix = "/api/"     # or path, path_regex (RE2, whole path); or grpc_service/grpc_method
//	      methods     = ["GET"]
//	      header "x-canary" { exact = "1" }   # exact | prefix | regex | present = true; invert = true
//	      query "debug" { present = true }
//	    }
//	    split "v2" { weight = 10 }  # weights add up to 100; none: the whole service. A split
//	    split "v1" { weight = 90 }  # whose subset has no instances gives its share to the others
//	    retry {
//	      attempts = 3  per_try_timeout = "500ms"
//	      on = ["5xx", "gateway-error", "reset", "connect-failure", "unavailable", ...]
//	      budget { percent = 20  min_per_second = 10 }
//	    }
//	    timeouts { request = "2s"  stream = "30s" }
//	    request_headers  { add = { ... }  set = { ... }  remove = [...] }
//	    response_headers { add = { ... }  set = { ... }  remove = [...] }
//	    fault { delay = "100ms"  delay_percent = 10  abort_status = 503  abort_percent = 1  callers = ["web"] }
//	    mirror "api-next" { percent = 10 }
//	  }
//
//	  # What this service's own sidecars enforce on the way in:
//	  rate_limit "search" {
//	    requests_per_second = 10  burst = 20  per_caller = true  callers = ["web"]
//	    scope = "local"   # "global": across every instance (docs/global-rate-limits.md)
//	    match { path_prefix = "/search" }
//	  }
//	  connection_limit { max = 1000  max_per_caller = 100 }
//
//	  # What this service's own sidecars check of their application:
//	  health_check {
//	    http = "/healthz"           # exactly one of http (a path), grpc = true or
//	                                # grpc = "pkg.Service" (grpc.health.v1), tcp = true
//	    expect_status = 200         # http only; default any 2xx
//	    interval = "2s"  timeout = "1s"   # 100ms-10m (default 10s); 10ms up to the interval (default 2s)
//	    unhealthy_threshold = 2  healthy_threshold = 1   # 1-10 each; defaults 2 and 1
//	  }
//	}
//
//	intention "frontend" "api" {    # source, destination; either may be "*"
//	  action = "allow"              # allow | deny; or, instead, permission blocks:
//	}
//	intention "ops/monitor" "api" { action = "allow" } # a service of another namespace
//	intention "ops/*" "api" { action = "deny" }        # every service of namespace ops
//	intention "web" "api" {
//	  permission {                  # tried in order; the first whose match holds decides;
//	    action = "deny"             # a request none matches gets the default action
//	    match { methods = ["DELETE"] }
//	  }
//	}
//
// Values are literals: variables and function calls are rejected. The
// doc comment of each block's decoded type (route, retry, fault, ...)
// says what its attributes mean and what they default to.
//
// # Identity binding
//
// A service name alone is not an identity: any Nomad job can register a
// service called "catalog". So a service says which scheduler workloads
// may serve it, with binding blocks, matched against what the scheduler
// reports for each instance (model.Instance.Workload), never against what
// the instance claims. Values are matched exactly, case included; "*" is
// allowed only for a Nomad binding's group and task (inside one job, whose
// author controls both), never for a namespace, job, service account,
// principal, role or name, because those are where schedulers draw their
// access lines.
//
// identity_binding = "strict" (the default): an instance whose workload
// no binding of its service names gets no certificate (Join and Renew are
// refused, naming the workload and the binding block to add), is in no
// caller's endpoint set, and is listed in the controller's status as
// skipped with reason "unbound workload". A service with no binding at all
// is an error ("Service without binding", at the service block, with
// blocks to add for each scheduler). identity_binding = "permissive" keeps
// the behaviour from before bindings, for a migration: unbound workloads
// are served, the controller logs and lists each of them as a warning, and
// a service without binding is a warning. The binding check runs only on
// an otherwise valid policy, so it never buries another error.
//
// # External services and egress
//
// The top-level block external_service (external_service.go and
// external_service.tls.go) declares a destination outside the mesh:
//
//	mesh { egress = "deny" }         # optional, allow | deny; default "allow"
//
//	external_service "payments" {    # the label names it in upstreams and intentions
//	  host     = "api.payments.example" # required: DNS name (or IP); the Host header sent
//	  address  = "203.0.113.7"       # optional: where to connect; default the host
//	  port     = 443                 # required
//	  protocol = "http"              # optional, tcp | http | http2 | grpc; default "tcp"
//	  tls {                          # optional: the caller's sidecar originates TLS
//	    ca_file     = "payments-ca.pem" # required: PEM CAs, read when the policy loads
//	                                    # (relative to this file; at most 1 MiB, 512 certificates)
//	    sni         = "api.payments.example" # optional: server name sent and verified; default the host
//	    cert_file   = "/etc/weft/pay.pem"    # optional client certificate: absolute paths on each
//	    key_file    = "/etc/weft/pay-key.pem" # caller's host, read by its sidecar at each handshake
//	    min_version = "1.2"          # optional, 1.2 | 1.3; default "1.2"
//	  }
//	}
//	service "web" { upstream "payments" { local_port = 9100 } }
//	intention "web" "payments" { action = "allow" }   # or permission blocks, for http
//
// A caller reaches it like any service, through an upstream (the app calls
// its local port in plain HTTP or TCP); the caller's sidecar decides the
// intentions to the external service itself (the destination runs no
// sidecar), then connects to address:port, verifies the server's chain
// against ca_file and its name against sni (or the host), and sends the
// declared host as the Host header whatever the app sent. A server whose
// certificate comes from another CA is refused with 502 and the reason.
// An external service shares the names of services, lives in the default
// namespace, is never bound to a workload (no instance gets its
// identity), and may not be an intention's source. http2 and grpc need a
// tls block (ALPN h2). Without tls the bytes go out as they are.
//
// egress = "deny" goes to every sidecar (ProxyConfig.egress, with the
// external services it calls). A sidecar never carries traffic to an
// undeclared destination in either mode (there is no listener for one);
// what stops the app from connecting out directly is the isolation of
// its scheduler: the local adapter's guard with its option egress = deny
// (adapters/local), a network namespace with no route out otherwise.
//
// # Intention sources and namespaces
//
// An intention's source names callers by namespace and service, within
// the mesh's trust domain (a caller from another trust domain never
// matches, whatever the source or default says):
//
//   - "web": service web in the destination service's namespace. A bare
//     source to a destination in another namespace than its own service
//     block's is an error, since it would match nothing; write "ns/web".
//   - "ns/web": service web in namespace ns (it must be the namespace its
//     service block gives).
//   - "ns/*": every service of namespace ns.
//   - "*": every service of every namespace of the trust domain.
//   - "*/web" is refused: anyone who can create a namespace can run a
//     service called web in it.
//
// The destination is a service name (or "*"); its namespace is its service
// block's. The most specific source wins (a service over a namespace over
// "*"), then the most specific destination; among equals deny wins.
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
//     destination, then exact source, then a namespace's "ns/*", then
//     exact destination, then "*" to "*"), then by source and
//     destination, so equal policies compile to equal values. Upstreams
//     keep their declaration order. "web" and "default/web" to a
//     destination in "default" are the same intention (a duplicate).
//   - Cross-reference checks (unknown services, duplicates across files)
//     run only when every file parsed, so a block lost to a syntax error does
//     not cause a cascade of unknown-service errors.
//   - Routes, subsets, timeouts, circuit breakers, outlier detection,
//     faults and mirrors belong to the destination service and are
//     compiled into every caller's upstream, as in Consul's service-router
//     and service-resolver; load balancing stays on the caller's upstream
//     block. Rate and connection limits are enforced, and the health_check
//     is run, by the destination's own sidecars.
//   - Split weights are percentages and must add up to 100; a route after
//     one that matches every request is an error (it could never apply).
//   - Retries default to 2 attempts on connect-failure, reset,
//     gateway-error and unavailable, with a budget of 20% plus 10 a
//     second. A per-try timeout not below the route's request timeout is
//     an error.
//   - An intention has either an action or permissions, and permissions
//     need a single HTTP-speaking destination.
//   - Files whose names begin with "." or "#" are skipped in directories
//     (editor swap and lock files); directories are not searched
//     recursively.
//
// # Limits
//
// Before anything is parsed, Load checks each file against limits a real
// policy never meets (limits.go) and refuses the whole policy, with a
// diagnostic naming the file, the limit and, for nesting, the line, when
// one is crossed; a running controller then keeps its last good policy:
//
//   - MaxFileBytes, 1 MiB per file, read through an io.LimitReader of the
//     limit plus one byte so a huge file is never read whole. A service
//     block with a route is a few hundred bytes: a file of 1 MiB is
//     thousands of services.
//   - MaxTotalBytes, 4 MiB for the whole policy. The parser and the
//     decoder take up to a few hundred bytes of memory per byte of
//     dense input (tokens, syntax tree, values); 4 MiB of the densest
//     input costs the controller a few hundred MB for a few seconds while
//     it is refused, and 4 MiB of real policy is tens of thousands of
//     services.
//   - MaxFiles, 1000 files.
//   - MaxDepth, 64 levels of nesting, counted by a pre-scan of the bytes
//     (hcl/hcllimit) that knows HCL's strings, heredocs, templates and
//     comments: blocks, brackets, parentheses, strings and template
//     sequences and directives, and chains of operators within one
//     expression. A policy nests six or seven levels; HCL's parser
//     recurses per level and a Go stack overflow cannot be recovered, so
//     a 240 KB file of "[" used to end the controller.
//
// Values are literals, so no function can be called; for expressions and
// template for directives, which multiply into billions of values in a
// few lines, are refused before evaluation; a number far out of range is
// reported without being written out (formatting 1e99999999 takes
// minutes). At most 100 diagnostics are kept per file.
package policyhcl
