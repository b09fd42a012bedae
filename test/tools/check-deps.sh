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
[ $fail -eq 0 ] && echo "dependency direction OK"
exit $fail
