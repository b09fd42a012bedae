# Weft. `make demo` runs a local mesh; `make test` runs every test.
GO      ?= go
BIN     := bin
VERSION := $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X github.com/weftmesh/weft/core/version.Version=$(VERSION)

.PHONY: all build test lint demo bench bench-quick proto clean nomad k8s-assets nftables chromium fuzz jaeger prometheus release images

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
	$(GO) test -run '^$$' -fuzz '^FuzzParseRequest$$' -fuzztime $(FUZZTIME) ./core/proxy/h1
	$(GO) test -run '^$$' -fuzz '^FuzzParseResponse$$' -fuzztime $(FUZZTIME) ./core/proxy/h1
	$(GO) test -run '^$$' -fuzz '^FuzzForward$$' -fuzztime $(FUZZTIME) ./core/proxy/h1
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

# Release tarballs: weft and weft-proxy built static (CGO_ENABLED=0),
# -trimpath, with VERSION in core/version, for each of RELEASE_PLATFORMS;
# each tarball holds them, README.md and examples/systemd, and SHA256SUMS
# lists the tarballs' checksums (sha256sum -c SHA256SUMS). The tarballs
# are reproducible: files sorted, owned by 0, dated by the last commit.
# RELEASE_DIR/image is the build context of the Dockerfile (make images).
# Say `make release VERSION=1.2.3` for a numbered release.
RELEASE_PLATFORMS ?= linux/amd64 linux/arm64
RELEASE_DIR       ?= $(BIN)/release
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || echo 0)
CA_BUNDLE         ?= /etc/ssl/certs/ca-certificates.crt
release:
	@test -f $(CA_BUNDLE) || { echo "release: no CA bundle at $(CA_BUNDLE) for the images; install ca-certificates or set CA_BUNDLE"; exit 1; }
	rm -rf $(RELEASE_DIR) && mkdir -p $(RELEASE_DIR)/image/rootfs/etc/ssl/certs $(RELEASE_DIR)/image/rootfs/tmp $(RELEASE_DIR)/image/data
	@set -e; for p in $(RELEASE_PLATFORMS); do \
	  os=$${p%/*}; arch=$${p#*/}; name=weft_$(VERSION)_$${os}_$${arch}; dir=$(RELEASE_DIR)/$$name; \
	  mkdir -p $$dir/systemd $(RELEASE_DIR)/image/$${os}_$${arch}; \
	  for b in weft weft-proxy; do \
	    echo "building $$b for $$p"; \
	    CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch $(GO) build -trimpath -ldflags "-s -w $(LDFLAGS)" -o $$dir/$$b ./cmd/$$b; \
	    cp $$dir/$$b $(RELEASE_DIR)/image/$${os}_$${arch}/$$b; \
	  done; \
	  cp README.md $$dir/; cp examples/systemd/* $$dir/systemd/; \
	  tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@$(SOURCE_DATE_EPOCH) -C $(RELEASE_DIR) -cf - $$name | gzip -n > $(RELEASE_DIR)/$$name.tar.gz; \
	done
	cd $(RELEASE_DIR) && sha256sum *.tar.gz > SHA256SUMS && cat SHA256SUMS
	printf 'root:x:0:0:root:/root:/sbin/nologin\nweft:x:65532:65532:weft:/var/lib/weft:/sbin/nologin\n' > $(RELEASE_DIR)/image/rootfs/etc/passwd
	printf 'root:x:0:\nweft:x:65532:\n' > $(RELEASE_DIR)/image/rootfs/etc/group
	cp $(CA_BUNDLE) $(RELEASE_DIR)/image/rootfs/etc/ssl/certs/ca-certificates.crt
	chmod 1777 $(RELEASE_DIR)/image/rootfs/tmp

# Images of weft and weft-proxy (Dockerfile: FROM scratch, the binaries
# make release built, running it first when RELEASE_DIR has none; user 65532) for each of RELEASE_PLATFORMS, built with
# buildah (Debian: apt-get install buildah), tagged
# IMAGE_PREFIX/weft:VERSION-ARCH and IMAGE_PREFIX/weft-proxy:VERSION-ARCH.
# BUILDAH adds global flags, e.g. BUILDAH="buildah --root DIR" for a
# storage of its own.
BUILDAH      ?= buildah
IMAGE_PREFIX ?= localhost
images:
	@test -d $(RELEASE_DIR)/image || $(MAKE) release
	@set -e; for p in $(RELEASE_PLATFORMS); do \
	  arch=$${p#*/}; \
	  for t in weft weft-proxy; do \
	    $(BUILDAH) bud --isolation chroot --platform $$p --build-arg TARGETARCH=$$arch --build-arg VERSION=$(VERSION) \
	      --target $$t -t $(IMAGE_PREFIX)/$$t:$(VERSION)-$$arch -f Dockerfile $(RELEASE_DIR)/image; \
	  done; \
	done

# Regenerates the protocol code (needs protoc, protoc-gen-go, protoc-gen-go-grpc).
proto:
	protoc --go_out=. --go_opt=paths=source_relative \
	       --go-grpc_out=. --go-grpc_opt=paths=source_relative \
	       core/meshapi/mesh.proto plugins/proto/adapter.proto

clean:
	rm -rf $(BIN) .weft .weft-demo
