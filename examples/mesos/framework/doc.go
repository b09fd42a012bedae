// Command weft-mesos-framework is a small Mesos framework, written with
// mesos-go's scheduler API (httpsched), that deploys services into a Weft
// mesh: every instance is one task group (LAUNCH_GROUP) of the
// application and its weft-proxy sidecar, which share an address, so the
// application reaches its upstreams on its own address.
//
// Entry point: main reads the flags and the apps file and runs a
// scheduler (scheduler.go) until SIGINT or SIGTERM, when it kills its
// tasks, waits for them to end, and tears the framework down.
//
// Place in the data flow: it launches tasks through the master's
// scheduler API (POST /api/v1/scheduler); the master reports them on the
// operator API to adapters/mesos, which tells the controller; the
// controller's admin API (POST /v1/join-tokens) gives the framework a
// single-use join token for each sidecar it launches.
//
// With --node-proxy it also launches one weft-proxy node proxy per agent
// (nodeproxy.go), with a token from the admin API for that task, and runs
// apps with proxy_mode "node" without a sidecar.
//
// What it does: subscribes (following a non-leading master's redirect,
// and trying the next master when one is down), launches missing
// instances from offers, acknowledges every status update, relaunches an
// instance whose group failed or was killed, reconciles after
// resubscribing, and declines offers it does not need.
package main
