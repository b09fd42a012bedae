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

# --- issue 12 (adapt): the SDK and the built-in adapters link nothing of the
# controller. plugins/sdk and plugins/sdk/sdktest import nothing of core/ but
# core/model (the types an adapter sends) and core/backoff (its watch loop's
# retries), directly or not.
sdk_deps=$(go list -deps ./plugins/sdk ./plugins/sdk/sdktest)
bad=$(echo "$sdk_deps" | grep -E "^$mod/(core|hcl|adapters)(/|$)" | grep -vE "^$mod/core/(model|backoff)$" || true)
if [ -n "$bad" ]; then
  echo "plugins/sdk and sdktest may import of core/ only core/model and core/backoff, but link:"; echo "$bad"; fail=1
fi
# The built-in adapters (adapters/...) likewise import nothing of core/ but
# core/model and core/backoff, and nothing of plugins/ but plugins/sdk (and
# plugins/sdk/sdktest in their tests). Two cannot follow, and may also use the
# bounded readers the policy loader uses, both leaves: adapters/local reads its
# HCL workloads file and its state file, adapters/nomad/jobspec (the `weft
# nomad render` library, not an adapter process) a Nomad job file, with
# hcl/hcllimit and core/inputlimit. Moving those readers out of core/ and hcl/
# is not this rule's to decide.
for pkg in $(go list ./adapters/...); do
  allowed="^$mod/core/(model|backoff)$"
  case "$pkg" in
    "$mod/adapters/local"|"$mod/adapters/nomad/jobspec") allowed="^$mod/(core/(model|backoff|inputlimit)|hcl/hcllimit)$" ;;
  esac
  bad=$(go list -deps "$pkg" | grep -E "^$mod/(core|hcl)(/|$)" | grep -vE "$allowed" || true)
  if [ -n "$bad" ]; then
    echo "$pkg may import of core/ only core/model and core/backoff, but links:"; echo "$bad"; fail=1
  fi
  bad=$(go list -f '{{join .Imports "\n"}}{{"\n"}}{{join .TestImports "\n"}}{{"\n"}}{{join .XTestImports "\n"}}' "$pkg" |
    grep -E "^$mod/plugins(/|$)" | grep -vE "^$mod/plugins/sdk(/sdktest)?$" || true)
  if [ -n "$bad" ]; then
    echo "$pkg may import of plugins/ only plugins/sdk (and sdktest in tests), but imports:"; echo "$bad"; fail=1
  fi
done

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
