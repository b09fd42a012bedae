#!/usr/bin/env bash
# Installs Prometheus (Debian's prometheus package: prometheus and
# promtool) for test/prometheus, which scrapes a real local mesh with the
# configurations of examples/prometheus and fails without it. Does nothing
# when it is there; as root with apt-get, installs it (apt-get update
# first: the package lists of a fresh machine may not name it); otherwise
# says how to get it.
set -euo pipefail
if [ -n "${WEFT_PROMETHEUS:-}" ] && [ -x "$WEFT_PROMETHEUS" ]; then
	exit 0
fi
if command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; then
	exit 0
fi
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
	echo "installing Debian's prometheus (test/prometheus runs it against a local mesh)" >&2
	apt-get update >/dev/null
	# The package's own service is not wanted: the tests start their own.
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus >/dev/null
	exit 0
fi
echo "prometheus is missing and cannot be installed here (not root, or no apt-get): test/prometheus will fail; install Debian's prometheus or set WEFT_PROMETHEUS to a prometheus binary (promtool beside it)" >&2
