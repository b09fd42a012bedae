// Package jobspec expands the weft stanza of a Nomad job file into the
// plain job Nomad runs: `weft nomad render JOBFILE` prints the result and
// `weft nomad run JOBFILE` submits it.
//
// Entry point: Render, a pure function from a job file's bytes to the
// plain job's bytes, with diagnostics that carry file:line ranges. A job
// without a weft block comes back byte for byte. ReadFile reads a job file
// within MaxJobFileBytes (4 MiB: jobs carry templates, but none that
// large); Render refuses, before parsing, a source past that or nested
// more than MaxJobFileDepth levels (see hcl/hcllimit), and evaluates no
// for expression.
//
// # The stanza
//
// Inside a group:
//
//	weft {
//	  service      = "api"   # default: the group's name
//	  port         = "app"   # label of the app's port in the group's network; default "app"
//	  network_mode = "host"  # opt out of bridge networking (no isolation); default "bridge"
//	  app_port     = 8080    # bridge: the app's port inside the allocation (default: the
//	                         # to of the app's port block, else 8080)
//
//	  proxy_mode   = "node"  # served by the node proxy, no sidecar task; default "instance"
//
//	  upstream "store" {     # the app calls store at NOMAD_ADDR_upstream_store
//	    local_port = 9002    # bridge: required, 127.0.0.1:9002 inside the allocation;
//	  }                      # host: optional, a static port (one allocation per node),
//	                         # else a Nomad-allocated port
//
//	  sidecar {              # all optional; the command line's flags give the defaults
//	    command      = "/usr/local/bin/weft-proxy"
//	    driver       = "raw_exec"           # or exec
//	    controller   = ["10.0.0.5:7400", "10.0.0.6:7400", "10.0.0.7:7400"] # every replica
//	    trust_bundle = "/etc/weft/ca.crt"
//	    cpu          = 50
//	    memory       = 64
//	    kill_timeout = "5s"                 # time to drain in-flight requests
//	  }
//	}
//
// Render removes the stanza and adds to the group: shutdown_delay = "2s"
// unless the group sets one (so that callers stop sending to a stopping
// allocation before its app stops: updates lose no request); a service
// block (provider = "nomad") for the service, unless the group already has
// one of that name; the sidecar task weft-proxy, a prestart sidecar with
// identity { env = true } that joins with its workload identity
// (--credential-adapter nomad); and, per network mode:
//
// Bridge (the default): mode = "bridge" in the network block and the port
// mesh { to = 15001 }, the sidecar's inbound, published on the node. Every
// port block of a bridge network is published, so the app's port block is
// removed (a static port on it is an error) and upstreams get none; other
// port blocks the group declares stay, and stay published (an edge's
// public port, say). The app listens on 127.0.0.1:<app port> inside the
// allocation; every task's env gets NOMAD_IP_, NOMAD_PORT_ and
// NOMAD_ADDR_ of the app's label and of upstream_<name> (dashes become
// underscores) pointing there, so that config args such as
// "${NOMAD_ADDR_app}" work unchanged (an env value that interpolates
// another env variable of the same block is resolved in no fixed order by
// Nomad: write such values literally); the service advertises the app's
// port inside, with a tag weft_upstream_<name>=<local_port> per upstream;
// the sidecar's admin API is 127.0.0.1:15000 inside the allocation. The
// client nodes need the CNI plugins and root (examples/nomad/README.md).
//
// Host (network_mode = "host"): the ports mesh, weft_admin and
// upstream_<name> in the network block, and env NOMAD_IP_ = 127.0.0.1 and
// NOMAD_ADDR_ = 127.0.0.1:${NOMAD_PORT_...} for the app's label and the
// upstreams (the sidecar binds its outbound listeners and reaches the app
// on 127.0.0.1, never on the node's address). Render warns "Isolation is
// off" and writes a comment saying so into the group.
//
// Node (proxy_mode = "node" in the stanza, or a service the policy puts in
// node mode: Defaults.ProxyMode, `weft nomad render --policy DIR`; the two
// must agree where both say): no sidecar task; the group keeps host
// networking (network_mode = "bridge" is an error) with the ports mesh and
// upstream_<name>, and the service gets the tag weft_proxy_mode=node, by
// which the node proxy of each allocation's node serves it (node.go). A
// sidecar block is an error; "application" is refused (not on Nomad yet).
// NodeProxyJob writes that node proxy's system job (`weft nomad render
// --node-proxy`): job meta weft_proxy = "node", a weft-proxy --node task
// joining with its workload identity.
//
// These are the conventions the nomad adapter reads (see adapters/nomad).
//
// The upstream's protocol is the policy's (service blocks in the policy
// files), not the job's: the stanza has no protocol.
package jobspec
