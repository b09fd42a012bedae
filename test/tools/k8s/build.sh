#!/usr/bin/env bash
# Builds the real kube-apiserver (and etcd, when Debian's etcd-server is not
# installed) that Weft's Kubernetes tests run, into a cache outside the repo.
# Does nothing when the binaries are already there. Prints the folder holding
# them on its last line.
#
#   WEFT_K8S_ASSETS   where the binaries go (default $HOME/.cache/weft/k8s-v1.37.2)
set -euo pipefail
cd "$(dirname "$0")"
export GOWORK=off
VERSION=v1.37.2
OUT="${WEFT_K8S_ASSETS:-${XDG_CACHE_HOME:-$HOME/.cache}/weft/k8s-$VERSION}"
mkdir -p "$OUT"

if [ ! -x "$OUT/kube-apiserver" ]; then
	echo "building kube-apiserver $VERSION into $OUT (10 to 25 minutes cold, about 3 GB of memory)" >&2
	start=$(date +%s)
	nice -n 10 go build -trimpath \
		-ldflags "-s -w -X k8s.io/component-base/version.gitVersion=$VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=37 -X k8s.io/component-base/version.gitTreeState=clean" \
		-o "$OUT/kube-apiserver.tmp" k8s.io/kubernetes/cmd/kube-apiserver
	mv "$OUT/kube-apiserver.tmp" "$OUT/kube-apiserver"
	echo "built kube-apiserver in $(( $(date +%s) - start ))s" >&2
fi

if [ ! -x "$OUT/etcd" ]; then
	if command -v etcd >/dev/null 2>&1; then
		ln -sf "$(command -v etcd)" "$OUT/etcd"
	elif [ -x /usr/bin/etcd ]; then
		ln -sf /usr/bin/etcd "$OUT/etcd"
	elif command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
		echo "installing Debian's etcd-server" >&2
		(apt-get install -y etcd-server >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y etcd-server >/dev/null; })
		ln -sf /usr/bin/etcd "$OUT/etcd"
	else
		echo "etcd is missing: install Debian's etcd-server package, or put an etcd binary at $OUT/etcd" >&2
		exit 1
	fi
fi
echo "$OUT"
