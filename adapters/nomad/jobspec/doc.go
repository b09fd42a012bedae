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
//	  service = "api"        # default: the group's name
//	  port    = "app"        # label of the app's port in the group's network; default "app"
//
//	  upstream "store" {}    # the sidecar listens for store on a Nomad-allocated port,
//	                         # NOMAD_PORT_upstream_store (the app reads NOMAD_ADDR_upstream_store)
//	  upstream "db" {
//	    local_port = 9003    # or on a fixed port: a static port, one allocation per node
//	  }
//
//	  sidecar {              # all optional; the command line's flags give the defaults
//	    command      = "/usr/local/bin/weft-proxy"
//	    driver       = "raw_exec"           # or exec
//	    controller   = ["10.0.0.5:7400"]
//	    trust_bundle = "/etc/weft/ca.crt"
//	    cpu          = 50
//	    memory       = 64
//	    kill_timeout = "5s"                 # time to drain in-flight requests
//	  }
//	}
//
// Render removes the stanza and adds to the group: shutdown_delay = "2s"
// unless the group sets one (so that callers stop sending to a stopping
// allocation before its app stops: updates lose no request); the ports mesh,
// weft_admin and upstream_<name> (dashes in name become underscores) in
// its network block; a service block (provider = "nomad") for the service
// on the app port, unless the group already has one of that name; and the
// sidecar task weft-proxy, a prestart sidecar with identity { env = true }
// that joins with its workload identity (--credential-adapter nomad).
// These are the conventions the nomad adapter reads (see adapters/nomad).
//
// The upstream's protocol is the policy's (service blocks in the policy
// files), not the job's: the stanza has no protocol.
package jobspec
