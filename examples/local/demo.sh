#!/usr/bin/env bash
# The local demo: a controller, the local adapter, and three services
# (frontend -> api -> store), each instance with its own sidecar, on loopback.
# Run it with `make demo`; Ctrl-C stops every process it started.
# `demo.sh node` runs api and store on one node proxy instead of sidecars
# (workloads-node.hcl); `demo.sh application` runs api on a proxy of its
# own application and store on the node proxy (workloads-application.hcl,
# docs/deployment-models.md).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
bin="$root/bin"
data="$root/.weft-demo"
admin=https://127.0.0.1:7401   # the admin API is HTTPS; the CLI reads the token and CA from --data-dir

for b in weft weft-proxy weft-demo-app; do
  [ -x "$bin/$b" ] || { echo "demo: $bin/$b is missing; run 'make demo' (it builds first)" >&2; exit 1; }
done
workloads="$here/workloads.hcl"
case "${1:-}" in
  "") ;;
  node) workloads="$here/workloads-node.hcl" ;;
  application) workloads="$here/workloads-application.hcl" ;;
  *) echo "usage: demo.sh [node|application]   (node: api and store on one node proxy; application: api on its application's proxy, store on the node proxy)" >&2; exit 2 ;;
esac
mkdir -p "$data"
log="$data/controller.log"

# frontend is the demo's edge: its app port stays open so that you can curl
# it; every other app is reachable only through its sidecar (when run as
# root with nft installed: the local adapter's guard).
"$bin/weft" controller \
  --policy-dir "$here/policy" \
  --adapter "local=$workloads" \
  --adapter-option local.edge=frontend \
  --data-dir "$data" \
  --proxy-binary "$bin/weft-proxy" \
  --admin "${admin#https://}" >"$log" 2>&1 &
ctl=$!

stop() {
  trap - INT TERM EXIT
  echo
  echo "demo: stopping the controller; it stops the adapter, which stops every app and sidecar"
  kill -INT "$ctl" 2>/dev/null || true
  wait "$ctl" 2>/dev/null || true
  echo "demo: stopped. Logs are in $data (controller.log, adapters/local/logs/)"
}
trap stop INT TERM EXIT

echo "demo: controller starting (log: $log)"
# Wait until every sidecar has acknowledged its configuration and every
# instance passes its checks (at most 60 s): until then callers have no
# healthy instance of it to call.
ready=""
for _ in $(seq 1 120); do
  if ! kill -0 "$ctl" 2>/dev/null; then
    echo "demo: the controller exited; its log:" >&2; cat "$log" >&2; exit 1
  fi
  if st=$("$bin/weft" status --json --admin "$admin" --data-dir "$data" 2>/dev/null); then
    n=$(echo "$st" | jq '[.instances // [] | .[]] | length')
    acked=$(echo "$st" | jq '[.sidecars // [] | .[] | select(.acked_version == .version and .version > 0)] | length')
    passing=$(echo "$st" | jq '[.instances // [] | .[] | select(.health == "passing")] | length')
    if [ "$n" -gt 0 ] && [ "$acked" -eq "$n" ] && [ "$passing" -eq "$n" ]; then ready=1; break; fi
  fi
  sleep 0.5
done
[ -n "$ready" ] || { echo "demo: the mesh did not come up within 60 s; see $log and $data/adapters/local/logs/" >&2; exit 1; }

"$bin/weft" status --admin "$admin" --data-dir "$data"
fe=$(echo "$st" | jq -r '.instances[] | select(.service == "frontend") | .address' | head -1)

echo
echo "== A request crossing the mesh: you -> frontend -> (mTLS) api -> (mTLS) store"
echo "\$ curl http://$fe:8080/call/api/call/store"
curl -s "http://$fe:8080/call/api/call/store" | jq .
echo
echo "== A call that policy denies: frontend -> store has no intention (default deny)"
echo "\$ curl http://$fe:8080/call/store"
curl -s "http://$fe:8080/call/store" | jq .
echo
echo "== Isolation: nobody but a sidecar reaches an app; nobody but an app uses its outbound ports"
api=$(echo "$st" | jq -r '.instances[] | select(.service == "api") | .address' | head -1)
echo "\$ curl http://$api:8080/   # the api's app port, bypassing its sidecar"
curl -sS -m 5 "http://$api:8080/" || true
echo
echo "\$ weft check --instance api-0 --instance api-1 --instance store-0"
"$bin/weft" check --admin "$admin" --data-dir "$data" --instance api-0 --instance api-1 --instance store-0 || true
echo
echo "== The dashboard (the admin API's certificate is from the mesh CA: accept the browser's warning,"
echo "   or import $data/ca/ca.crt as an authority; see README, 'The dashboard')"
echo "  $admin/ui/#token=$(cat "$data/admin.token")"
echo
echo "demo: the mesh is running. Try:"
echo "  curl http://$fe:8080/call/api/call/store   # frontend -> api -> store, identities shown"
echo "  curl http://$fe:8080/call/store            # refused by policy"
echo "  $bin/weft status --data-dir $data   # adapters, instances (with their ISOLATION), sidecars (HTTPS admin API)"
echo "  $bin/weft check --data-dir $data    # probes every app, outbound and mesh port here (frontend's app port is open: the edge)"
echo "  curl --cacert $data/ca/ca.crt -H \"Authorization: Bearer \$(cat $data/admin.token)\" $admin/v1/status"
echo "  curl http://$fe:15000/metrics              # the frontend sidecar's Prometheus metrics"
echo "  $admin/ui/   # the dashboard (the link above carries the token; or paste $data/admin.token)"
echo "Press Ctrl-C to stop."
wait "$ctl"
