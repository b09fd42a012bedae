// Package nomad is the Nomad adapter: it tells the controller where every
// meshed service of a Nomad cluster runs, from Nomad's native service
// discovery (service blocks with provider = "nomad") and allocations, and
// it verifies the workload identity a sidecar joins with. No Consul is
// involved.
//
// Entry point: New, which returns an Adapter (plugins.Adapter and
// plugins.IdentityVerifier). `weft adapter nomad` serves it over
// go-plugin; the controller starts it for `--adapter nomad=NOMAD_ADDR`.
// Data flow: Nomad's HTTP API -> fetchState -> Translate(state)
// (snapshot, diagnostics) (pure, most tests hit it, with payloads recorded
// from Nomad 1.6.1 in testdata/) -> a full snapshot on Watch's channel ->
// plugins/host -> the controller. Watch is an sdk.Loop: events signal it,
// it settles, fetches, translates, drops unchanged snapshots and sends.
//
// # Where things are
//
//   - adapter.go: Info (with the option schema), Configure (address,
//     options read with sdk.ParseOptions, token checks).
//   - watch.go: Watch: the event stream, the blocking-query fallback, the
//     sdk.Loop that rebuilds with backoff; fetchState reads the services, the
//     allocations and the running deployments.
//   - checks.go: the service checks: declared ones (from each job version,
//     cached), their results (read a few allocations at a time, and polled
//     for changes), and what they make of an instance's health.
//   - translate.go: the pure function from Nomad's records to instances,
//     and the port-label and fact conventions below.
//   - identity.go: VerifyIdentity, for sidecars that join with the task's
//     workload identity JWT.
//   - nodeproxy.go: the same for a node proxy run as a system job (see
//     Node proxy below).
//
// # Configuration
//
// The source is Nomad's HTTP address (default $NOMAD_ADDR, then
// http://127.0.0.1:4646). The token is $NOMAD_TOKEN of the controller, or
// the file named by the option token_file; with ACLs on it needs read-job
// on the watched namespaces. Options: token_file, namespace (default "*",
// all), event_stream (default true; false uses blocking queries only),
// resync (default 30s: a full re-read even without events), advertise
// (default "host"; "alloc": see Isolation below), check_poll (default
// 1s: how often the results of service checks are re-read; see Health).
//
// A token Nomad refuses, or none where ACLs are on, is an error of
// Configure that says what token to give. A Nomad that does not answer is
// a warning: Watch keeps the last snapshot in force, reports the problem
// with every retry, and retries with backoff (250ms doubling to 4s, so
// a Nomad that comes back is read again, and its changes reach the
// sidecars, within 5s).
//
// # What is an instance
//
// One instance per native service registration whose allocation is not
// terminal (desired status run; client status pending or running) and
// whose group network has a port labelled "mesh" (ports allocated by
// Nomad). Its
//
//   - ID is "<alloc ID>/<service>": stable for the allocation's life, and
//     what the sidecar task passes as --instance ${NOMAD_ALLOC_ID}/<service>;
//   - Address is the host IP Nomad gave the mesh port, and Ports["mesh"]
//     its host port: where callers dial;
//   - Ports are "app" (the service's own port), "mesh" (the port labelled
//     mesh) and, for every port labelled upstream_<name>, "upstream:<name>"
//     with underscores turned into dashes (upstream_my_api is the upstream
//     my-api): the sidecar binds that port for the upstream, so instances
//     that share a host do not collide on the policy's local_port (in a
//     bridge-mode group, a service tag weft_upstream_<name>=<port> says
//     the same, since a port block there would be published on the host);
//   - Tags are the service's tags; a tag key=value goes to Meta instead
//     (version=v2 is Meta version = v2, for subsets: Nomad 1.6's native
//     service registrations carry no meta of their own, so a service
//     block's meta never reaches the adapter), and Meta also holds
//     nomad_canary ("true" while the allocation is an unpromoted canary)
//     and nomad_job_version, so that a policy subset can select a Nomad
//     canary: subset "canary" { meta = { nomad_canary = "true" } };
//   - Health: see Health below;
//   - Labels are the Nomad facts: nomad_namespace, nomad_job, nomad_group,
//     nomad_task (the task of a task-level service, else empty),
//     nomad_alloc_id, nomad_alloc_name, nomad_node_id, nomad_node,
//     nomad_datacenter, nomad_job_version, nomad_canary. The sidecar
//     exports them as the labels of its weft_instance_info metric, to join
//     onto its other series.
//
// # Health
//
// An instance is, in this order:
//
//   - critical while its allocation is pending (the sidecar may already
//     join, but no caller is sent there before the tasks run);
//   - critical, for an allocation a running deployment placed, until the
//     deployment finds it healthy (its checks pass, or it ran for
//     min_healthy_time), and whenever Nomad finds it unhealthy: what
//     keeps a rolling update from sending requests to an app that is not
//     listening yet;
//   - warning while its client status is unknown (its node missed its
//     heartbeats: still routed to);
//   - critical while one of the allocation's tasks is down: pending again
//     after it ran (killed or crashed, waiting out its restart delay), or
//     dead after a failure; the app or the sidecar. A poststop task not
//     started yet and a prestart task that finished are not down;
//   - critical while a check of its service (a check block of the
//     native service, group or task level, of the job version the
//     allocation runs) fails, or has no result yet: Nomad reports a
//     declared check "pending" until its first run, half an interval
//     after the allocation starts, and a check with no result has not
//     shown the app can answer. Nomad's native service discovery keeps a
//     service whose check fails in its registrations, so the adapter
//     reads the results itself (GET /v1/client/allocation/:id/checks, for
//     each running allocation whose group declares checks, four at a
//     time) at every rebuild and every check_poll (default 1s): Nomad
//     sends no event when a result changes, so a failing check takes its
//     instance out within about its interval plus check_poll, and the
//     controller's log says which instance and why. Checks of
//     the group's other services do not count, nor does on_update (it
//     only concerns Nomad's deployments). A service whose name is built
//     with ${...} has its results reported under the name as written,
//     which matches no registration: the adapter says so in a warning
//     and cannot apply them;
//   - warning when its check results cannot be read (the Nomad client of
//     its node does not answer): it keeps being routed to, with a warning
//     saying why;
//   - passing otherwise: the allocation runs, every task is up, and every
//     check of its service passes (or it declares none).
//
// # Isolation
//
// An instance whose group network is in bridge mode (or a CNI network,
// mode "cni/...") has its own network namespace: Isolation is netns, and
// MeshListen is 0.0.0.0:<the mesh port's to> (the port inside, where the
// sidecar binds; Nomad maps the host port to it). The app and the
// sidecar's outbound listeners are on the namespace's 127.0.0.1 (core/compile
// never binds them elsewhere), so only the mesh port is reachable from
// outside: `weft nomad render` writes such groups by default. An instance
// in host mode (Nomad's default) has Isolation none: its app's port is on
// the node; the adapter logs an "ISOLATION OFF" warning once for each.
//
// With the option advertise = "alloc", a netns instance's Address is the
// allocation's own address (read from each such allocation, as the list
// does not carry it) and Ports["mesh"] the port inside: for networks where
// allocation addresses route between nodes, or a single node whose address
// a namespace cannot reach (a dev agent bound to loopback).
//
// For updates that lose no request, give the group a shutdown_delay (2s
// is plenty): Nomad deregisters the service and the adapter drops the
// instance as soon as the allocation is told to stop, and the delay keeps
// the app serving while callers' sidecars apply that.
//
// One sidecar serves one service. In a group registering several services,
// tag the ones outside the mesh weft_mesh=false, or give each meshed one
// its own mesh port with a tag weft_mesh_port=<label>; registrations that
// would share a mesh port are all skipped and reported.
//
// # Identity
//
// A sidecar task with identity { env = true } joins with
// --credential-adapter nomad --credential-env NOMAD_TOKEN. Nomad 1.6
// serves no JWKS and its keyring API gives out no keys, so the adapter
// asks Nomad itself, which checks the JWT's signature with its keyring and
// that the allocation still runs: see VerifyIdentity. This needs ACLs
// enabled on Nomad (without them Nomad accepts any token and so proves
// nothing; the adapter checks and refuses). The certificate is for the
// service the instance ID names, only if that allocation registers it.
//
// # Node proxy
//
// A system job marked with job or group meta weft_proxy = "node" runs one
// weft-proxy per client node in node mode (examples/nomad/node-proxy.nomad.hcl,
// docs/deployment-models.md). It joins with its own task's workload
// identity: VerifyIdentity, given a JWT whose allocation is not the
// instance's (or no instance), has Nomad check the JWT as above, requires
// the marker on the JWT's job or group, and, for an instance, that its
// allocation runs on the same Nomad node (NodeID) and registers the
// service with the tag weft_proxy_mode=node (TagProxyMode: the opt-in of
// a job whose group then has no sidecar task). The answer names the node
// (VerifyIdentityResponse.Node), which the controller checks again against
// the snapshot: Instance.Node is the allocation's NodeID, and the tag is
// in Meta (model.MetaProxyMode).
package nomad
