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
# The sidecar data plane (every package under core/proxy except the test
# helper proxytest; _test files are not listed by go list) links no
# control-plane package: it evaluates the rules the controller compiled
# (meshapi.Authz) itself and names roots with spiffe.RootID, so it imports
# none of core/ca, core/policy, core/compile, core/registry, core/meshserver,
# directly or not.
for pkg in $(go list ./core/proxy/... | grep -v "^$mod/core/proxy/proxytest$"); do
  bad=$(go list -deps "$pkg" | grep -E "^$mod/core/(ca|policy|compile|registry|meshserver)(/|$)" || true)
  if [ -n "$bad" ]; then
    echo "$pkg must not import core/ca, core/policy, core/compile, core/registry or core/meshserver, but it links:"; echo "$bad"; fail=1
  fi
done
[ $fail -eq 0 ] && echo "dependency direction OK"
exit $fail
