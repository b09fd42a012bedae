#!/usr/bin/env bash
# Installs nft (Debian's nftables) for the local adapter's guard and its
# tests, which need root and nft and skip without them. Does nothing when
# nft is there; as root with apt-get, installs it; otherwise says that the
# guard tests will skip.
set -euo pipefail
if command -v nft >/dev/null 2>&1 || [ -x /usr/sbin/nft ] || [ -x /sbin/nft ]; then
	exit 0
fi
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
	echo "installing Debian's nftables (the local adapter's guard)" >&2
	(apt-get install -y nftables >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y nftables >/dev/null; })
	exit 0
fi
echo "nft is missing and cannot be installed here (not root, or no apt-get): the local adapter's guard tests will skip" >&2
