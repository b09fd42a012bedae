// Package local is the local adapter: it runs the services of a workloads
// file as plain processes on the loopback interface, each instance with a
// weft-proxy sidecar beside it, and reports them to the controller. It is
// the built-in default, what `weft controller --adapter local=FILE` runs
// for anyone trying Weft on a laptop, and the reference adapter for plugin
// authors: every other adapter follows its shape.
//
// Entry point: New, which returns an Adapter (plugins.Adapter and
// io.Closer). `weft adapter local` serves it over go-plugin with
// plugins/sdk; tests use it in memory.
//
// # Where things are
//
//   - workloads.go: the workloads file's schema and decoding, with
//     diagnostics that name file:line:col.
//   - plan.go: from a decoded file to one spec per instance (address,
//     command line, environment, sidecar command line).
//   - runner.go: process supervision: start, adopt, restart with backoff,
//     stop.
//   - state.go: the state file, address assignment and adoption checks.
//   - workloads_check.go, checker.go: a service's check block, and the
//     probes the adapter runs against each instance's app.
//   - translate.go: translate(state) (snapshot, diagnostics), the pure
//     function from the runner's state to the snapshot, which most tests
//     hit and the adapter's sdk.Loop runs on every change.
//   - guard.go: the isolation guard's nftables rules, gids and probes of
//     the sidecars' outbound listeners; isolation.go: how the adapter
//     drives it.
//   - adapter.go: the sdk.Adapter: Info (with the option schema),
//     Configure (options read with sdk.ParseOptions), Watch (the runner's
//     changes drive an sdk.Loop), Close.
//
// # The workloads file
//
// ConfigureRequest.Source is the path of an HCL file of service blocks:
//
//	service "api" {
//	  command   = "../../bin/weft-demo-app" # relative to this file's directory, or a name in PATH
//	  args      = ["--name", "api"]         # optional
//	  env       = { STORE_URL = "http://${HOST}:9002" } # optional
//	  instances = 2                         # 1 to 100, default 1
//	  port      = 8080                      # where the app listens on its instance address
//	  namespace = "default"                 # optional
//	  service   = "api"                     # optional: the service it serves; default the label
//	  meta      = { version = "v1" }        # optional, for subsets
//	  tags      = ["demo"]                  # optional
//	  proxy_mode = "sidecar"                # optional: "node" (the node proxy) or "application" (one proxy per service)
//	  check {                               # optional, at most one
//	    http     = "/healthz"               # GET on the app's address:port must answer 2xx
//	    # tcp    = true                     # or: a connection to the app's port must open
//	    interval = "1s"                     # 100ms to 1h, default 1s
//	    timeout  = "1s"                     # at most the interval, default 1s (or the interval)
//	  }
//	}
//
// The block's label names the workload: every instance reports
// Workload{scheduler: "local", name: <label>}, which policy binds to a
// service with binding "local" { name = "<label>" }. The instances serve
// the service of the same name unless `service` names another, so two
// blocks may serve one service and policy decides which of them may.
//
// Instances are named <label>-<index> ("api-0", "api-1"). Apps run in
// the file's directory with the adapter's environment plus HOST (the
// instance address), PORT, WEFT_SERVICE, WEFT_INSTANCE, WEFT_NAMESPACE and
// the file's env. Values in args and env may use ${HOST}, ${PORT},
// ${WEFT_SERVICE}, ${WEFT_INSTANCE} and ${WEFT_NAMESPACE}, expanded per
// instance; write $${ for a literal ${. ${HOST} matters for upstreams:
// a sidecar listens for its app's upstreams on the instance's own address,
// so an app reaches upstream "api" at http://${HOST}:<local_port>, not at
// 127.0.0.1.
//
// The file may be at most 1 MiB and nest at most 64 levels deep (blocks,
// brackets, strings, templates, operator chains; hcl/hcllimit counts
// them), checked before it is parsed; for expressions and template for
// directives are refused before anything is evaluated. A file past a
// limit is an error like any other, with the file, the line and the limit.
//
// The file is re-read every half second. A changed file is applied
// (instances added, removed, restarted when their command line or
// environment changed); a file with errors is not: the last good
// instances keep running and the errors are sent with every snapshot.
//
// # Addresses and ports
//
// Every instance gets a loopback address of its own, so that all of them
// can use the same app port and the same upstream ports: 127.0.0.2,
// 127.0.0.3, ... in the order of service name, then index (the option
// first_address moves the start). On the address, the app listens on
// `port`, the sidecar's mesh port on 15001 and its admin API on 15000.
// Configure checks that these can be bound and names address:port if not.
// Linux routes all of 127.0.0.0/8 to lo; macOS answers only 127.0.0.1
// until each address is aliased, for example
// `sudo ifconfig lo0 alias 127.0.0.2 up`.
//
// # Processes
//
// Watch starts the instances on its first call. Each instance runs two
// processes, the app and the sidecar
//
//	<ProxyBinary> --instance <id> --controller <addr>... \
//	  --trust-bundle <DataDir>/trust-bundle.pem --admin <address>:15000 \
//	  --data-dir <DataDir>/proxy/<id>
//
// with WEFT_SERVICE, WEFT_INSTANCE, WEFT_NAMESPACE and a fresh
// single-use join token in WEFT_JOIN_TOKEN (never on the command line).
// Both inherit the adapter's environment minus what go-plugin set for the
// adapter (WEFT_PLUGIN, PLUGIN_*). Each runs in a process group of its own
// (so it outlives the adapter and is stopped as a whole), logging to
// <DataDir>/logs/<id>.app.log and <id>.proxy.log. A process that exits is
// started again after a backoff (250ms doubling to 15s, reset after 10s of
// running); a restarted sidecar gets a new join token. A snapshot with
// every declared instance is sent on every change (of a process, or of a
// check's status).
//
// # The node proxy
//
// A service with proxy_mode = "node" gets no sidecars: one weft-proxy
// --node process (nodeproxy.go) serves every node-mode instance of the
// file, each with its own identity, listeners on its own address (mesh
// port 15001, admin 15000, the upstreams' local ports), configuration and
// metrics, and joins for each with a node token that the controller
// honours only for instances this adapter places on its node (option
// node; model.Instance.Node). Its instances and the token are in its serve
// file, <DataDir>/proxy/_node.serve.json (weft-proxy --serve-file), which
// the adapter writes again, with a fresh token, when a node-mode instance
// is added, removed or changes its identity: the proxy takes the change
// without restarting. Its log is <DataDir>/logs/_node.proxy.log. Each
// instance reports its mode in Meta["weft_proxy_mode"] ("node",
// "application"), where the controller compares it with the policy's
// proxy_mode.
//
// A service with proxy_mode = "application" gets one such process for its
// application (namespace and service), shared by its instances and by no
// other service's: <DataDir>/logs/_app.<namespace>.<service>.proxy.log. It
// joins with an application token, a node token narrowed to that service,
// which the controller honours only for that application's instances on
// this node. Under the guard a shared proxy runs with the sidecar group of
// the first instance it serves (which has no sidecar), and each instance
// it serves admits that group to its app port in place of a sidecar's, so
// node-mode and application-mode instances are guarded like the others.
// docs/deployment-models.md has the design and its limits.
//
// # Health
//
// An instance is
//
//   - critical while its app process does not run (exited, waiting out
//     its restart backoff) or its sidecar does not run (no caller can be
//     served without it);
//   - critical, for a service with a check block, until the check has
//     passed once after the app (re)started, and whenever its last probe
//     failed: an HTTP check fails on any status but 2xx (redirects are not
//     followed), a refused or reset connection, or no answer within the
//     timeout; a TCP check when the connection does not open within it.
//     The adapter probes every interval, starting when the app runs, so a
//     failing app leaves every caller's endpoints within about one
//     interval; the instance's label "check" says none (no result yet),
//     passing or failing, and the adapter's log says why a check fails;
//   - passing otherwise. Never warning or unknown.
//
// Probes go to the instance's address and app port from the adapter
// itself. With the guard on, they connect as the group of the instance's
// proxy, its sidecar or its shared proxy (the only group besides the app's
// that the guard lets reach the app's port); the adapter's own group is
// refused there like any other.
//
// # Isolation: the guard
//
// An app must be reachable only through its sidecar: a local process that
// could connect to an app's port directly would skip mTLS and policy and
// could send a forged X-Weft-Caller, and one that could connect to an
// instance's outbound (upstream) ports would call upstreams as that
// service. Run as root on Linux with nft installed (Debian: nftables), the
// adapter enforces it in the kernel, and reports Isolation "guard" for
// every instance; otherwise it reports "none", and says so loudly: a
// warning with every snapshot (in the controller's log), a log line per
// instance in the controller, and NONE in the ISOLATION column of
// `weft status`. `weft check`, run on the node, probes every port.
//
// How: every app and every sidecar runs with a group of its own (the
// adapter's uid, no supplementary groups). For the instance at 127.A.B.C,
// with n = A<<16 | B<<8 | C, the app's gid is 2000000000 + 2n and the
// sidecar's 2000000000 + 2n + 1: from 2000000000 to 2033554431, above the
// groups of /etc/group and usual directory services, below 2^31, and the
// same in every run, so adopted processes keep theirs (a process of an
// earlier run with another gid is replaced, not adopted). A group of
// /etc/group in that range draws a warning. The adapter
// keeps one nftables table, inet weft_local_<its pid>, with a chain on the
// output hook, which every loopback connection passes with the connecting
// socket's gid (meta skgid). For each instance, the first packet of a TCP
// connection (SYN without ACK)
//
//   - to its address and app port is rejected with a TCP reset unless it
//     comes from the app's or the sidecar's gid;
//   - to its address and any other port but the sidecar's mesh and admin
//     ports is rejected unless it comes from the app's gid. The address is
//     the instance's alone, so those ports are its sidecar's outbound
//     listeners (whichever ports the policy gives them, guarded from the
//     moment they open: the adapter needs no knowledge of the policy) and
//     any other port the app opens.
//
// Nothing else matches: not other addresses, not the mesh and admin ports
// (they stay open: the mesh port refuses strangers itself), not
// established connections. The table is
// replaced in one `nft -f` transaction whenever the instances change:
// before new processes start, so an app port is never open, and only after
// the processes of a removed instance have stopped; it is deleted by Close
// after every process has stopped. A table whose adapter
// is dead is deleted by the next adapter's first transaction (its
// processes stay guarded until then). A failed apply is retried every
// quarter second, and the instances report isolation none meanwhile.
//
// What it does not protect against: root, or any process with
// CAP_NET_ADMIN or CAP_SETGID, which can join a group or flush the table;
// the apps themselves run as the adapter's user, so as root, which makes
// the guard a fence against other users' processes and against mistakes,
// not against a compromised app. It covers TCP to the instance's address
// only: an app that listens on every address (0.0.0.0) is reachable on
// 127.0.0.1 and others unguarded, so apps must listen on ${HOST}; UDP is
// not covered.
//
// Options (--adapter-option local.KEY=VALUE):
//
//   - isolation = "guard" (the default) or "none": none installs no rules
//     and reports none for every instance, for tests that call through a
//     sidecar as if they were its app.
//   - edge = "frontend,admin": services whose app port is open on purpose,
//     for a browser or curl on this machine (the demo's frontend). Their
//     outbound ports stay guarded; they report isolation none.
//   - node = "<name>": the node this adapter places every instance on
//     (model.Instance.Node), whose node proxy may serve them; default the
//     host name.
//   - egress = "allow" (the default) or "deny": with deny, four more rules
//     per instance let its app (its gid) open TCP connections and send UDP
//     only to its own address, where its sidecar's outbound listeners are,
//     and nothing over IPv6: the app reaches the outside only through the
//     external services the policy declares (mesh { egress = "deny" } says
//     the same to the sidecars; the adapter does not read the policy, so
//     give both). DNS to a resolver elsewhere is refused too. Sidecars are
//     not restricted: they originate the declared connections. Without the
//     guard (isolation = none, no root or nft) the option is a warning.
//   - watch = "/var/lib/weft-a/adapters/local": the data directory of the
//     local adapter that runs the workloads (its controller replica's
//     --data-dir, then adapters/local; watch.go). For a
//     raft cluster on one machine: one replica runs the workloads, every
//     other replica gives the same workloads file with this option and
//     only watches. A watcher starts, stops, adopts and probes nothing;
//     it reads the workloads file and the owner's state file every
//     quarter second and reports each instance the owner has recorded, at
//     the owner's address: passing while the recorded app and sidecar
//     pids still run the recorded command lines and the owner's last
//     check result (kept in the state file) passes. The owner's death
//     changes nothing it reports (the processes keep running, and the
//     restarted owner adopts them); while the owner is down, a changed
//     workloads file is not applied by anyone, and a process that exits
//     is reported critical but not restarted. A watcher reports isolation
//     none: it cannot see the owner's guard. Join tokens the owner mints
//     name adapter "local", which the watchers' snapshots also are, so a
//     sidecar joins through any replica.
//
// # The state file
//
// <DataDir>/local-state.json records every instance's ID, service,
// address and ports and the pid, command line and start hash of its two
// processes. The processes outlive the adapter: if the adapter (or the
// controller) dies, the next adapter over the same DataDir adopts those
// that still run what it would run (the pid is alive, /proc/<pid>/cmdline
// matches, the environment hashes the same) instead of starting them
// twice, and watches them by polling. An adopted instance is passing from
// the adapter's first snapshot on, so a restarted controller never takes
// it out of its callers' endpoints for a moment. Recorded processes that still run
// but are no longer wanted as they are (their instance is gone, or its
// command line or environment changed) are stopped before anything
// starts, so their ports are free. Adoption needs /proc, so it works on
// Linux only; elsewhere, stop the processes of a dead adapter by hand
// (their pids are in the state file) before starting a new one.
//
// Close, which the plugin SDK calls when the controller shuts the adapter
// down, stops every process the adapter started or adopted (SIGTERM to the
// process group, SIGKILL a second later) and removes the state file.
package local
