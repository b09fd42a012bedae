#!/usr/bin/env bash
# Installs headless Chromium (Debian's chromium) for the dashboard's tests
# (core/dashboard, test/dashboard), which fail without it: a browser is
# what proves the page. Does nothing when it is there; as root with
# apt-get, installs it (apt-get update first: the package lists of a fresh
# machine may not name it); otherwise says how to get it.
set -euo pipefail
if [ -n "${WEFT_CHROMIUM:-}" ] && [ -x "$WEFT_CHROMIUM" ]; then
	exit 0
fi
for b in chromium chromium-browser google-chrome; do
	if command -v "$b" >/dev/null 2>&1; then
		exit 0
	fi
done
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
	echo "installing Debian's chromium (the dashboard's tests run it headless)" >&2
	apt-get update >/dev/null
	DEBIAN_FRONTEND=noninteractive apt-get install -y chromium >/dev/null
	exit 0
fi
echo "chromium is missing and cannot be installed here (not root, or no apt-get): the dashboard's tests will fail; install Debian's chromium or set WEFT_CHROMIUM to a Chromium binary" >&2
