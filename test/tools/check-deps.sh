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
# Test harnesses (issue 12, tests): what every end-to-end layer needs lives
# once, in test/harness (doc.go lists it); a test package or a scheduler
# harness (nomadtest, kubetest, mesossim) declares no copy of it: no log
# buffer of its own, no free-port, wait-until, GET/JSON or log-line helper.
dups=$(grep -rnE --include='*.go' \
  -e '^type (syncBuffer|SyncBuffer|lockedBuffer|logBuf|logBuffer) ' \
  -e '^func (freePorts?|FreePorts?|freeAddr|FreeAddr|waitUntil|httpGet|getJSON|GetJSON|firstLine|firstLineWith|FirstLine|tail|Tail)\(' \
  test/ | grep -vE '^test/(harness|bench|tools)/' || true)
if [ -n "$dups" ]; then
  echo "test/harness holds these helpers (see its doc.go); use them instead of:"; echo "$dups"; fail=1
fi
[ $fail -eq 0 ] && echo "dependency direction OK"
exit $fail
