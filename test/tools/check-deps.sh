#!/usr/bin/env bash
# The dependency direction of DESIGN.md: cmd -> hcl, plugins, adapters -> core.
# core/ imports none of hcl/, adapters/, plugins/ (directly or not), and the
# sidecar binary links no scheduler client, plugin or HCL library.
set -euo pipefail
cd "$(dirname "$0")/../.."
mod=github.com/weftmesh/weft
fail=0
# go list failing (a package that does not build) fails the check too.
core_deps=$(go list -deps ./core/...)
bad=$(echo "$core_deps" | grep -E "^$mod/(hcl|adapters|plugins)(/|$)" || true)
if [ -n "$bad" ]; then
  echo "core/ must not import hcl/, adapters/ or plugins/, but its dependencies include:"; echo "$bad"; fail=1
fi
proxy_deps=$(go list -deps ./cmd/weft-proxy)
bad=$(echo "$proxy_deps" | grep -E "^($mod/(hcl|adapters|plugins)|github.com/hashicorp/(go-plugin|hcl|nomad)|github.com/mesos/|k8s.io/)" || true)
if [ -n "$bad" ]; then
  echo "weft-proxy must stay lean, but it links:"; echo "$bad"; fail=1
fi
# Issue 12, controller shape: the controller hands meshserver what it needs
# at construction (meshserver reads no registry and knows no controller or
# admin API); the admin API reads the runtime through interfaces; cmd/weft
# wires and serves no HTTP handler of its own.
for pair in "core/meshserver:core/(registry|controller|api)" "core/api:core/controller" "core/controller:core/api"; do
  pkg=${pair%%:*}; forbidden=${pair#*:}
  bad=$(go list -deps ./$pkg | grep -E "^$mod/($forbidden)$" || true)
  if [ -n "$bad" ]; then
    echo "$pkg must not import $forbidden, but its dependencies include:"; echo "$bad"; fail=1
  fi
done
handlers=$(grep -nE 'http\.(ResponseWriter|HandlerFunc|NewServeMux)|\.HandleFunc\(' $(ls cmd/weft/*.go | grep -v _test.go) || true)
if [ -n "$handlers" ]; then
  echo "cmd/weft serves no HTTP of its own (the admin API is core/api's NewHandler), but:"; echo "$handlers"; fail=1
fi
[ $fail -eq 0 ] && echo "dependency direction OK"
exit $fail
