#!/bin/sh
# Puts one binary of Debian's prometheus package (`promtool`, the metric-format checker the metrics tests run, or
# `prometheus`, the server the HTTP SD test starts) at ${LEXA_TESTBED_DIR:-/var/lib/lexa-testbed}/<name> and
# prints its path. Usage: sh scripts/prometheus-bin.sh promtool|prometheus
#
# Idempotent and quiet. The package is only downloaded and unpacked, not installed: installing it would pull
# in its web assets and start a Prometheus server from its maintainer scripts; the tests need only the static
# binaries (~48 MB unpacked each, one 19 MB download), and start their own server on loopback.
set -eu

NAME=${1:?usage: prometheus-bin.sh promtool|prometheus}
case $NAME in promtool | prometheus) ;; *) echo "prometheus-bin.sh: no such binary: $NAME" >&2; exit 2 ;; esac
OUT_DIR=${LEXA_TESTBED_DIR:-/var/lib/lexa-testbed}
BIN="$OUT_DIR/$NAME"

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
dpkg-deb --fsys-tarfile prometheus_*.deb | tar -x "./usr/bin/$NAME"
install -m 0755 "usr/bin/$NAME" "$BIN.tmp"
mv "$BIN.tmp" "$BIN"
"$BIN" --version >/dev/null 2>&1
echo "$BIN"
