#!/bin/sh
# The catalog clients the Consul-API and Prometheus-SD tests drive (Debian 12, as root), idempotent and quiet:
# - Debian's python3-consul (python-consul 0.7.1, for /usr/bin/python3), installed when missing;
# - Debian's prometheus 2.42 server binary at ${LEXA_TESTBED_DIR:-/var/lib/lexa-testbed}/prometheus: the package
#   is only downloaded and unpacked, not installed (installing it would start a Prometheus server from its
#   maintainer scripts); the tests start their own, on loopback, with a temporary directory.
# Prints the prometheus binary's path.
set -eu

OUT_DIR=${LEXA_TESTBED_DIR:-/var/lib/lexa-testbed}
BIN="$OUT_DIR/prometheus"

if ! dpkg-query -W -f='${Status}' python3-consul 2>/dev/null | grep -q 'install ok installed'; then
	echo "[catalog-peers] installing python3-consul" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get -o DPkg::Lock::Timeout=900 update -q >/dev/null
	apt-get -o DPkg::Lock::Timeout=900 install -y -q --no-install-recommends python3-consul >/dev/null
fi

if [ -x "$BIN" ] && "$BIN" --version >/dev/null 2>&1; then
	echo "$BIN"
	exit 0
fi
mkdir -p "$OUT_DIR"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
chown _apt "$work" 2>/dev/null || true # apt-get download warns when its sandbox user cannot write here
if ! apt-get download prometheus >/dev/null 2>&1; then
	apt-get -o DPkg::Lock::Timeout=900 update -q >/dev/null
	apt-get download prometheus >/dev/null
fi
dpkg-deb --fsys-tarfile prometheus_*.deb | tar -x ./usr/bin/prometheus
install -m 0755 usr/bin/prometheus "$BIN.tmp"
mv "$BIN.tmp" "$BIN"
"$BIN" --version >/dev/null 2>&1
echo "$BIN"
