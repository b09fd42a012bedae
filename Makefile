# Weft. `make demo` runs a local mesh; `make test` runs every test.
GO      ?= go
BIN     := bin
VERSION := $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X github.com/weftmesh/weft/core/version.Version=$(VERSION)

.PHONY: all build test lint demo bench bench-quick proto clean nomad k8s-assets nftables chromium fuzz jaeger prometheus

all: build

build:
	@mkdir -p $(BIN)
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/weft ./cmd/weft
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/weft-proxy ./cmd/weft-proxy
	$(GO) build -o $(BIN)/weft-demo-app ./examples/local/demoapp
	$(GO) build -o $(BIN)/plugins.d/weft-adapter-file ./examples/adapter-file
	cd $(BIN)/plugins.d && sha256sum weft-adapter-file > weft-adapter-file.sha256

# Unit, conformance and end-to-end tests. The end-to-end tests build the
# binaries they run themselves.
test: lint nomad k8s-assets nftables chromium jaeger prometheus
	$(GO) test -count=1 -timeout 20m ./...

# Runs each fuzz test for FUZZTIME, a duration (10s) or a count of inputs
# (40000x, what CI runs after make test: a count cannot race the clock).
FUZZTIME ?= 10s
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzLoad$$' -fuzztime $(FUZZTIME) ./hcl
	$(GO) test -run '^$$' -fuzz '^FuzzDepth$$' -fuzztime $(FUZZTIME) ./hcl/hcllimit
	$(GO) test -run '^$$' -fuzz '^FuzzRouteMatch$$' -fuzztime $(FUZZTIME) ./core/proxy/canon
	$(GO) test -run '^$$' -fuzz '^FuzzNormalizePath$$' -fuzztime $(FUZZTIME) ./core/proxy/canon
	$(GO) test -run '^$$' -fuzz '^FuzzAccessLine$$' -fuzztime $(FUZZTIME) ./core/proxy
	$(GO) test -run '^$$' -fuzz '^FuzzAccessLineJSON$$' -fuzztime $(FUZZTIME) ./core/proxy
	$(GO) test -run '^$$' -fuzz '^FuzzLogWriterEntry$$' -fuzztime $(FUZZTIME) ./cmd/weft-proxy
	$(GO) test -run '^$$' -fuzz '^FuzzReader$$' -fuzztime $(FUZZTIME) ./adapters/mesos/recordio
	$(GO) test -run '^$$' -fuzz '^FuzzLoadWorkloads$$' -fuzztime $(FUZZTIME) ./adapters/local
	$(GO) test -run '^$$' -fuzz '^FuzzAuthenticate$$' -fuzztime $(FUZZTIME) ./core/proxy/jwtauth

lint:
	@echo "gofmt"; out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	@./test/tools/check-deps.sh

# Nomad 1.6.1, the last MPL-2.0 release (never a later one), for the Nomad
# tests: built once per machine from test/tools/nomad into a cache outside
# the repository (about 7 CPU-minutes cold). The test harness
# (test/nomad/nomadtest) builds it the same way when it is missing. It also
# installs what bridge networking needs (CNI plugins, iptables).
NOMAD_BIN := $(HOME)/.cache/weft/nomad-1.6.1/nomad
nomad: $(NOMAD_BIN)
	@./test/tools/nomad/bridge-deps.sh
$(NOMAD_BIN):
	@mkdir -p $(dir $@)
	cd test/tools/nomad && GOWORK=off nice -n 10 $(GO) build -o $@.tmp github.com/hashicorp/nomad && mv $@.tmp $@

# Jaeger 1.75.0 (the v2, collector-based binary) for the tracing tests:
# built once per machine from test/tools/jaeger, its own module (the
# jaeger tool in its go.mod) so that ours does not grow, into a cache
# outside the repository (about 5 minutes and 6 CPU-minutes cold on two
# cores). The test harness (test/harness/jaeger.go) builds it the same way
# when it is missing.
JAEGER_BIN := $(HOME)/.cache/weft/jaeger-1.75.0/jaeger
jaeger: $(JAEGER_BIN)
$(JAEGER_BIN):
	@mkdir -p $(dir $@)
	cd test/tools/jaeger && GOWORK=off nice -n 10 $(GO) build -o $@.tmp github.com/jaegertracing/jaeger/cmd/jaeger && mv $@.tmp $@

# kube-apiserver v1.37.2 and etcd for the Kubernetes tests: built once per
# machine by test/tools/k8s/build.sh into $(HOME)/.cache/weft/k8s-v1.37.2
# (kube-apiserver: 10 to 25 minutes cold; etcd: Debian's etcd-server). The
# harness (test/kubernetes/kubetest) runs the same script when they are
# missing, and fails if it cannot.
k8s-assets:
	@./test/tools/k8s/build.sh >/dev/null

# nft (Debian's nftables) for the local adapter's guard and its tests:
# installed when missing and root (test/tools/nftables.sh).
nftables:
	@./test/tools/nftables.sh

# Headless Chromium (Debian's chromium) for the dashboard's tests:
# installed when missing and root (test/tools/chromium.sh).
chromium:
	@./test/tools/chromium.sh

# Prometheus (Debian's prometheus) for test/prometheus, which scrapes a
# local mesh with examples/prometheus: installed when missing and root
# (test/tools/prometheus.sh).
prometheus:
	@./test/tools/prometheus.sh

demo: build
	./examples/local/demo.sh

# The benchmark suite (test/bench, BENCHMARKS.md): direct, HAProxy and Weft
# through the same two-hop mTLS chain, and the control plane. Installs
# haproxy and wrk with apt-get when missing. Refuses to measure on a busy
# machine. Results: bin/bench/results.{md,json}. BENCH_FLAGS adds flags.
bench: build
	$(GO) build -o $(BIN)/weft-load ./test/bench/cmd/weft-load
	$(GO) build -o $(BIN)/weft-bench ./test/bench/cmd/weft-bench
	taskset -c 1 $(BIN)/weft-bench run --bin $(BIN) --out $(BIN)/bench $(BENCH_FLAGS)

# A smoke run of the same suite in a few minutes; its numbers are marked not
# reportable when the machine is busy.
bench-quick: build
	$(GO) build -o $(BIN)/weft-load ./test/bench/cmd/weft-load
	$(GO) build -o $(BIN)/weft-bench ./test/bench/cmd/weft-bench
	taskset -c 1 $(BIN)/weft-bench run --quick --force --bin $(BIN) --out $(BIN)/bench-quick $(BENCH_FLAGS)

# Regenerates the protocol code (needs protoc, protoc-gen-go, protoc-gen-go-grpc).
proto:
	protoc --go_out=. --go_opt=paths=source_relative \
	       --go-grpc_out=. --go-grpc_opt=paths=source_relative \
	       core/meshapi/mesh.proto plugins/proto/adapter.proto

clean:
	rm -rf $(BIN) .weft .weft-demo
