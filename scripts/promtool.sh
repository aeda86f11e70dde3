#!/bin/sh
# Puts `promtool` (Prometheus's metric-format checker, from Debian's prometheus package) at
# ${LEXA_TESTBED_DIR:-/var/lib/lexa-testbed}/promtool and prints its path.
#
# Idempotent and quiet. The package is only downloaded and unpacked, not installed: installing it would pull
# in its web assets and start a Prometheus server from its maintainer scripts; the tests need only the one
# static binary (~48 MB unpacked, 19 MB download).
set -eu

OUT_DIR=${LEXA_TESTBED_DIR:-/var/lib/lexa-testbed}
BIN="$OUT_DIR/promtool"

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
dpkg-deb --fsys-tarfile prometheus_*.deb | tar -x ./usr/bin/promtool
install -m 0755 usr/bin/promtool "$BIN.tmp"
mv "$BIN.tmp" "$BIN"
"$BIN" --version >/dev/null
echo "$BIN"
