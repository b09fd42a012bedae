#!/usr/bin/env bash
# What Nomad's bridge networking needs on this machine, for the bridge-mode
# tests in test/nomad: the CNI plugins (Debian's containernetworking-plugins,
# in /usr/lib/cni), iptables, and the kernel's bridge module. Installs the
# packages with apt-get when missing and running as root; otherwise says
# what is missing (the tests then fail with the same list).
set -euo pipefail
need=()
[ -x /usr/lib/cni/bridge ] && [ -x /usr/lib/cni/portmap ] || need+=(containernetworking-plugins)
command -v iptables >/dev/null 2>&1 || need+=(iptables)
if [ ${#need[@]} -gt 0 ]; then
	if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
		echo "installing ${need[*]} for Nomad bridge networking" >&2
		apt-get install -y "${need[@]}" >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y "${need[@]}" >/dev/null; }
	else
		echo "Nomad bridge networking needs: ${need[*]} (Debian packages; install them as root)" >&2
	fi
fi
if [ ! -d /sys/module/bridge ]; then
	modprobe bridge 2>/dev/null || echo "the kernel's bridge module is not loaded (modprobe bridge as root)" >&2
fi
