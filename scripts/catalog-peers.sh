#!/bin/sh
# The catalog clients the Consul-API and Prometheus-SD tests drive (Debian 12, as root), idempotent and quiet:
# Debian's python3-consul (python-consul 0.7.1, for /usr/bin/python3), installed when missing, and the prometheus
# 2.42 server binary (scripts/prometheus-bin.sh). Prints the prometheus binary's path.
set -eu

if ! dpkg-query -W -f='${Status}' python3-consul 2>/dev/null | grep -q 'install ok installed'; then
	echo "[catalog-peers] installing python3-consul" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get -o DPkg::Lock::Timeout=900 update -q >/dev/null
	apt-get -o DPkg::Lock::Timeout=900 install -y -q --no-install-recommends python3-consul >/dev/null
fi
exec sh "$(dirname "$0")/prometheus-bin.sh" prometheus
